"""Langfuse v3/v4's public metrics API: the I/O source when traces live in ClickHouse.

Two endpoints take the same query object (``?query=<JSON>``): ``/api/public/metrics`` (v1: the
legacy tables, with a ``traces`` view; from 3.57, measures ``inputTokens``/``outputTokens`` from
3.61) and ``/api/public/v2/metrics`` (v2: v4's events tables, no ``traces`` view). Which one a
deployment serves depends on ``LANGFUSE_MIGRATION_V4_WRITE_MODE``: v4's default ``events_only``
answers 404 on v1, ``legacy`` answers 404 on v2, ``dual`` serves both. The source asks the
endpoint the version prefers (v2 from 4.0) and falls back to the other on a 404.

Answers are complete or an error, never a plausible part: the row limit is sent as
``config.row_limit`` (the only place Langfuse reads it; v2 otherwise stops at 100 rows), at its
maximum of 1000. An answer that fills it may have been cut, so the query is split by one of its
dimensions (each value of it, found by a query of that dimension alone) and asked again; when no
split is left, the read fails with reason ``truncated``. The API includes both ends of a time
range; a settling range is made half-open by a filter ``<`` on the view's time column, so a row
on a boundary is counted in exactly one range.

Environments: rows are grouped by ``environment`` and filtered here (by default Langfuse's own
``langfuse-*`` runs are left out); percentiles, which cannot be merged, are asked for the
counted environments only. Traces: v1's ``traces`` view by timestamp; on v2 (from 4.3) root
observations (``isRootObservation``) by start time.

Answer rows name dimensions by field and metrics ``<aggregation>_<measure>``; ClickHouse numbers
may arrive as strings. Latencies come in milliseconds.
"""

from __future__ import annotations

import base64
import json
import math
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from llmwatch.core.fetch import Fetcher, Reply
from llmwatch.exporters.langfuse.totals import (DEFAULT_ENVIRONMENT, QUANTILES, Aggregate, EnvironmentFilter,
                                                LatencyRow, ObservationRow, Reading, ScoreRow, SourceError,
                                                TraceGroupRow, TraceRow)

ROW_LIMIT = 1000  # config.row_limit's maximum: the most rows one answer can hold
PERCENTILES = {"0.5": "p50", "0.95": "p95", "0.99": "p99"}
PATHS = {"v1": "/api/public/metrics", "v2": "/api/public/v2/metrics"}
TIME_COLUMN = {"observations": "start_time", "traces": "timestamp", "scores-numeric": "timestamp"}
ROOT_OBSERVATIONS_FROM = (4, 3)  # the v2 endpoint's isRootObservation dimension
# Trace fields by endpoint: v1's traces view has name (String, "" when none) and release
# (Nullable); v2's observations carry their trace's as traceName (the root observation's own name
# when the trace has none) and traceRelease, null when empty.
TRACE_FIELDS = {"v1": {"name": "name", "release": "release"}, "v2": {"name": "traceName", "release": "traceRelease"}}


def basic_auth(public_key: str, secret_key: str) -> dict[str, str]:
    token = base64.b64encode(f"{public_key}:{secret_key}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def iso(moment: datetime) -> str:
    return moment.replace(tzinfo=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Query:
    """One metrics query; ``half_open`` leaves out rows at ``end``; ``splits``: dimensions it may be split by."""

    what: str
    view: str
    dimensions: tuple[str, ...]
    metrics: tuple[tuple[str, str], ...]  # (measure, aggregation)
    start: datetime
    end: datetime
    half_open: bool = False
    filters: tuple[dict, ...] = ()
    splits: tuple[str, ...] = ()

    def body(self) -> dict:
        filters = list(self.filters)
        if self.half_open:
            filters.append({"column": TIME_COLUMN[self.view], "operator": "<", "value": iso(self.end),
                            "type": "datetime"})
        return {"view": self.view, "dimensions": [{"field": d} for d in self.dimensions],
                "metrics": [{"measure": m, "aggregation": a} for m, a in self.metrics], "filters": filters,
                "timeDimension": None, "fromTimestamp": iso(self.start), "toTimestamp": iso(self.end),
                "orderBy": None, "config": {"row_limit": ROW_LIMIT}}


def only(dimension: str, value: Any) -> dict:
    """A filter keeping one value of a dimension (the empty value stands for null, as Langfuse reads it)."""
    return {"column": dimension, "operator": "any of", "value": ["" if value is None else str(value)],
            "type": "stringOptions"}


class EndpointMissing(Exception):
    """The metrics endpoint answered 404: this deployment serves the other one."""


def _rows(payload: Any, what: str) -> list[dict]:
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise SourceError("invalid_answer", f"{what}: no data list of objects")
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


def _environment(row: dict) -> str:
    return _text(row, "environment") or DEFAULT_ENVIRONMENT


def _true(value: Any) -> bool:
    return value is True or value == 1 or str(value).lower() == "true"


def observation_rows(payload: Any, project: str) -> list[ObservationRow]:
    out = []
    for row in _rows(payload, "observations"):
        n = lambda key: _number(row, key, "observations") or 0.0  # noqa: E731
        out.append(ObservationRow(project, _environment(row), _text(row, "providedModelName"),
                                  _text(row, "type") or "UNKNOWN", _text(row, "level") or "DEFAULT",
                                  int(n("count_count")), n("sum_inputTokens"), n("sum_outputTokens"),
                                  n("sum_totalCost")))
    return out


def trace_rows(payload: Any, project: str) -> list[TraceRow]:
    """v1's traces view, or v2's observations by isRootObservation (only the roots count)."""
    return [TraceRow(project, _environment(r), int(_number(r, "count_count", "traces") or 0))
            for r in _rows(payload, "traces") if "isRootObservation" not in r or _true(r["isRootObservation"])]


def trace_group_rows(payload: Any, project: str, field: str) -> list[TraceGroupRow]:
    """Traces per value of ``field`` (a trace name or release; null reads as ""), v1 or v2 as trace_rows."""
    return [TraceGroupRow(project, _environment(r), _text(r, field), int(_number(r, "count_count", "traces") or 0))
            for r in _rows(payload, "traces") if "isRootObservation" not in r or _true(r["isRootObservation"])]


def score_rows(payload: Any, project: str) -> list[ScoreRow]:
    return [ScoreRow(project, _environment(r), _text(r, "name"), int(_number(r, "count_count", "scores") or 0),
                     _number(r, "sum_value", "scores") or 0.0) for r in _rows(payload, "scores")]


def latency_rows(payload: Any, project: str, by_environment: bool = False) -> list[LatencyRow]:
    out = []
    for row in _rows(payload, "latency"):
        def seconds(measure: str) -> dict[str, float]:
            found = {q: _number(row, f"{PERCENTILES[q]}_{measure}", "latency") for q in QUANTILES}
            return {q: v / 1000 for q, v in found.items() if v is not None}
        out.append(LatencyRow(project, _environment(row) if by_environment else None, _text(row, "providedModelName"),
                              seconds("latency"), seconds("timeToFirstToken")))
    return out


def environments(payload: Any) -> list[str | None]:
    """Raw environment values of an answer (None: empty, as v2 reads it)."""
    return [None if r.get("environment") in (None, "") else str(r["environment"]) for r in _rows(payload, "environments")]


COUNTS = (("count", "count"), ("inputTokens", "sum"), ("outputTokens", "sum"), ("totalCost", "sum"))
GENERATIONS = ({"column": "type", "operator": "any of", "value": ["GENERATION"], "type": "stringOptions"},)


@dataclass
class _Job:
    """A query to send for result ``index``; with ``split_of``, a listing of the values to split that query by."""

    index: int
    query: Query
    split_of: Query | None = None


class ApiSource:
    """Reads one project (the one the keys belong to) of a Langfuse 3.61+ or 4."""

    name = "api"

    def __init__(self, url: str, fetcher: Fetcher, version: tuple[int, ...],
                 environment_filter: EnvironmentFilter = EnvironmentFilter(), environment_label: bool = False,
                 clock=time.monotonic, trace_groups: bool = True):
        self.url = url.rstrip("/")
        self.trace_groups = trace_groups
        self.fetcher = fetcher
        self.version = version
        self.counted = environment_filter
        self.environment_label = environment_label
        self.clock = clock
        self.endpoint = "v2" if version[:1] >= (4,) else "v1"
        self.project: str | None = None
        self.project_id: str | None = None

    def identify(self, timeout: float) -> str:
        if self.project is None:
            reply = self.fetcher.get_all([f"{self.url}/api/public/projects"], timeout)[0]
            projects = _rows(_decode("/api/public/projects", reply), "/api/public/projects")
            if not projects or not projects[0].get("name"):
                raise SourceError("invalid_answer", "/api/public/projects: no project for these keys")
            self.project = str(projects[0]["name"])
            self.project_id = str(projects[0].get("id") or self.project)
        return f"api {self.url} project {self.project_id}"

    @property
    def traces_view(self) -> str | None:
        """How traces are counted on the endpoint in use: "traces", "roots" or None (not at all)."""
        if self.endpoint == "v1":
            return "traces"
        return "roots" if self.version >= ROOT_OBSERVATIONS_FROM else None

    def read(self, settle: list[tuple[datetime, datetime]], window: tuple[datetime, datetime] | None,
             latency: tuple[datetime, datetime], timeout: float) -> Reading:
        deadline = self.clock() + timeout
        tried = set()
        while True:
            tried.add(self.endpoint)
            try:
                return self._read(settle, window, latency, deadline)
            except EndpointMissing:
                other = "v1" if self.endpoint == "v2" else "v2"
                if other in tried:
                    raise SourceError("http_status", "neither /api/public/metrics nor /api/public/v2/metrics answers "
                                                     "(404): no metrics API on this Langfuse") from None
                self.endpoint = other

    def _range_queries(self, start: datetime, end: datetime, half_open: bool) -> list[Query]:
        queries = [Query("observations", "observations", ("environment", "providedModelName", "type", "level"),
                         COUNTS, start, end, half_open, splits=("level", "type", "environment"))]
        if self.traces_view:  # all traces, then by trace name, then by release
            view, roots = ("traces", ()) if self.traces_view == "traces" else ("observations", ("isRootObservation",))
            fields = TRACE_FIELDS[self.endpoint]
            for by in ((), (fields["name"],), (fields["release"],))[:3 if self.trace_groups else 1]:
                queries.append(Query(" by ".join(("traces", *by)), view, ("environment", *roots, *by),
                                     (("count", "count"),), start, end, half_open,
                                     splits=("environment",) if roots or by else ()))
        queries.append(Query("scores", "scores-numeric", ("environment", "name"), (("count", "count"), ("value", "sum")),
                             start, end, half_open, splits=("environment", "name")))
        return queries

    def _aggregate(self, answers: list[list[dict]]) -> Aggregate:
        answers = list(answers)
        out = Aggregate(observations=observation_rows({"data": answers.pop(0)}, self.project))
        if self.traces_view:
            fields = TRACE_FIELDS[self.endpoint]
            out.traces = trace_rows({"data": answers.pop(0)}, self.project)
            if self.trace_groups:
                out.trace_names = trace_group_rows({"data": answers.pop(0)}, self.project, fields["name"])
                out.trace_releases = trace_group_rows({"data": answers.pop(0)}, self.project, fields["release"])
        else:
            out.traces = None
        out.scores = score_rows({"data": answers.pop(0)}, self.project)
        return out

    def _read(self, settle, window, latency, deadline) -> Reading:
        ranges = [(start, end, True) for start, end in settle] + ([(*window, False)] if window else [])
        per_range = [self._range_queries(start, end, half_open) for start, end, half_open in ranges]
        queries = [q for group in per_range for q in group]
        discover = not self.environment_label and not self.counted.everything
        if discover:  # which environments the percentile window holds, to ask for the counted ones only
            queries.append(Query("environments", "observations", ("environment",), (("count", "count"),),
                                 *latency, filters=GENERATIONS))
        answers = self._complete(queries, deadline)
        aggregates, at = [], 0
        for group in per_range:
            aggregates.append(self._aggregate(answers[at:at + len(group)]))
            at += len(group)
        reading = Reading(settled=aggregates[:len(settle)], window=aggregates[len(settle)] if window else None)

        dimensions, filters = ("providedModelName",), GENERATIONS
        if self.environment_label:
            dimensions = ("providedModelName", "environment")
        elif discover:
            seen = environments({"data": answers[-1]})
            counted = [e for e in seen if self.counted(e or DEFAULT_ENVIRONMENT)]
            if not counted:
                return reading  # no generation of a counted environment in the window
            if len(counted) < len(seen):
                filters += ({"column": "environment", "operator": "any of", "value": [e or "" for e in counted],
                             "type": "stringOptions"},)
        percentiles = tuple((m, PERCENTILES[q]) for m in ("latency", "timeToFirstToken") for q in QUANTILES)
        [rows] = self._complete([Query("latency", "observations", dimensions, percentiles, *latency,
                                       filters=filters)], deadline)
        reading.latency = latency_rows({"data": rows}, self.project, by_environment=self.environment_label)
        return reading

    def _url(self, query: Query) -> str:
        return f"{self.url}{PATHS[self.endpoint]}?query={quote(json.dumps(query.body(), separators=(',', ':')))}"

    def _complete(self, queries: list[Query], deadline: float) -> list[list[dict]]:
        """Every query's rows, all of them: an answer that fills the row limit is split and asked again.

        Splitting by a dimension first lists its values (a query of that dimension alone), then asks
        the query once per value. A part that still fills the limit is split by the next dimension.
        """
        results: list[list[dict]] = [[] for _ in queries]
        jobs = [_Job(i, q) for i, q in enumerate(queries)]
        while jobs:
            replies = self.fetcher.get_all([self._url(j.query) for j in jobs], max(deadline - self.clock(), 0.1))
            following = []
            for job, reply in zip(jobs, replies):
                rows = _rows(_decode(job.query.what, reply, metrics=True), job.query.what)
                if job.split_of is None:
                    if len(rows) < ROW_LIMIT:
                        results[job.index] += rows
                        continue
                    target = job.query
                else:
                    dimension = job.query.dimensions[0]
                    target = replace(job.split_of, splits=tuple(d for d in job.split_of.splits if d != dimension))
                    if len(rows) < ROW_LIMIT:
                        following += [_Job(job.index, replace(target, filters=target.filters + (
                            only(dimension, row.get(dimension)),))) for row in rows]
                        continue
                if not target.splits:
                    hint = ("; if trace names or releases carry ids, set LLMWATCH_LANGFUSE__TRACE_GROUPS=false"
                            if target.what.startswith("traces by") else "")
                    raise SourceError("truncated", f"{target.what}: {len(rows)} rows, the most one answer holds, and "
                                                   f"no dimension left to split the query by; some groups would be "
                                                   f"missing{hint}")
                listing = replace(target, dimensions=(target.splits[0],), metrics=(("count", "count"),), splits=())
                following.append(_Job(job.index, listing, split_of=target))
            jobs = following
        return results

    def close(self) -> None:
        pass


def _decode(what: str, reply: Reply, metrics: bool = False) -> Any:
    if reply.status in (401, 403):
        raise SourceError("auth", f"{what}: HTTP {reply.status}; check LLMWATCH_LANGFUSE__PUBLIC_KEY and "
                                  f"LLMWATCH_LANGFUSE__SECRET_KEY")
    if metrics and reply.status == 404:
        raise EndpointMissing()
    if not reply.ok:
        message = ""
        try:
            message = str(json.loads(reply.body).get("message", ""))[:200]
        except (ValueError, AttributeError):
            pass
        raise SourceError(reply.error, f"{what}: {reply.detail}{': ' + message if message else ''}")
    try:
        return json.loads(reply.body)
    except ValueError:
        raise SourceError("invalid_answer", f"{what}: not JSON") from None
