"""Langfuse v3/v4's public metrics API: the I/O source when traces live in ClickHouse.

v3 (3.57+) answers ``GET /api/public/metrics?query=<JSON>``; v4's default ``events_only`` mode
answers 404 there and serves ``/api/public/v2/metrics`` instead, which has no ``traces`` view
(so v4 gives no trace counter). One refresh asks, concurrently: the project the keys belong to,
observations per model/type/level in the counting range, traces in the range (v3), numeric
scores per name in the range, and generation latency percentiles over the trailing window.
Answer rows name dimensions by field and metrics ``<aggregation>_<measure>``; ClickHouse numbers
may arrive as strings. Latencies come in milliseconds.
"""

from __future__ import annotations

import base64
import json
import math
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from llmwatch.core.fetch import Fetcher, Reply
from llmwatch.exporters.langfuse.totals import QUANTILES, Batch, LatencyRow, ObservationRow, SourceError

ROW_LIMIT = 1000
PERCENTILES = {"0.5": "p50", "0.95": "p95", "0.99": "p99"}


def basic_auth(public_key: str, secret_key: str) -> dict[str, str]:
    token = base64.b64encode(f"{public_key}:{secret_key}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def iso(moment: datetime) -> str:
    return moment.replace(tzinfo=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def query(view: str, dimensions: list[str], metrics: list[tuple[str, str]], start: datetime, end: datetime,
          filters: list[dict] | None = None) -> dict:
    return {"view": view, "dimensions": [{"field": d} for d in dimensions],
            "metrics": [{"measure": m, "aggregation": a} for m, a in metrics], "filters": filters or [],
            "timeDimension": None, "fromTimestamp": iso(start), "toTimestamp": iso(end), "orderBy": None,
            "chartConfig": {"type": "table", "row_limit": ROW_LIMIT}}


def _rows(payload: Any, what: str) -> list[dict]:
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise SourceError("invalid_answer", f"{what}: no data list of objects")
    if len(data) >= ROW_LIMIT:
        raise SourceError("invalid_answer", f"{what}: {len(data)} rows, the row limit; too many models?")
    return data


def _number(row: dict, key: str, what: str) -> float | None:
    value = row.get(key)
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SourceError("invalid_answer", f"{what}: {key} is not a number: {value!r}") from None
    return number if math.isfinite(number) else None


def _text(row: dict, key: str) -> str:
    value = row.get(key)
    return "" if value is None else str(value)


def observation_rows(payload: Any, project: str) -> list[ObservationRow]:
    out = []
    for row in _rows(payload, "observations"):
        n = lambda key: _number(row, key, "observations") or 0.0
        out.append(ObservationRow(project, _text(row, "providedModelName"), _text(row, "type") or "UNKNOWN",
                                  _text(row, "level") or "DEFAULT", int(n("count_count")), n("sum_inputTokens"),
                                  n("sum_outputTokens"), n("sum_totalCost")))
    return out


def trace_count(payload: Any) -> int:
    return int(sum(_number(r, "count_count", "traces") or 0 for r in _rows(payload, "traces")))


def score_rows(payload: Any, project: str) -> list[tuple[str, str, int, float]]:
    return [(project, _text(r, "name"), int(_number(r, "count_count", "scores") or 0),
             _number(r, "sum_value", "scores") or 0.0) for r in _rows(payload, "scores")]


def latency_rows(payload: Any, project: str) -> list[LatencyRow]:
    out = []
    for row in _rows(payload, "latency"):
        def seconds(measure: str) -> dict[str, float]:
            found = {q: _number(row, f"{PERCENTILES[q]}_{measure}", "latency") for q in QUANTILES}
            return {q: v / 1000 for q, v in found.items() if v is not None}
        out.append(LatencyRow(project, _text(row, "providedModelName"), seconds("latency"), seconds("timeToFirstToken")))
    return out


class ApiSource:
    """``major`` 3 uses the v1 metrics endpoint (with traces), 4 and later the v2 one."""

    name = "api"

    def __init__(self, url: str, fetcher: Fetcher, major: int):
        self.url = url.rstrip("/")
        self.fetcher = fetcher
        self.major = major
        self.project: str | None = None

    @property
    def metrics_path(self) -> str:
        return "/api/public/metrics" if self.major == 3 else "/api/public/v2/metrics"

    def _url(self, q: dict) -> str:
        return f"{self.url}{self.metrics_path}?query={quote(json.dumps(q, separators=(',', ':')))}"

    def read(self, since: datetime, until: datetime, window_from: datetime, now: datetime, timeout: float) -> Batch:
        generations = [{"column": "type", "operator": "=", "value": "GENERATION", "type": "string"}]
        asks = {
            "observations": query("observations", ["providedModelName", "type", "level"],
                                  [("count", "count"), ("inputTokens", "sum"), ("outputTokens", "sum"),
                                   ("totalCost", "sum")], since, until),
            "scores": query("scores-numeric", ["name"], [("count", "count"), ("value", "sum")], since, until),
            "latency": query("observations", ["providedModelName"],
                             [(m, PERCENTILES[q]) for m in ("latency", "timeToFirstToken") for q in QUANTILES],
                             window_from, now, generations),
        }
        if self.major == 3:
            asks["traces"] = query("traces", [], [("count", "count")], since, until)
        urls = {what: self._url(q) for what, q in asks.items()}
        if self.project is None:
            urls["project"] = f"{self.url}/api/public/projects"
        replies = dict(zip(urls, self.fetcher.get_all(list(urls.values()), timeout)))
        bodies = {what: _decode(what, reply) for what, reply in replies.items()}
        if "project" in bodies:
            projects = _rows(bodies["project"], "projects")
            if not projects or not projects[0].get("name"):
                raise SourceError("invalid_answer", "/api/public/projects: no project for these keys")
            self.project = str(projects[0]["name"])
        return Batch(observations=observation_rows(bodies["observations"], self.project),
                     traces={self.project: trace_count(bodies["traces"])} if "traces" in bodies else None,
                     scores=score_rows(bodies["scores"], self.project),
                     latency=latency_rows(bodies["latency"], self.project))

    def close(self) -> None:
        pass


def _decode(what: str, reply: Reply) -> Any:
    if reply.status in (401, 403):
        raise SourceError("auth", f"{what}: HTTP {reply.status}; check LLMWATCH_LANGFUSE__PUBLIC_KEY and "
                                  f"LLMWATCH_LANGFUSE__SECRET_KEY")
    if not reply.ok:
        raise SourceError(reply.error, f"{what}: {reply.detail}")
    try:
        return json.loads(reply.body)
    except ValueError:
        raise SourceError("invalid_answer", f"{what}: not JSON") from None
