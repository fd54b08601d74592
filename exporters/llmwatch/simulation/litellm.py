"""A simulated LiteLLM proxy admin API, for demo mode and tests (LiteLLM itself cannot run here).

Answers are built from a small proxy state (deployments, keys, teams, users, 429 logs) in the
shapes LiteLLM's proxy endpoints document, for two generations:

- ``1.55.8`` (Dec 2024): ``/health/readiness`` says ``status: "healthy"``; ``/user/list`` is a
  bare list; no ``/health/latest``.
- ``1.81.3`` (2026): the readiness answer carries the database check's ``status`` and
  ``last_updated``; ``/user/list`` is paged ``{users, total, page, page_size, total_pages}``.

Both: ``/key/list`` is paged ``{keys, total_count, current_page, total_pages}`` (full objects with
``return_full_object=true``), ``/team/list`` a bare list, errors ``{"error": {message, type,
param, code}}``. Endpoints other than liveliness and readiness need ``Authorization: Bearer
<master key>``. ``/metrics`` is LiteLLM's own Prometheus endpoint (the ``prometheus`` callback): a
few of its families, as its metric definitions name and label them; it needs no key before v1.85.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from llmwatch.simulation.server import FakeServer, exposition

VERSIONS = ("1.55.8", "1.81.3")
NEWEST = VERSIONS[-1]


@dataclass
class ProxyState:
    deployments: list[dict] = field(default_factory=list)
    keys: list[dict] = field(default_factory=list)
    teams: list[dict] = field(default_factory=list)
    users: list[dict] = field(default_factory=list)
    rate_limited: dict[str, list[dict]] = field(default_factory=dict)  # model_group -> per-deployment entries
    global_spend: float = 0.0
    global_max_budget: float | None = None
    callbacks: list[str] = field(default_factory=lambda: ["prometheus", "langfuse"])
    healthy: dict[tuple[str, str], bool] = field(default_factory=dict)  # (model, api_base) -> healthy
    requests: dict[str, tuple[int, int]] = field(default_factory=dict)  # model group -> (requests, failed)
    fallbacks: dict[tuple[str, str], int] = field(default_factory=dict)  # (group, fallback group) -> successful

    def serve(self, group: str, requests: int = 1, failed: int = 0) -> None:
        """Account client requests to a model group, as the proxy's counters would."""
        sent, lost = self.requests.get(group, (0, 0))
        self.requests[group] = (sent + requests, lost + failed)


def deployment(group: str, model: str, api_base: str, model_id: str, *, provider: str = "hosted_vllm",
               input_cost: float | None = None, output_cost: float | None = None, mode: str = "chat") -> dict:
    """One /model/info entry."""
    return {"model_name": group,
            "litellm_params": {"model": f"{provider}/{model}", "api_base": api_base},
            "model_info": {"id": model_id, "mode": mode, "db_model": False, "litellm_provider": provider,
                           "input_cost_per_token": input_cost, "output_cost_per_token": output_cost,
                           "max_tokens": 32768}}


def key(token: str, alias: str | None, spend: float, *, max_budget: float | None = None,
        expires: str | None = None, blocked: bool | None = None, team_id: str | None = None,
        user_id: str | None = None) -> dict:
    return {"token": token, "key_name": f"sk-...{token[-4:]}", "key_alias": alias, "spend": spend,
            "max_budget": max_budget, "expires": expires, "blocked": blocked, "team_id": team_id,
            "user_id": user_id, "models": [], "budget_reset_at": None, "created_at": "2026-10-01T08:00:00Z",
            "metadata": {}}


def team(team_id: str, alias: str, spend: float, max_budget: float | None = None) -> dict:
    return {"team_id": team_id, "team_alias": alias, "spend": spend, "max_budget": max_budget,
            "budget_reset_at": None, "blocked": False, "models": [], "members_with_roles": []}


def user(user_id: str, spend: float, max_budget: float | None = None) -> dict:
    return {"user_id": user_id, "user_email": f"{user_id}@example.com", "user_role": "internal_user",
            "spend": spend, "max_budget": max_budget, "teams": []}


def sample_state(keys: int = 30) -> ProxyState:
    """The proxy of the simulated H200 server: three model groups over vLLM, teams, users and keys."""
    state = ProxyState(
        deployments=[
            deployment("llama-3.1-70b", "meta-llama/Llama-3.1-70B-Instruct", "http://vllm-llama-a:8000/v1",
                       "d-llama-a", input_cost=2e-7, output_cost=6e-7),
            deployment("llama-3.1-70b", "meta-llama/Llama-3.1-70B-Instruct", "http://vllm-llama-b:8000/v1",
                       "d-llama-b", input_cost=2e-7, output_cost=6e-7),
            deployment("qwen3-32b", "Qwen/Qwen3-32B", "http://vllm-qwen:8000/v1", "d-qwen"),
            deployment("embed", "BAAI/bge-m3", "http://vllm-embed:8000/v1", "d-embed", mode="embedding",
                       input_cost=0.0, output_cost=0.0),
        ],
        teams=[team("t-search", "search", 412.5, 1000.0), team("t-chat", "chat", 98.25), team("t-eval", "eval", 0.0, 50.0)],
        users=[user("alice", 120.0, 200.0), user("bob", 35.5), user("carol", 0.0)],
        global_spend=510.75, global_max_budget=2000.0,
        rate_limited={"llama-3.1-70b": [{"api_base": "http://vllm-llama-b:8000/v1", "daily_data": [
            {"date": "Nov 21", "num_rate_limit_exceptions": 4}, {"date": "Nov 22", "num_rate_limit_exceptions": 17}],
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
        model, api_base = d["litellm_params"]["model"], d["litellm_params"]["api_base"]
        labels = [model, d["model_info"]["id"], api_base, d["model_info"]["litellm_provider"]]
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
        values = [group, first["litellm_params"]["model"] if first else group, "None", "None", "None", "None"]
        served = sent - lost
        latency.add_metric(values, buckets=[(str(le), sum(share * served for share, s in LATENCY_MIX if s <= le))
                                            for le in LATENCY_BUCKETS] + [("+Inf", served)],
                           sum_value=sum(share * served * s for share, s in LATENCY_MIX))
        prompt, output = TOKENS_PER_REQUEST
        tokens["input"].add_metric(values, prompt * served)
        tokens["output"].add_metric(values, output * served)
        info = first["model_info"] if first else {}
        spend.add_metric(values, served * (prompt * (info.get("input_cost_per_token") or 0)
                                           + output * (info.get("output_cost_per_token") or 0)))
    for (group, fallback), count in state.fallbacks.items():
        fallbacks.add_metric([group, fallback], count)
    return exposition([health, calls, failures, total, failed, fallbacks, latency, spend, *tokens.values()])


def _error(status: int, message: str, kind: str) -> tuple[int, str, bytes]:
    body = {"error": {"message": message, "type": kind, "param": "None", "code": str(status)}}
    return status, "application/json", json.dumps(body).encode()


class FakeLitellmServer(FakeServer):
    """``mode``: ok, no_db (the proxy runs without a database), garbage (HTML everywhere), error
    (500 everywhere), hang, not_ready (readiness 503)."""

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
        if route in ("/health/liveliness", "/health/liveness"):
            return 200, "application/json", b'"I\'m alive!"'
        if route == "/health/readiness":
            return self._readiness()
        if route == "/metrics":
            return 200, "text/plain; version=0.0.4; charset=utf-8", prometheus_metrics(self.state)
        if headers.get("authorization") != f"Bearer {self.master_key}":
            return _error(401, "Authentication Error, Invalid proxy server token passed.", "auth_error")
        if route in ("/v1/models", "/models"):
            groups = dict.fromkeys(d["model_name"] for d in self.state.deployments)
            return self._json({"object": "list", "data": [{"id": g, "object": "model", "created": 1677610602,
                                                           "owned_by": "openai"} for g in groups]})
        if route in ("/model/info", "/v1/model/info"):
            return self._json({"data": self.state.deployments})
        if route == "/health":
            healthy = [{"model": m, "api_base": b} for (m, b), ok in self.state.healthy.items() if ok]
            unhealthy = [{"model": m, "api_base": b, "error": "Connection refused"}
                         for (m, b), ok in self.state.healthy.items() if not ok]
            return self._json({"healthy_endpoints": healthy, "unhealthy_endpoints": unhealthy,
                               "healthy_count": len(healthy), "unhealthy_count": len(unhealthy)})
        if route in ("/global/spend", "/key/list", "/team/list", "/user/list",
                     "/global/activity/exceptions/deployment") and self.mode == "no_db":
            return _error(500, "No db connected", "internal_server_error")
        if route == "/global/spend":
            return self._json({"spend": self.state.global_spend, "max_budget": self.state.global_max_budget})
        if route == "/key/list":
            keys = self.state.keys if query.get("return_full_object") == "true" else [k["token"] for k in self.state.keys]
            return self._json(self._paged(keys, query, "size", "keys", "total_count", "current_page"))
        if route == "/team/list":
            return self._json(self.state.teams)
        if route == "/user/list":
            if self.version == "1.55.8":
                return self._json(self.state.users)
            return self._json(self._paged(self.state.users, query, "page_size", "users", "total", "page"))
        if route == "/global/activity/exceptions/deployment":
            if "model_group" not in query:
                return _error(422, "model_group required", "bad_request")
            return self._json(self.state.rate_limited.get(query["model_group"], []))
        return 404, "application/json", b'{"detail": "Not Found"}'

    def _readiness(self) -> tuple[int, str, bytes]:
        if self.mode == "not_ready":
            return 503, "application/json", b'{"detail": "Service Unhealthy (database unreachable)"}'
        body = {"status": "healthy", "db": "Not connected" if self.mode == "no_db" else "connected",
                "cache": None, "litellm_version": self.version, "success_callbacks": self.state.callbacks}
        if self.version != "1.55.8" and self.mode != "no_db":
            body |= {"status": "connected", "last_updated": "2026-11-22T10:00:00", "use_aiohttp_transport": True}
        return self._json(body)

    @staticmethod
    def _json(body) -> tuple[int, str, bytes]:
        return 200, "application/json", json.dumps(body).encode()

    @staticmethod
    def _paged(rows: list, query: dict, size_key: str, rows_key: str, total_key: str, page_key: str) -> dict:
        size = int(query.get(size_key, 10))
        number = int(query.get("page", 1))
        return {rows_key: rows[(number - 1) * size: number * size], total_key: len(rows), page_key: number,
                "total_pages": max(1, math.ceil(len(rows) / size))}
