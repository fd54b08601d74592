"""A simulated LiteLLM proxy, for demo mode and the tests of what needs LiteLLM's database (keys,
teams, users, spend, budgets, 429s per deployment), which a real proxy without PostgreSQL cannot
answer. What a real proxy answers without a database (readiness, deployments and prices, its own
/metrics) is tested against the real one too (tests/litellm/real_proxy.py).

Answers follow LiteLLM's own endpoint code and response models field by field, for two versions
(:mod:`llmwatch.simulation.litellm_shapes` has every field of each row):

- ``1.83.14``, the last before 1.84: ``/health/readiness`` is public and carries the version,
  success callbacks and cache; the database state is only in its body (always HTTP 200); no
  ``/health/readiness/details``. ``/model/info`` shows a deployment's own per-token prices but not
  its other ones (per second...), which stay in its ``litellm_params``.
- ``1.108.7``: the public ``/health/readiness`` answers only ``{status, db}``, HTTP 503 when a
  configured database is ``disconnected`` (or ``stalled``); version, callbacks and cache are in the
  keyed ``/health/readiness/details``. ``/model/info`` shows every price of a deployment and lists
  the overridden ones in ``pricing_overrides``.

Both: ``/key/list`` is paged ``{keys, total_count, current_page, total_pages}`` (``UserAPIKeyAuth``
rows with ``return_full_object=true``), ``/team/list`` a bare list of teams (with their keys and
memberships), ``/user/list`` paged ``{users, total, page, page_size, total_pages}`` including the
``litellm-proxy-budget`` row when a proxy-wide budget is set, ``/global/spend`` ``{spend,
max_budget}`` with ``spend`` the last 30 days of spend logs and ``max_budget`` 0.0 when none is set,
errors ``{"error": {message, type, param, code}}``. Endpoints other than liveliness and the public
readiness need ``Authorization: Bearer <master key>``. ``/metrics`` is LiteLLM's own Prometheus
endpoint (the ``prometheus`` callback): a few of its families, as its metric definitions name and
label them (served without a key, as 1.83 does; the real 1.108 wants the master key unless
``require_auth_for_metrics_endpoint: false``, which the stack test proves against the real proxy).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from llmwatch.simulation.litellm_shapes import (KEY_FIELDS, LITELLM_PARAMS_FLAGS, MODEL_INFO_FIELDS, TEAM_FIELDS,
                                                USER_FIELDS)
from llmwatch.simulation.server import FakeServer, exposition

VERSIONS = ("1.83.14", "1.108.7")
NEWEST = VERSIONS[-1]
PROXY_BUDGET_ROW = "litellm-proxy-budget"
# success_callbacks as each version reports them with the prometheus callback on (callback_name():
# strings as given, otherwise function or class names, the proxy's own hooks included).
CALLBACKS = {
    "1.83.14": ["sync_deployment_callback_on_success"],
    "1.108.7": ["sync_deployment_callback_on_success", "_PROXY_VirtualKeyModelMaxBudgetLimiter", "PrometheusLogger",
                "_PROXY_MaxParallelRequestsHandler_v3", "_PROXY_CacheControlCheck", "ResponsesIDSecurity",
                "SkillsInjectionHook", "_PROXY_MaxIterationsHandler", "_PROXY_MaxBudgetPerSessionHandler",
                "_PROXY_SensitiveDataRoutingHandler", "PromptCacheObserver", "ServiceLogging"],
}


def public_readiness_is_minimal(version: str) -> bool:
    """From 1.84 the public readiness answers only status and db."""
    return tuple(int(part) for part in version.split(".")[:2]) >= (1, 84)


@dataclass
class ProxyState:
    deployments: list[dict] = field(default_factory=list)
    keys: list[dict] = field(default_factory=list)
    teams: list[dict] = field(default_factory=list)
    users: list[dict] = field(default_factory=list)
    rate_limited: dict[str, list[dict]] = field(default_factory=dict)  # model_group -> per-deployment entries
    spend_30d: float = 0.0  # /global/spend: the spend logs of the last 30 days
    max_budget: float = 0.0  # proxy-wide; LiteLLM's 0.0 means none
    proxy_budget_spend: float = 0.0  # the litellm-proxy-budget row (only with max_budget > 0)
    proxy_budget_duration: str = "30d"
    proxy_budget_reset_at: str | None = None
    callbacks: list[str] | None = None  # None: what the version reports by default
    healthy: dict[tuple[str, str], bool] = field(default_factory=dict)  # (model, api_base) -> healthy
    requests: dict[str, tuple[int, int]] = field(default_factory=dict)  # model group -> (requests, failed)
    fallbacks: dict[tuple[str, str], int] = field(default_factory=dict)  # (group, fallback group) -> successful

    def serve(self, group: str, requests: int = 1, failed: int = 0) -> None:
        """Account client requests to a model group, as the proxy's counters would."""
        sent, lost = self.requests.get(group, (0, 0))
        self.requests[group] = (sent + requests, lost + failed)


def deployment(group: str, model: str, api_base: str, model_id: str, *, provider: str = "hosted_vllm",
               input_cost: float | None = None, output_cost: float | None = None, mode: str | None = "chat",
               **prices: float) -> dict:
    """A deployment as the proxy's config gives it: ``prices`` are more of LiteLLM's price fields
    (``input_cost_per_second=...``, ``cache_read_input_token_cost=...``)."""
    if input_cost is not None:
        prices["input_cost_per_token"] = input_cost
    if output_cost is not None:
        prices["output_cost_per_token"] = output_cost
    return {"model_name": group, "model": f"{provider}/{model}", "api_base": api_base, "id": model_id,
            "provider": provider, "mode": mode, "prices": prices}


def model_info_entry(d: dict, version: str) -> dict:
    """One /model/info entry for a deployment, as ``version`` answers it."""
    params = {"model": d["model"], "api_base": d["api_base"], **d["prices"], **LITELLM_PARAMS_FLAGS[version]}
    info = dict.fromkeys(MODEL_INFO_FIELDS[version])
    info |= {"id": d["id"], "db_model": False, "key": d["model"], "litellm_provider": d["provider"], "mode": d["mode"],
             "supported_openai_params": ["max_tokens", "stream", "stream_options", "temperature", "top_p"]}
    if public_readiness_is_minimal(version):
        info |= d["prices"] | ({"pricing_overrides": sorted(d["prices"])} if d["prices"] else {})
    else:  # 1.83: only per-token prices reach model_info (0 when the deployment sets none)
        info |= {name: d["prices"].get(name, 0) for name in ("input_cost_per_token", "output_cost_per_token")}
    if version in LITELLM_PARAMS_FLAGS and "member_auto_router" in info:
        info["member_auto_router"] = False
    return {"model_name": d["model_name"], "litellm_params": params, "model_info": info}


def key(token: str, alias: str | None, spend: float, *, max_budget: float | None = None,
        expires: str | None = None, blocked: bool | None = None, team_id: str | None = None,
        user_id: str | None = None, budget_duration: str | None = None, budget_reset_at: str | None = None,
        budget_limits: list[dict] | None = None) -> dict:
    """A virtual key: the fields the exporter reads (the rest of the row comes from the version's shape)."""
    return {"token": token, "key_name": f"sk-...{token[-4:]}", "key_alias": alias, "spend": spend,
            "max_budget": max_budget, "expires": expires, "blocked": blocked, "team_id": team_id,
            "user_id": user_id, "budget_duration": budget_duration, "budget_reset_at": budget_reset_at,
            "budget_limits": budget_limits, "created_at": "2026-10-01T08:00:00Z"}


def team(team_id: str, alias: str, spend: float, max_budget: float | None = None, *, soft_budget: float | None = None,
         budget_duration: str | None = None, budget_reset_at: str | None = None,
         budget_limits: list[dict] | None = None) -> dict:
    return {"team_id": team_id, "team_alias": alias, "spend": spend, "max_budget": max_budget,
            "soft_budget": soft_budget, "budget_duration": budget_duration, "budget_reset_at": budget_reset_at,
            "budget_limits": budget_limits}


def user(user_id: str, spend: float, max_budget: float | None = None, *, budget_duration: str | None = None,
         budget_reset_at: str | None = None) -> dict:
    return {"user_id": user_id, "user_email": f"{user_id}@example.com", "user_role": "internal_user",
            "spend": spend, "max_budget": max_budget, "budget_duration": budget_duration,
            "budget_reset_at": budget_reset_at}


def window(duration: str, max_budget: float, reset_at: str) -> dict:
    """One of ``budget_limits``: a budget of its own per ``duration``."""
    return {"budget_duration": duration, "max_budget": max_budget, "reset_at": reset_at}


def sample_state(keys: int = 30) -> ProxyState:
    """The proxy of the simulated H200 server: three model groups over vLLM (one priced per second of
    GPU time, as self-hosted vLLM often is), teams, users and keys with budgets of every kind."""
    state = ProxyState(
        deployments=[
            deployment("llama-3.1-70b", "meta-llama/Llama-3.1-70B-Instruct", "http://vllm-llama-a:8000/v1",
                       "d-llama-a", input_cost=2e-7, output_cost=6e-7, cache_read_input_token_cost=5e-8),
            deployment("llama-3.1-70b", "meta-llama/Llama-3.1-70B-Instruct", "http://vllm-llama-b:8000/v1",
                       "d-llama-b", input_cost=2e-7, output_cost=6e-7, cache_read_input_token_cost=5e-8),
            deployment("qwen3-32b", "Qwen/Qwen3-32B", "http://vllm-qwen:8000/v1", "d-qwen", mode=None,
                       input_cost_per_second=0.0011),
            deployment("embed", "BAAI/bge-m3", "http://vllm-embed:8000/v1", "d-embed", mode="embedding",
                       input_cost=0.0, output_cost=0.0),
        ],
        teams=[team("t-search", "search", 412.5, 1000.0, soft_budget=800.0, budget_duration="30d",
                    budget_reset_at="2026-12-01T00:00:00Z",
                    budget_limits=[window("1d", 60.0, "2026-11-23T00:00:00+00:00"),
                                   window("7d", 300.0, "2026-11-29T00:00:00+00:00")]),
               team("t-chat", "chat", 98.25), team("t-eval", "eval", 0.0, 50.0),
               team("t-frozen", "frozen", 0.0, 0.0)],  # a zero budget: LiteLLM refuses every request
        users=[user("alice", 120.0, 200.0, budget_duration="30d", budget_reset_at="2026-12-01T00:00:00Z"),
               user("bob", 35.5), user("carol", 0.0)],
        spend_30d=510.75, max_budget=2000.0, proxy_budget_spend=140.25, proxy_budget_duration="7d",
        proxy_budget_reset_at="2026-11-29T00:00:00Z",
        rate_limited={"llama-3.1-70b": [{"api_base": "http://vllm-llama-b:8000/v1", "daily_data": [
            {"api_base": "http://vllm-llama-b:8000/v1", "date": "Nov 21", "num_rate_limit_exceptions": 4},
            {"api_base": "http://vllm-llama-b:8000/v1", "date": "Nov 22", "num_rate_limit_exceptions": 17}],
            "sum_num_rate_limit_exceptions": 21}]},
        requests={"llama-3.1-70b": (1200, 3), "qwen3-32b": (340, 0), "embed": (90, 0)},
        fallbacks={("llama-3.1-70b", "qwen3-32b"): 2},
        healthy={("hosted_vllm/meta-llama/Llama-3.1-70B-Instruct", "http://vllm-llama-a:8000/v1"): True,
                 ("hosted_vllm/meta-llama/Llama-3.1-70B-Instruct", "http://vllm-llama-b:8000/v1"): False,
                 ("hosted_vllm/Qwen/Qwen3-32B", "http://vllm-qwen:8000/v1"): True})
    for i in range(keys):
        token = f"{i:02d}" + "ab3f" * 15 + f"{i:02d}"  # 64 hex digits, like LiteLLM's SHA-256 of the key
        state.keys.append(key(token, f"svc-{i:02d}" if i % 5 else None, round(100.0 / (i + 1), 4),
                              max_budget=150.0 if i < 3 else None,
                              budget_duration="30d" if i < 3 else None,
                              budget_reset_at="2026-12-01T00:00:00Z" if i < 3 else None,
                              budget_limits=[window("1d", 10.0, "2026-11-23T00:00:00+00:00")] if i == 1 else None,
                              expires="2026-12-31T00:00:00Z" if i % 7 == 0 else
                              "2026-01-01T00:00:00+00:00" if i == 9 else None,
                              blocked=True if i == 4 else None, team_id="t-search" if i % 2 else "t-chat"))
    return state


# LiteLLM's latency buckets (litellm/types/integrations/prometheus.py) and how simulated requests
# spread over them: (share of requests, seconds); tokens per request (input, output).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 420.0, 600.0)
LATENCY_MIX = ((0.5, 0.4), (0.4, 0.9), (0.1, 4.0))
TOKENS_PER_REQUEST = (600, 200)


def prometheus_metrics(state: ProxyState) -> bytes:
    """LiteLLM's /metrics for this state: deployment state, request/failure/fallback counters,
    end-to-end latency, tokens and spend per model group."""
    deployment_labels = ["litellm_model_name", "model_id", "api_base", "api_provider"]
    health = GaugeMetricFamily("litellm_deployment_state", "LLM Deployment Analytics - The state of the deployment: "
                               "0 = healthy, 1 = partial outage, 2 = complete outage", labels=deployment_labels)
    calls = CounterMetricFamily("litellm_deployment_total_requests", "LLM Deployment Analytics - Total number of "
                                "LLM API calls via litellm - success + failure", labels=["requested_model"] + deployment_labels)
    failures = CounterMetricFamily("litellm_deployment_failure_responses", "LLM Deployment Analytics - Total number "
                                   "of failed LLM API calls", labels=["requested_model"] + deployment_labels)
    total = CounterMetricFamily("litellm_proxy_total_requests_metric", "Total number of requests made to the proxy "
                                "server - track number of client side requests", labels=["requested_model", "status_code"])
    failed = CounterMetricFamily("litellm_proxy_failed_requests_metric", "Total number of failed responses from "
                                 "proxy - the client did not get a success response from litellm proxy",
                                 labels=["requested_model", "exception_status"])
    fallbacks = CounterMetricFamily("litellm_deployment_successful_fallbacks", "LLM Deployment Analytics - Number "
                                    "of successful fallback requests from primary model -> fallback model",
                                    labels=["requested_model", "fallback_model"])
    caller = ["requested_model", "model", "hashed_api_key", "api_key_alias", "team", "team_alias"]
    latency = HistogramMetricFamily("litellm_request_total_latency_metric", "Total latency (seconds) for a request "
                                    "to LiteLLM", labels=caller)
    spend = CounterMetricFamily("litellm_spend_metric", "Total spend on LLM requests", labels=caller)
    tokens = {direction: CounterMetricFamily(f"litellm_{direction}_tokens_metric", f"Total number of {direction} "
                                             "tokens from LLM requests", labels=caller)
              for direction in ("input", "output")}
    for d in state.deployments:
        model, api_base = d["model"], d["api_base"]
        labels = [model, d["id"], api_base, d["provider"]]
        health.add_metric(labels, 0.0 if state.healthy.get((model, api_base), True) else 2.0)
        sent, lost = state.requests.get(d["model_name"], (0, 0))
        share = sum(1 for e in state.deployments if e["model_name"] == d["model_name"])
        calls.add_metric([d["model_name"]] + labels, sent / share)
        failures.add_metric([d["model_name"]] + labels, lost / share)
    for group, (sent, lost) in state.requests.items():
        total.add_metric([group, "200"], sent - lost)
        if lost:
            total.add_metric([group, "500"], lost)
            failed.add_metric([group, "500"], lost)
        first = next((d for d in state.deployments if d["model_name"] == group), None)
        values = [group, first["model"] if first else group, "None", "None", "None", "None"]
        served = sent - lost
        latency.add_metric(values, buckets=[(str(le), sum(share * served for share, s in LATENCY_MIX if s <= le))
                                            for le in LATENCY_BUCKETS] + [("+Inf", served)],
                           sum_value=sum(share * served * s for share, s in LATENCY_MIX))
        prompt, output = TOKENS_PER_REQUEST
        tokens["input"].add_metric(values, prompt * served)
        tokens["output"].add_metric(values, output * served)
        prices = first["prices"] if first else {}
        spend.add_metric(values, served * (prompt * (prices.get("input_cost_per_token") or 0)
                                           + output * (prices.get("output_cost_per_token") or 0)))
    for (group, fallback), count in state.fallbacks.items():
        fallbacks.add_metric([group, fallback], count)
    return exposition([health, calls, failures, total, failed, fallbacks, latency, spend, *tokens.values()])


def _error(status: int, message: str, kind: str) -> tuple[int, str, bytes]:
    body = {"error": {"message": message, "type": kind, "param": "None", "code": str(status)}}
    return status, "application/json", json.dumps(body).encode()


class FakeLitellmServer(FakeServer):
    """``mode``: ok, no_db (the proxy runs without a database), db_down (its database does not
    answer), garbage (HTML everywhere), error (500 everywhere), hang, not_ready (readiness 503 from a
    failed check), shutting_down (graceful shutdown)."""

    def __init__(self, version: str = NEWEST, state: ProxyState | None = None, *, master_key: str = "sk-master",
                 mode: str = "ok", latency: float = 0.0, host: str = "127.0.0.1", port: int = 0, router=None):
        if version not in VERSIONS:
            raise ValueError(f"unknown LiteLLM version {version!r}; simulated: {', '.join(VERSIONS)}")
        super().__init__(hang=mode == "hang", latency=latency, host=host, port=port)
        self.version, self.state, self.master_key, self.mode = version, state or sample_state(), master_key, mode
        # router(group, request) -> (status, content type, body) or None: where chat requests go
        self.router = router

    def answer_post(self, path: str, headers: dict[str, str], body: bytes):
        route = urlsplit(path).path
        if route not in ("/v1/chat/completions", "/chat/completions") or self.router is None:
            return 404, "application/json", b'{"detail": "Not Found"}'
        if headers.get("authorization") != f"Bearer {self.master_key}":
            return _error(401, "Authentication Error, Invalid proxy server token passed.", "auth_error")
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return _error(400, "Invalid JSON body", "bad_request_error")
        group = request.get("model") if isinstance(request, dict) else None
        answer = self.router(group, request) if isinstance(group, str) else None
        if answer is None:
            return _error(400, f"Invalid model name passed in model={group}", "bad_request_error")
        self.state.serve(group, failed=0 if answer[0] == 200 else 1)
        return answer

    def answer(self, path: str, headers: dict[str, str]) -> tuple[int, str, bytes]:
        if self.mode == "error":
            return 500, "text/plain", b"Internal Server Error"
        if self.mode == "garbage":
            return 200, "text/html", b"<html><body>502 Bad Gateway</body></html>"
        parts = urlsplit(path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        route = parts.path
        minimal = public_readiness_is_minimal(self.version)
        if route in ("/health/liveliness", "/health/liveness"):
            if self.mode == "shutting_down":
                return 503, "application/json", b'{"status": "shutting_down"}'
            return 200, "application/json", b'"I\'m alive!"'
        if route == "/health/readiness":
            return self._readiness(details=not minimal)
        if route == "/health/readiness/details" and not minimal:
            return 404, "application/json", b'{"detail": "Not Found"}'
        if route == "/metrics":  # the demo's Prometheus reads it without a key
            return 200, "text/plain; version=0.0.4; charset=utf-8", prometheus_metrics(self.state)
        if headers.get("authorization") != f"Bearer {self.master_key}":
            return _error(401, "Authentication Error, Invalid proxy server token passed.", "auth_error")
        if route == "/health/readiness/details":
            return self._readiness(details=True)
        if route in ("/v1/models", "/models"):
            groups = dict.fromkeys(d["model_name"] for d in self.state.deployments)
            return self._json({"object": "list", "data": [{"id": g, "object": "model", "created": 1677610602,
                                                           "owned_by": "openai"} for g in groups]})
        if route in ("/model/info", "/v1/model/info"):
            return self._json({"data": [model_info_entry(d, self.version) for d in self.state.deployments]})
        if route == "/health":
            healthy = [{"model": m, "api_base": b} for (m, b), ok in self.state.healthy.items() if ok]
            unhealthy = [{"model": m, "api_base": b, "error": "Connection refused"}
                         for (m, b), ok in self.state.healthy.items() if not ok]
            return self._json({"healthy_endpoints": healthy, "unhealthy_endpoints": unhealthy,
                               "healthy_count": len(healthy), "unhealthy_count": len(unhealthy)})
        if route in ("/global/spend", "/key/list", "/team/list", "/user/list",
                     "/global/activity/exceptions/deployment") and self.mode in ("no_db", "db_down"):
            return _error(500, "No db connected", "internal_server_error")
        if route == "/global/spend":
            return self._json({"spend": self.state.spend_30d, "max_budget": self.state.max_budget})
        if route == "/key/list":
            keys = [self._row(KEY_FIELDS, k) for k in self.state.keys] \
                if query.get("return_full_object") == "true" else [k["token"] for k in self.state.keys]
            return self._json(self._paged(keys, query, "size", 10, "keys", "total_count", "current_page"))
        if route == "/team/list":
            rows = []
            for t in sorted(self.state.teams, key=lambda t: t.get("team_alias") or ""):
                row = self._row(TEAM_FIELDS, t)
                row["keys"] = [self._row(KEY_FIELDS, k) for k in self.state.keys if k.get("team_id") == t["team_id"]]
                rows.append(row)
            return self._json(rows)
        if route == "/user/list":
            users = list(self.state.users)
            if self.state.max_budget > 0:
                users.append(user(PROXY_BUDGET_ROW, self.state.proxy_budget_spend, self.state.max_budget,
                                  budget_duration=self.state.proxy_budget_duration,
                                  budget_reset_at=self.state.proxy_budget_reset_at) | {"user_email": None,
                                                                                       "user_role": None})
            rows = [self._row(USER_FIELDS, u) for u in users]
            answer = self._paged(rows, query, "page_size", 25, "users", "total", "page")
            return self._json(answer | {"page_size": int(query.get("page_size", 25))})
        if route == "/global/activity/exceptions/deployment":
            if "model_group" not in query:
                return _error(422, "model_group required", "bad_request")
            return self._json(self.state.rate_limited.get(query["model_group"], []))
        return 404, "application/json", b'{"detail": "Not Found"}'

    def _row(self, shapes: dict, given: dict) -> dict:
        return {**shapes[self.version], **given}

    def _readiness(self, details: bool) -> tuple[int, str, bytes]:
        if self.mode == "shutting_down":
            return 503, "application/json", b'{"status": "shutting_down"}'
        if self.mode == "not_ready":  # the check itself failed: FastAPI's HTTPException body
            return 503, "application/json", b'{"detail": "Service Unhealthy (simulated failure)"}'
        db = {"no_db": "Not connected", "db_down": "disconnected"}.get(self.mode, "connected")
        body = {"status": "healthy", "db": db}
        if details:
            body |= {"cache": None, "litellm_version": self.version,
                     "success_callbacks": CALLBACKS[self.version] if self.state.callbacks is None
                     else self.state.callbacks,
                     "use_aiohttp_transport": True, "log_level": "WARNING", "is_detailed_debug": False}
            if public_readiness_is_minimal(self.version):
                body |= {"show_no_redis_warning": False, "show_env_credential_login_warning": False}
        # from 1.84 a configured database that does not answer makes readiness 503 (the body still says so)
        status = 503 if public_readiness_is_minimal(self.version) and db == "disconnected" else 200
        return status, "application/json", json.dumps(body).encode()

    @staticmethod
    def _json(body) -> tuple[int, str, bytes]:
        return 200, "application/json", json.dumps(body).encode()

    @staticmethod
    def _paged(rows: list, query: dict, size_key: str, default_size: int, rows_key: str, total_key: str,
               page_key: str) -> dict:
        size = int(query.get(size_key, default_size))
        number = int(query.get("page", 1))
        return {rows_key: rows[(number - 1) * size: number * size], total_key: len(rows), page_key: number,
                "total_pages": max(1, math.ceil(len(rows) / size))}
