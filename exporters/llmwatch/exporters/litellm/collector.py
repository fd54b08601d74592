"""The LiteLLM exporter's scrape: what LiteLLM's own /metrics lacks, from its admin API.

Per scrape, concurrently under the budget: ``/health/liveliness`` and ``/health/readiness``
always; ``/model/info`` when its cache expired; the admin lists (keys, teams, users, global
spend, 429s per deployment) when theirs expired and the proxy has a database; ``/health`` only
when the user said LiteLLM runs background health checks (otherwise each call would make a real
LLM request per deployment). Cached answers are served for their cache time and dropped, not
kept stale, when a refresh fails.
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
from llmwatch.core.scrape import ExporterCollector, ScrapeErrors, one_at_a_time
from llmwatch.exporters.litellm import payloads
from llmwatch.exporters.litellm.payloads import BadPayload, Spender

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


@dataclass
class AdminData:
    spend: tuple[float, float | None] | None = None
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
        self.admin = Expiring(admin_seconds, clock)
        self.health = Expiring(health_seconds, clock)
        self.unsupported: set[str] = set()  # paths this LiteLLM version answers 404
        self.warn = WarnOnce(log)
        self.asked: list[str] = []  # endpoints asked this scrape
        self.collector = ExporterCollector("litellm", one_at_a_time(self.scrape), reasons=ERROR_REASONS)

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
        if self.deployment_health and self.health.due(now):
            asked.append("/health")
        asked = asked[:2] + [p for p in asked[2:] if p not in self.unsupported]
        replies = dict(zip(asked, self._get(asked, deadline)))

        alive = replies["/health/liveliness"]
        ready_reply = replies["/health/readiness"]
        ready = None  # the readiness answer, when the proxy is ready
        if ready_reply.status != 503:  # 503: the proxy answered that it cannot serve
            body = self._decode("/health/readiness", ready_reply, errors, failed, optional=False)
            if body is not None:
                ready = self._parse("/health/readiness", lambda: payloads.readiness(body), errors, failed)
        if alive.error not in ("", "http_status"):
            self._fail("/health/liveliness", alive.error, alive.detail, errors, failed)

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

        if ready is not None and ready.db_connected:
            if self.admin.due(now):
                self.admin.drop()
                admin = self._read_admin(deadline, errors, failed)
                if admin is not None:
                    self.admin.set(admin, now)
        else:
            self.admin.drop()  # no database, nothing to read; the families go away

        up = (ready is not None or ready_reply.status == 503) and not failed
        return self._families(up, alive, ready_reply, ready, failed)

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
        data.spenders[kind], data.totals[kind] = found, total
        return True

    # ---- families -----------------------------------------------------------------------------

    def _families(self, up: bool, alive: Reply, ready_reply: Reply, ready: payloads.Readiness | None,
                  failed: list[str]) -> list:
        out = [GaugeMetricFamily("llmwatch_litellm_up", "1 when the proxy answered every admin-API request of this "
                                 "scrape readably (an auth error, a timeout or garbage gives 0).", value=float(up))]
        if alive.error in ("", "http_status"):
            out.append(GaugeMetricFamily("llmwatch_litellm_alive", "1 when /health/liveliness answered 200.",
                                         value=float(alive.status == 200)))
        if ready is not None or ready_reply.status == 503:
            out.append(GaugeMetricFamily("llmwatch_litellm_ready", "1 when /health/readiness answered 200 "
                                         "(0: 503, the proxy says it cannot serve).", value=float(ready is not None)))
        if ready is not None:
            out.append(GaugeMetricFamily("llmwatch_litellm_db_connected", "1 when the proxy reports its "
                                         "database connected (spend, keys and budgets need it).",
                                         value=float(ready.db_connected)))
            info = GaugeMetricFamily("llmwatch_litellm_info", "LiteLLM version and response-cache type; always 1.",
                                     labels=["version", "cache"])
            info.add_metric([ready.version, ready.cache], 1.0)
            callbacks = GaugeMetricFamily("llmwatch_litellm_success_callback_info",
                                          "Success callbacks the proxy runs (prometheus, langfuse…); always 1.",
                                          labels=["callback"])
            for name in ready.callbacks:
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
                                     "Price LiteLLM charges per token for this deployment (0 or absent: "
                                     "LiteLLM records $0 spend for it).", labels=["model_id", "direction"])
            for d in sorted(self.models.value, key=lambda d: (d.model_group, d.model_id)):
                info.add_metric([d.model_group, d.litellm_model_name, d.model_id, d.api_base, d.api_provider, d.mode], 1)
                for direction, value in (("input", d.input_cost_per_token), ("output", d.output_cost_per_token)):
                    if value is not None:
                        cost.add_metric([d.model_id, direction], value)
            out += [info, cost]
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
            out.append(GaugeMetricFamily("llmwatch_litellm_global_spend_usd",
                                         "Spend recorded by the proxy (USD), from /global/spend.", value=spend))
            if budget is not None:
                out.append(GaugeMetricFamily("llmwatch_litellm_global_max_budget_usd",
                                             "The proxy's overall budget (USD).", value=budget))
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
            for s in top + ([other] if other else []):
                spend.add_metric(list(s.labels), s.spend)
                if s.max_budget is not None:
                    budget.add_metric(list(s.labels), s.max_budget)
            out += [spend, budget]
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
