"""The LiteLLM exporter's scrape: what LiteLLM's own /metrics lacks, from its admin API.

Per scrape, concurrently under the budget: ``/health/liveliness`` and ``/health/readiness``
always (read in its 503 answers too: LiteLLM >= 1.84 says there that its database is down);
``/model/info`` and ``/health/readiness/details`` (version, callbacks and cache, keyed from 1.84;
absent before, when the public readiness carried them) when their cache expired; the admin lists
(keys, teams, users, 30-day spend, 429s per deployment) when theirs expired and the proxy's
database is connected; ``/health`` only when the user said LiteLLM runs background health checks
(otherwise each call would make a real LLM request per deployment). No endpoint asked makes an
LLM call. Cached answers are served for their cache time and dropped, not kept stale, when a
refresh fails.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

from prometheus_client.core import GaugeMetricFamily

from llmwatch.core.fetch import ERRORS as FETCH_ERRORS, Fetcher, Reply
from llmwatch.core.cache import Expiring
from llmwatch.core.logs import WarnOnce
from llmwatch.core.scrape import ExporterCollector, ScrapeErrors, one_in_flight
from llmwatch.exporters.litellm import payloads
from llmwatch.exporters.litellm.payloads import BadPayload, ProxyBudget, Readiness, Spender

log = logging.getLogger(__name__)

# auth: 401/403 (master key missing or wrong); invalid_answer: not JSON, or not LiteLLM's shape.
ERROR_REASONS = (*FETCH_ERRORS, "auth", "invalid_answer")
PAGE_SIZE = 100
LISTS = {  # kind -> (path, rows key, page-size parameter, extra parameters)
    "key": ("/key/list", "keys", "size", {"return_full_object": "true"}),
    "team": ("/team/list", "teams", "", {}),
    "user": ("/user/list", "users", "page_size", {}),
}
SPENDER_LABELS = {"key": ["hashed_api_key", "api_key_alias"], "team": ["team", "team_alias"], "user": ["user"]}
DETAILS = "/health/readiness/details"


@dataclass
class AdminData:
    spend: tuple[float, float | None] | None = None  # 30-day spend, proxy-wide max_budget
    proxy_budget: ProxyBudget | None = None
    spenders: dict[str, list[Spender]] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    rate_limited: dict[tuple[str, str], int] = field(default_factory=dict)


class LitellmExporter:
    def __init__(self, *, url: str, fetcher: Fetcher, budget: float, top_n: int = 20, max_rows: int = 10000,
                 metadata_seconds: float = 60.0, admin_seconds: float = 60.0, deployment_health: bool = False,
                 health_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 today: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.url = url.rstrip("/")
        self.fetcher = fetcher
        self.budget = budget
        self.top_n = top_n
        self.max_rows = max_rows
        self.deployment_health = deployment_health
        self.clock = clock
        self.today = today
        self.models = Expiring(metadata_seconds, clock)
        self.details = Expiring(metadata_seconds, clock)  # /health/readiness/details: version, callbacks, cache
        self.admin = Expiring(admin_seconds, clock)
        self.health = Expiring(health_seconds, clock)
        self.unsupported: set[str] = set()  # paths this LiteLLM version answers 404
        self.warn = WarnOnce(log)
        self.asked: list[str] = []  # endpoints asked this scrape
        self.collector = ExporterCollector("litellm", one_in_flight(self.scrape), reasons=ERROR_REASONS)

    def close(self) -> None:
        self.fetcher.close()

    # ---- I/O ----------------------------------------------------------------------------------

    def _get(self, paths: list[str], deadline: float) -> list[Reply]:
        self.asked.extend(p.split("?", 1)[0] for p in paths)
        return self.fetcher.get_all([self.url + p for p in paths], max(deadline - self.clock(), 0.05))

    def _decode(self, path: str, reply: Reply, errors: ScrapeErrors, failed: list[str],
                accept: tuple[int, ...] = (200,), optional: bool = True) -> Any:
        """The JSON of a reply, or None after counting why there is none.

        A 404 on an ``optional`` endpoint means this LiteLLM version lacks it: not an error.
        """
        if optional and reply.status == 404 and reply.error == "http_status":
            endpoint = path.split("?", 1)[0]
            if endpoint not in self.unsupported:
                self.unsupported.add(endpoint)
                log.info("LiteLLM has no such endpoint (older version?); not asked again",
                         extra={"endpoint": endpoint})
            return None
        if reply.status in (401, 403):
            reason, detail = "auth", f"HTTP {reply.status}: set LLMWATCH_LITELLM__MASTER_KEY to the proxy's master key"
        elif reply.ok or (reply.error == "http_status" and reply.status in accept):
            try:
                return json.loads(reply.body)
            except ValueError:
                reason, detail = "invalid_answer", "not JSON"
        else:
            reason, detail = reply.error, reply.detail
        self._fail(path, reason, detail, errors, failed)
        return None

    def _fail(self, path: str, reason: str, detail: str, errors: ScrapeErrors, failed: list[str]) -> None:
        errors.add(reason)
        failed.append(path.split("?", 1)[0])
        # once per endpoint and reason, not every 30 s
        self.warn((path, reason), "LiteLLM endpoint not read", url=self.url, endpoint=path.split("?", 1)[0],
                  reason=reason, detail=detail)

    def _parse(self, path: str, parser: Callable[[], Any], errors: ScrapeErrors, failed: list[str]) -> Any:
        try:
            return parser()
        except BadPayload as e:
            self._fail(path, "invalid_answer", str(e), errors, failed)
            return None

    # ---- scrape -------------------------------------------------------------------------------

    def scrape(self, errors: ScrapeErrors) -> list:
        now = self.clock()
        deadline = now + self.budget
        failed: list[str] = []
        self.asked = []
        asked = ["/health/liveliness", "/health/readiness"]
        if self.models.due(now):
            asked.append("/model/info")
        if self.details.due(now):
            asked.append(DETAILS)
        if self.deployment_health and self.health.due(now):
            asked.append("/health")
        asked = asked[:2] + [p for p in asked[2:] if p not in self.unsupported]
        replies = dict(zip(asked, self._get(asked, deadline)))

        alive = replies["/health/liveliness"]
        ready, readiness = self._readiness(replies["/health/readiness"], errors, failed)
        self._check_alive(alive, errors, failed)
        if DETAILS in replies:
            self.details.drop()
            found = self._readiness_details(replies[DETAILS], errors, failed)
            if found is not None:
                self.details.set(found, now)

        if "/model/info" in replies:
            self.models.drop()
            body = self._decode("/model/info", replies["/model/info"], errors, failed)
            if body is not None:
                found = self._parse("/model/info", lambda: payloads.deployments(body), errors, failed)
                if found is not None:
                    self.models.set(found, now)
        if "/health" in replies:
            self.health.drop()
            body = self._decode("/health", replies["/health"], errors, failed)
            if body is not None:
                found = self._parse("/health", lambda: payloads.deployment_health(body), errors, failed)
                if found is not None:
                    self.health.set(found, now)

        if readiness is not None and readiness.db_connected:
            if self.admin.due(now):
                self.admin.drop()
                admin = self._read_admin(deadline, errors, failed)
                if admin is not None:
                    self.admin.set(admin, now)
        else:
            self.admin.drop()  # no database, nothing to read; the families go away

        up = ready is not None and not failed
        return self._families(up, alive, ready, readiness, failed)

    def _check_alive(self, alive: Reply, errors: ScrapeErrors, failed: list[str]) -> None:
        """Liveliness answers 200 when the proxy lives; anything else (500, 401, 429) fails its
        endpoint, with auth for 401/403 as on every other endpoint."""
        if alive.status in (401, 403):
            self._fail("/health/liveliness", "auth", f"HTTP {alive.status}: the proxy asks for a key on its "
                       "liveness probe; set LLMWATCH_LITELLM__MASTER_KEY", errors, failed)
        elif alive.error == "http_status" and not 200 <= alive.status < 300:
            self._fail("/health/liveliness", "http_status", alive.detail, errors, failed)
        elif alive.error not in ("", "http_status"):
            self._fail("/health/liveliness", alive.error, alive.detail, errors, failed)

    def _readiness(self, reply: Reply, errors: ScrapeErrors, failed: list[str]) -> tuple[bool | None, Readiness | None]:
        """(ready, what the answer says): ready is None when the proxy did not answer readably.

        A 503 is LiteLLM's own "not ready": its body says why when it can (database down, shutting
        down), or is FastAPI's ``{"detail": ...}`` when the check itself failed.
        """
        path = "/health/readiness"
        if reply.status == 503 and reply.error == "http_status":
            try:
                found = payloads.readiness(json.loads(reply.body))
            except ValueError:  # not JSON, or no readiness in it (BadPayload is a ValueError)
                found = None
            return False, None if found is None or found.shutting_down else found
        body = self._decode(path, reply, errors, failed, optional=False)
        found = None if body is None else self._parse(path, lambda: payloads.readiness(body), errors, failed)
        if found is None:
            return None, None
        return (False, None) if found.shutting_down else (True, found)

    def _readiness_details(self, reply: Reply, errors: ScrapeErrors, failed: list[str]) -> Readiness | None:
        """The keyed readiness of LiteLLM >= 1.84 (404 before it: asked once, then never)."""
        if reply.status == 503 and reply.error == "http_status":  # database down: the body still has the rest
            try:
                return payloads.readiness(json.loads(reply.body), DETAILS)
            except ValueError:
                return None
        body = self._decode(DETAILS, reply, errors, failed)
        return None if body is None else self._parse(DETAILS, lambda: payloads.readiness(body, DETAILS), errors, failed)

    def _read_admin(self, deadline: float, errors: ScrapeErrors, failed: list[str]) -> AdminData | None:
        """Global spend, key/team/user lists (all pages, up to max_rows) and today's 429s per deployment."""
        data = AdminData()
        groups = sorted({d.model_group for d in self.models.value or []})
        day = self.today()
        day_param = day.strftime("%Y-%m-%d")
        first = {"/global/spend": "/global/spend"}
        for kind, (path, _, size_key, extra) in LISTS.items():
            params = {"page": 1, size_key: PAGE_SIZE, **extra} if size_key else {}
            first[kind] = f"{path}?{urlencode(params)}" if params else path
        for group in groups:
            params = {"model_group": group, "start_date": day_param, "end_date": day_param}
            first[f"429:{group}"] = f"/global/activity/exceptions/deployment?{urlencode(params)}"
        first = {k: p for k, p in first.items() if p.split("?", 1)[0] not in self.unsupported}
        replies = dict(zip(first, self._get(list(first.values()), deadline)))
        ok = True
        for what, path in first.items():
            body = self._decode(path, replies[what], errors, failed)
            if body is None:
                ok = ok and path.split("?", 1)[0] in self.unsupported
                continue
            if what == "/global/spend":
                data.spend = self._parse(path, lambda: payloads.global_spend(body), errors, failed)
                ok = ok and data.spend is not None
            elif what.startswith("429:"):
                counts = self._parse(path, lambda: payloads.rate_limit_errors(body, day.strftime("%b %d")),
                                     errors, failed)
                if counts is None:
                    ok = False
                    continue
                for api_base, count in counts.items():
                    data.rate_limited[(what[4:], api_base)] = count
            else:
                ok = self._read_list(what, path, body, deadline, data, errors, failed) and ok
        return data if ok else None

    def _read_list(self, kind: str, path: str, body: Any, deadline: float, data: AdminData,
                   errors: ScrapeErrors, failed: list[str]) -> bool:
        list_path, rows_key, size_key, extra = LISTS[kind]
        first = self._parse(path, lambda: payloads.page(body, list_path, rows_key), errors, failed)
        if first is None:
            return False
        rows, total, pages = first
        rows = list(rows)
        if size_key and pages > 1:
            last = min(pages, math.ceil(self.max_rows / PAGE_SIZE))
            more = [f"{list_path}?{urlencode({'page': n, size_key: PAGE_SIZE, **extra})}" for n in range(2, last + 1)]
            for more_path, reply in zip(more, self._get(more, deadline)):
                more_body = self._decode(more_path, reply, errors, failed)
                parsed = None if more_body is None else self._parse(
                    more_path, lambda: payloads.page(more_body, list_path, rows_key), errors, failed)
                if parsed is None:
                    return False
                rows.extend(parsed[0])
            if pages > last:
                self.warn((kind, "truncated"), "more LiteLLM rows than max_rows; the rest are left out of the "
                          "spend figures", list=list_path, total=total, read=len(rows))
        found = self._parse(list_path, lambda: payloads.spenders(rows, kind), errors, failed)
        if found is None:
            return False
        if kind == "user":
            data.proxy_budget = self._parse(list_path, lambda: payloads.proxy_budget(rows), errors, failed)
            total -= data.proxy_budget is not None  # LiteLLM's budget row, not a user
        data.spenders[kind], data.totals[kind] = found, total
        return True

    # ---- families -----------------------------------------------------------------------------

    def _families(self, up: bool, alive: Reply, ready: bool | None, readiness: Readiness | None,
                  failed: list[str]) -> list:
        out = [GaugeMetricFamily("llmwatch_litellm_up", "1 when the proxy answered every admin-API request of this "
                                 "scrape readably (an auth error, a timeout or garbage gives 0).", value=float(up))]
        if alive.error in ("", "http_status"):
            out.append(GaugeMetricFamily("llmwatch_litellm_alive", "1 when /health/liveliness answered 200.",
                                         value=float(alive.status == 200)))
        if ready is not None:
            out.append(GaugeMetricFamily("llmwatch_litellm_ready", "1 when /health/readiness answered 200 "
                                         "(0: 503, the proxy says it cannot serve).", value=float(ready)))
        if readiness is not None and readiness.has_database:
            out.append(GaugeMetricFamily("llmwatch_litellm_db_connected", "1 when the proxy reports its "
                                         "database connected (spend, keys and budgets need it); absent for a "
                                         "proxy without a database.", value=float(readiness.db_connected)))
        # version, callbacks, cache: keyed details (LiteLLM >= 1.84), else the public readiness (<= 1.83)
        about = self.details.value if self.details.value is not None else (
            readiness if readiness is not None and readiness.details else None)
        if about is not None:
            info = GaugeMetricFamily("llmwatch_litellm_info", "LiteLLM version and response-cache type; always 1.",
                                     labels=["version", "cache"])
            info.add_metric([about.version, about.cache], 1.0)
            callbacks = GaugeMetricFamily("llmwatch_litellm_success_callback_info",
                                          "Success callbacks the proxy runs, as LiteLLM names them (class names "
                                          "such as PrometheusLogger, and its own hooks); always 1.",
                                          labels=["callback"])
            for name in about.callbacks:
                callbacks.add_metric([name], 1.0)
            out += [info, callbacks]
        endpoints = GaugeMetricFamily("llmwatch_litellm_endpoint_up", "1 when this admin endpoint answered "
                                      "readably this scrape; 0 when it failed (see scrape_errors_total).",
                                      labels=["endpoint"])
        for path in sorted(set(self.asked) | set(failed)):
            if path not in self.unsupported:
                endpoints.add_metric([path], 0.0 if path in failed else 1.0)
        out.append(endpoints)
        out += self._deployment_families()
        if self.admin.value is not None:
            out += self._admin_families(self.admin.value)
        return out

    def _deployment_families(self) -> list:
        out = []
        if self.models.value is not None:
            labels = ["model_group", "litellm_model_name", "model_id", "api_base", "api_provider", "mode"]
            info = GaugeMetricFamily("llmwatch_litellm_deployment_info",
                                     "A deployment behind a model group, from /model/info; always 1.", labels=labels)
            cost = GaugeMetricFamily("llmwatch_litellm_deployment_cost_per_token_usd",
                                     "Price LiteLLM charges per token for this deployment (absent: no per-token "
                                     "price; see deployment_price_usd for the others).", labels=["model_id", "direction"])
            price = GaugeMetricFamily("llmwatch_litellm_deployment_price_usd",
                                      "Every price LiteLLM charges for this deployment, by its /model/info field "
                                      "(input_cost_per_token, input_cost_per_second, cache_read_input_token_cost...; "
                                      "USD per unit the field names). No price at all: LiteLLM records $0.",
                                      labels=["model_id", "price"])
            for d in sorted(self.models.value, key=lambda d: (d.model_group, d.model_id)):
                info.add_metric([d.model_group, d.litellm_model_name, d.model_id, d.api_base, d.api_provider, d.mode], 1)
                for direction, value in (("input", d.input_cost_per_token), ("output", d.output_cost_per_token)):
                    if value is not None:
                        cost.add_metric([d.model_id, direction], value)
                for name, value in d.prices:
                    price.add_metric([d.model_id, name], value)
            out += [info, cost, price]
        if self.health.value is not None:
            healthy = GaugeMetricFamily("llmwatch_litellm_deployment_healthy",
                                        "1 when LiteLLM's last background health check of the deployment passed.",
                                        labels=["litellm_model_name", "api_base"])
            seen: dict[tuple[str, str], bool] = {}
            for model, api_base, ok in self.health.value:
                seen[(model, api_base)] = seen.get((model, api_base), True) and ok
            for (model, api_base), ok in sorted(seen.items()):
                healthy.add_metric([model, api_base], float(ok))
            out.append(healthy)
        return out

    def _admin_families(self, admin: AdminData) -> list:
        out = []
        if admin.spend is not None:
            spend, budget = admin.spend
            out.append(GaugeMetricFamily("llmwatch_litellm_spend_30d_usd",
                                         "Spend of the last 30 days in LiteLLM's spend logs (USD), from /global/spend.",
                                         value=spend))
            if budget is not None:
                out.append(GaugeMetricFamily("llmwatch_litellm_proxy_max_budget_usd",
                                             "The proxy-wide budget (USD; absent when none is set: LiteLLM's 0).",
                                             value=budget))
        if admin.proxy_budget is not None:
            row = admin.proxy_budget
            out.append(GaugeMetricFamily("llmwatch_litellm_proxy_budget_spend_usd",
                                         "Spend LiteLLM counts against the proxy-wide budget (USD): its "
                                         "litellm-proxy-budget row, back to 0 every budget_duration.", value=row.spend))
            if row.reset_at is not None:
                out.append(GaugeMetricFamily("llmwatch_litellm_proxy_budget_reset_timestamp_seconds",
                                             "When the proxy-wide budget's spend goes back to 0 (Unix time).",
                                             value=row.reset_at))
        entities = GaugeMetricFamily("llmwatch_litellm_entities", "Keys, teams and users the proxy has.",
                                     labels=["kind"])
        for kind, total in sorted(admin.totals.items()):
            entities.add_metric([kind], total)
        out.append(entities)
        now = self.today().timestamp()
        for kind, rows in sorted(admin.spenders.items()):
            labels = SPENDER_LABELS[kind]
            top, other = payloads.top_spenders(rows, self.top_n)
            spend = GaugeMetricFamily(f"llmwatch_litellm_{kind}_spend_usd",
                                      f"Spend of the {self.top_n} biggest-spending {kind}s (USD); "
                                      f"\"{payloads.OTHER}\" sums the rest.", labels=labels)
            budget = GaugeMetricFamily(f"llmwatch_litellm_{kind}_max_budget_usd",
                                       f"Budget of each {kind} shown in {kind}_spend_usd, where one is set (USD).",
                                       labels=labels)
            reset = GaugeMetricFamily(f"llmwatch_litellm_{kind}_budget_reset_timestamp_seconds",
                                      f"When the spend of each {kind} shown goes back to 0 (its budget_duration; "
                                      "Unix time).", labels=labels)
            for s in top + ([other] if other else []):
                spend.add_metric(list(s.labels), s.spend)
                if s.max_budget is not None:
                    budget.add_metric(list(s.labels), s.max_budget)
                if s.budget_reset_at is not None:
                    reset.add_metric(list(s.labels), s.budget_reset_at)
            out += [spend, budget, reset]
            if kind == "team":
                soft = GaugeMetricFamily("llmwatch_litellm_team_soft_budget_usd", "Soft budget of each team shown "
                                         "(USD): LiteLLM alerts past it and keeps serving.", labels=labels)
                for s in top:
                    if s.soft_budget is not None:
                        soft.add_metric(list(s.labels), s.soft_budget)
                out.append(soft)
            if kind in ("key", "team"):
                window_labels = labels + ["budget_duration"]
                window_budget = GaugeMetricFamily(
                    f"llmwatch_litellm_{kind}_window_max_budget_usd", f"Budget of each {kind} shown per time window "
                    "(budget_limits; USD): LiteLLM refuses requests once the window's spend reaches it.",
                    labels=window_labels)
                window_reset = GaugeMetricFamily(
                    f"llmwatch_litellm_{kind}_window_reset_timestamp_seconds",
                    f"When each budget window of each {kind} shown starts again (Unix time).", labels=window_labels)
                for s in top:
                    for w in s.windows:
                        window_budget.add_metric([*s.labels, w.duration], w.max_budget)
                        if w.reset_at is not None:
                            window_reset.add_metric([*s.labels, w.duration], w.reset_at)
                out += [window_budget, window_reset]
            if kind == "key":
                expiry = GaugeMetricFamily("llmwatch_litellm_key_expiry_timestamp_seconds",
                                           "When each key shown in key_spend_usd expires (Unix time).", labels=labels)
                for s in top:
                    if s.expires is not None:
                        expiry.add_metric(list(s.labels), s.expires)
                states = GaugeMetricFamily("llmwatch_litellm_keys", "Keys read from /key/list by state.",
                                           labels=["state"])
                counts = {"active": 0, "blocked": 0, "expired": 0}
                for s in rows:
                    state = "blocked" if s.blocked else "expired" if s.expires is not None and s.expires <= now else "active"
                    counts[state] += 1
                for state, count in counts.items():
                    states.add_metric([state], count)
                out += [expiry, states]
        if admin.rate_limited:
            limited = GaugeMetricFamily("llmwatch_litellm_rate_limit_errors_today",
                                        "429 errors LiteLLM logged today (UTC) per model group and deployment "
                                        "(LiteLLM_ErrorLogs).", labels=["model_group", "api_base"])
            for (group, api_base), count in sorted(admin.rate_limited.items()):
                limited.add_metric([group, api_base], count)
            out.append(limited)
        return out
