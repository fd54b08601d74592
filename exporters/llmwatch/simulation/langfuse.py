"""A simulated Langfuse, for demo mode and tests (Langfuse, ClickHouse and its workers cannot run here).

:func:`generate` makes a repeatable dataset of projects, traces, observations and scores; tests
load the same records into a real PostgreSQL with Langfuse v2's schema, or serve them through
:class:`FakeLangfuseServer`, which answers the public API the way each version does. What it
follows, written from Langfuse's own definitions (query types and validation, data model, query
builder, API routes and environment settings of the tagged releases):

- ``GET /api/public/health`` → ``{"status": "OK", "version": ...}`` on every version, no auth;
- ``GET /api/public/metrics?query=<JSON>`` (v1, from 3.57): views ``traces``, ``observations``,
  ``scores-numeric`` (NUMERIC and BOOLEAN scores), ``scores-categorical``; the measures
  ``inputTokens``/``outputTokens`` exist from 3.61; ``config.row_limit`` is read from 3.67 (no
  limit by default); 404 when ``LANGFUSE_MIGRATION_V4_WRITE_MODE`` is ``events_only`` (v4's
  default);
- ``GET /api/public/v2/metrics?query=<JSON>`` (v2, events tables): on v4 unless the write mode is
  ``legacy`` (404 then), on v3 only with the preview opt-in; no ``traces`` view (400);
  ``config.row_limit`` defaults to 100 (at most 1000); the ``isRootObservation`` dimension from 4.3;
  the environment reads as null when empty; observations carry their trace's ``traceName`` (a root
  observation's own name when the trace has none) and ``traceRelease`` (null when empty), while
  v1's ``traces`` view has ``name`` ("" when none) and ``release`` (null when none);
- both: the query object is validated as Langfuse's zod schema does (unknown keys such as
  ``chartConfig`` dropped, ``fromTimestamp`` before ``toTimestamp`` or 400, unknown views,
  dimensions, measures or filter columns 400); the time range includes both ends; a filter on
  the view's time column (``start_time``, ``timestamp``) with ``<`` makes it half-open;
- ``GET /api/public/projects`` → the keys' project. Basic auth with the project's key pair.

Rows name dimensions by field and metrics ``<aggregation>_<measure>``; counts and integer sums
come as strings (ClickHouse UInt64), latencies in milliseconds. Percentiles interpolate linearly
(ClickHouse's ``quantile`` on fewer values than its reservoir holds).
"""

from __future__ import annotations

import base64
import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

from llmwatch.simulation.server import FakeServer

MODELS = ("meta-llama/Llama-3.1-70B-Instruct", "Qwen/Qwen3-32B", "mistralai/Mistral-7B-Instruct-v0.3")
JUDGE_MODEL = "gpt-4o-mini"
# Environments Langfuse writes its own traces to (LLM-as-a-judge, prompt experiments); its UI hides
# every environment starting with "langfuse-" unless the user selects it.
INTERNAL_ENVIRONMENTS = ("langfuse-llm-as-a-judge", "langfuse-prompt-experiment")
RELEASES = ("2026.11.1", "2026.11.1", "2026.11.2", None)  # None: a trace sent without a release


@dataclass
class Observation:
    id: str
    trace_id: str
    project_id: str
    type: str  # SPAN, EVENT, GENERATION (v3/v4 add AGENT, TOOL, ...)
    level: str  # DEBUG, DEFAULT, WARNING, ERROR
    name: str
    model: str | None
    start_time: datetime  # naive UTC, as Langfuse stores it
    end_time: datetime | None
    completion_start_time: datetime | None
    prompt_tokens: int
    completion_tokens: int
    total_cost: float | None  # user-provided
    calculated_total_cost: float | None  # computed by Langfuse at ingestion (the user's cost when given)
    environment: str = "default"
    parent_observation_id: str | None = None
    unit: str | None = "TOKENS"  # v2: TOKENS, CHARACTERS, SECONDS, MILLISECONDS, IMAGES, REQUESTS or none
    internal_model: str | None = None  # v2: the models row matched at ingestion

    @property
    def cost(self) -> float:
        """What the metrics API sums as totalCost (ClickHouse's total_cost)."""
        return self.total_cost if self.total_cost is not None else (self.calculated_total_cost or 0.0)


@dataclass
class Trace:
    id: str
    project_id: str
    name: str
    timestamp: datetime
    environment: str = "default"
    release: str | None = None


@dataclass
class Score:
    id: str
    project_id: str
    trace_id: str
    name: str
    value: float | None
    data_type: str  # NUMERIC, BOOLEAN, CATEGORICAL
    timestamp: datetime
    environment: str = "default"
    string_value: str | None = None


@dataclass
class Model:
    """A row of Langfuse's price table (``models``); ``project_id`` None: one of Langfuse's own."""

    id: str
    model_name: str
    match_pattern: str
    unit: str | None
    input_price: float | None
    output_price: float | None
    total_price: float | None = None
    project_id: str | None = None
    start_date: datetime | None = None


@dataclass
class Dataset:
    projects: dict[str, str] = field(default_factory=dict)  # id -> name
    traces: list[Trace] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    scores: list[Score] = field(default_factory=list)
    models: list[Model] = field(default_factory=list)

    def extend(self, more: Dataset) -> None:
        self.traces += more.traces
        self.observations += more.observations
        self.scores += more.scores


def generate(now: datetime, traces: int = 200, seed: int = 7, span: timedelta = timedelta(minutes=50),
             projects: dict[str, str] | None = None, prefix: str = "", internal_share: float = 0.08) -> Dataset:
    """Traces spread over ``span`` before ``now`` (naive UTC), each with a root span and one or two generations.

    Most traces are in ``production``, some in ``staging``; ``internal_share`` of them are Langfuse's
    own (an LLM-as-a-judge or prompt-experiment run, in a ``langfuse-`` environment). Ids are
    ``<prefix>t1``, ``<prefix>o2``...: give datasets loaded together different prefixes.
    """
    rng = random.Random(seed)
    releases = random.Random(f"{seed}-releases")  # its own stream: the other values stay as they were
    data = Dataset(projects=projects or {"p-chat": "chat-app", "p-rag": "rag-search"})
    ids = iter(range(10**9))
    for _ in range(traces):
        project = rng.choice(sorted(data.projects))
        start = now - span * rng.random()
        start = start.replace(microsecond=start.microsecond // 1000 * 1000)  # Langfuse keeps milliseconds
        internal = rng.random() < internal_share
        environment = rng.choice(INTERNAL_ENVIRONMENTS) if internal else rng.choice(["production"] * 6 + ["staging"])
        trace = Trace(f"{prefix}t{next(ids)}", project, "judge" if internal else rng.choice(["chat", "search"]),
                      start, environment, None if internal else releases.choice(RELEASES))
        data.traces.append(trace)
        root = Observation(f"{prefix}o{next(ids)}", trace.id, project, "SPAN", "DEFAULT", "retrieve", None, start,
                           start + timedelta(milliseconds=rng.randint(5, 80)), None, 0, 0, None, None, environment)
        data.observations.append(root)
        for g in range(1 if internal else rng.choice([1, 1, 2])):
            model = JUDGE_MODEL if internal else rng.choice(MODELS)
            begin = start + timedelta(milliseconds=100 * (g + 1))
            ttft = timedelta(milliseconds=rng.randint(40, 2500))
            streamed = rng.random() < 0.8
            finished = rng.random() < 0.95
            level = "ERROR" if rng.random() < 0.05 else "WARNING" if rng.random() < 0.05 else "DEFAULT"
            prompt, completion = rng.randint(20, 4000), rng.randint(1, 800)
            user_cost = round(rng.uniform(0.0001, 0.01), 6) if rng.random() < 0.2 else None
            data.observations.append(Observation(
                f"{prefix}o{next(ids)}", trace.id, project, "GENERATION", level, "completion", model, begin,
                begin + ttft + timedelta(milliseconds=rng.randint(10, 20000)) if finished else None,
                begin + ttft if streamed else None, prompt, completion, user_cost,
                user_cost if user_cost is not None else round(prompt * 2e-7 + completion * 6e-7, 8),
                environment, root.id, "TOKENS", model))
        if internal:
            continue
        if rng.random() < 0.4:
            data.scores.append(Score(f"{prefix}s{next(ids)}", project, trace.id, rng.choice(["helpfulness", "correctness"]),
                                     round(rng.random(), 3), "NUMERIC", start + timedelta(seconds=1), environment))
        if rng.random() < 0.15:
            thumbs = float(rng.random() < 0.7)
            data.scores.append(Score(f"{prefix}s{next(ids)}", project, trace.id, "thumbs_up", thumbs, "BOOLEAN",
                                     start + timedelta(seconds=2), environment, "True" if thumbs else "False"))
        if rng.random() < 0.1:
            tone = rng.choice(["neutral", "friendly", "rude"])
            data.scores.append(Score(f"{prefix}s{next(ids)}", project, trace.id, "tone", None, "CATEGORICAL",
                                     start + timedelta(seconds=1), environment, tone))
    return data


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _parse_time(text: str) -> datetime:
    """An ISO timestamp as Langfuse reads one: to the millisecond (a JavaScript Date), naive UTC."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no offset")
    moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("-")[0].split("."):
        if not piece.isdigit():
            break
        parts.append(int(piece))
    return tuple(parts)


class BadQuery(Exception):
    """Langfuse's answer to a query it rejects: 400 with a message."""


@dataclass(frozen=True)
class View:
    """One view of Langfuse's query data model: which records, their time column, dimensions, measures."""

    records: str  # attribute of Dataset
    time_column: str  # what a datetime filter names (the view's timeDimension)
    time: Any  # record -> datetime
    dimensions: dict[str, Any]  # field -> record -> value
    measures: dict[str, Any]  # measure -> record -> number or None
    integer_measures: frozenset[str] = frozenset()
    segment: Any = None  # record -> bool, Langfuse's constant filter for the view


def _ms(later: datetime | None, earlier: datetime | None) -> float | None:
    return None if later is None or earlier is None else (later - earlier).total_seconds() * 1000


def _views(version: tuple[int, ...], endpoint: str, traces: dict[str, Trace] | None = None) -> dict[str, View]:
    """The views one endpoint of one Langfuse version offers; ``traces`` by id, for the trace fields.

    The events tables carry their trace's name and release on every observation; ``traceName``
    falls back to a root observation's own name where the trace has none.
    """
    events = endpoint == "v2"
    traces = traces or {}
    env = (lambda r: r.environment or None) if events else (lambda r: r.environment)  # nullIf(environment, '')
    observation_dims = {"environment": env, "type": lambda o: o.type, "name": lambda o: o.name,
                        "level": lambda o: o.level, "providedModelName": lambda o: o.model,
                        "traceId": lambda o: o.trace_id, "id": lambda o: o.id,
                        "parentObservationId": lambda o: o.parent_observation_id}
    if events:
        def trace_name(o: Observation) -> str | None:
            trace = traces.get(o.trace_id)
            return (trace.name if trace else None) or (o.name or None if o.parent_observation_id is None else None)

        release = lambda o: (traces[o.trace_id].release or None) if o.trace_id in traces else None  # noqa: E731
        observation_dims |= {"traceName": trace_name, "traceRelease": release, "release": release}
    if events and version >= (4, 3):
        observation_dims["isRootObservation"] = lambda o: o.parent_observation_id is None
    observation_measures = {
        "count": lambda o: 1, "totalCost": lambda o: o.cost,
        "totalTokens": lambda o: o.prompt_tokens + o.completion_tokens,
        "latency": lambda o: _ms(o.end_time, o.start_time),
        "timeToFirstToken": lambda o: _ms(o.completion_start_time, o.start_time)}
    integers = {"count", "totalTokens", "latency", "timeToFirstToken"}
    if events or version >= (3, 61):
        observation_measures |= {"inputTokens": lambda o: o.prompt_tokens, "outputTokens": lambda o: o.completion_tokens,
                                 "streamingLatency": lambda o: _ms(o.end_time, o.completion_start_time)}
        integers |= {"inputTokens", "outputTokens", "streamingLatency"}
    score_dims = {"environment": env, "name": lambda s: s.name, "dataType": lambda s: s.data_type,
                  "traceId": lambda s: s.trace_id, "id": lambda s: s.id}
    views = {
        "observations": View("observations", "start_time", lambda o: o.start_time, observation_dims,
                             observation_measures, frozenset(integers)),
        "scores-numeric": View("scores", "timestamp", lambda s: s.timestamp, score_dims,
                               {"count": lambda s: 1, "value": lambda s: s.value}, frozenset({"count"}),
                               lambda s: s.data_type in ("NUMERIC", "BOOLEAN")),
        "scores-categorical": View("scores", "timestamp", lambda s: s.timestamp,
                                   score_dims | {"stringValue": lambda s: s.string_value}, {"count": lambda s: 1},
                                   frozenset({"count"}), lambda s: s.data_type == "CATEGORICAL"),
    }
    if not events:
        views["traces"] = View("traces", "timestamp", lambda t: t.timestamp,  # name String, release Nullable
                               {"environment": env, "name": lambda t: t.name or "", "release": lambda t: t.release,
                                "id": lambda t: t.id},
                               {"count": lambda t: 1}, frozenset({"count"}))
    return views


AGGREGATIONS = ("sum", "avg", "count", "max", "min", "p50", "p75", "p90", "p95", "p99")
STRING_OPERATORS = ("=", "contains", "does not contain", "starts with", "ends with")


def _string_match(value: str | None, operator: str, wanted: str) -> bool:
    text = value or ""
    return {"=": text == wanted, "contains": wanted in text, "does not contain": wanted not in text,
            "starts with": text.startswith(wanted), "ends with": text.endswith(wanted)}[operator]


def _filter(view: View, f: Any, events: bool):
    """A record predicate for one filter of the query, or BadQuery."""
    if not isinstance(f, dict) or not isinstance(f.get("column"), str) or not isinstance(f.get("type"), str):
        raise BadQuery("Invalid filter")
    column, kind, operator, wanted = f["column"], f["type"], f.get("operator"), f.get("value")
    if column == view.time_column:
        if kind != "datetime" or operator not in (">", "<", ">=", "<=") or not isinstance(wanted, str):
            raise BadQuery(f"Invalid filter on {column}")
        try:
            bound = _parse_time(wanted)
        except ValueError:
            raise BadQuery(f"Invalid date in filter on {column}") from None
        compare = {">": lambda t: t > bound, "<": lambda t: t < bound, ">=": lambda t: t >= bound,
                   "<=": lambda t: t <= bound}[operator]
        return lambda r: compare(view.time(r))
    if column not in view.dimensions:
        raise BadQuery(f"Invalid filter column {column}. Must be one of {','.join(view.dimensions)} or {view.time_column}")
    get = view.dimensions[column]
    if kind == "string" and operator in STRING_OPERATORS and isinstance(wanted, str):
        return lambda r: _string_match(get(r), operator, wanted)
    if kind == "stringOptions" and operator in ("any of", "none of") and isinstance(wanted, list) and wanted:
        chosen = set(wanted)
        if operator == "any of":  # on the events tables '' and null are the same value
            return (lambda r: (get(r) or "") in chosen) if events else (lambda r: get(r) in chosen)
        if events:  # ...and the empty value never passes "none of" there
            return lambda r: bool(get(r)) and get(r) not in chosen
        return lambda r: get(r) not in chosen
    if kind == "boolean" and operator in ("=", "<>") and isinstance(wanted, bool):
        return lambda r: (bool(get(r)) == wanted) == (operator == "=")
    raise BadQuery(f"Invalid filter {kind} {operator} on {column}")


def _value(values: list[float], aggregation: str, integer: bool):
    if aggregation == "count":
        return str(len(values))
    if not values:
        return None
    if aggregation == "sum":
        total = sum(values)
        return str(int(total)) if integer else total
    if aggregation == "avg":
        return sum(values) / len(values)
    if aggregation in ("min", "max"):
        return (min if aggregation == "min" else max)(values)
    return _percentile(values, int(aggregation[1:]) / 100)


def evaluate(data: Dataset, project_id: str, version: tuple[int, ...], endpoint: str, query: Any) -> list[dict]:
    """A metrics query answered as the given endpoint ("v1" or "v2") of that Langfuse version would."""
    if not isinstance(query, dict):
        raise BadQuery("Invalid query")
    views = _views(version, endpoint, {t.id: t for t in data.traces if t.project_id == project_id})
    if query.get("view") not in views:
        raise BadQuery(f"Invalid enum value. Expected {' | '.join(map(repr, views))}, received {query.get('view')!r}")
    view = views[query["view"]]
    try:
        start, end = _parse_time(query["fromTimestamp"]), _parse_time(query["toTimestamp"])
    except (KeyError, TypeError, ValueError):
        raise BadQuery("fromTimestamp and toTimestamp must be ISO datetimes with an offset") from None
    if not start < end:
        raise BadQuery("fromTimestamp must be before toTimestamp")
    # zod drops keys it does not know: "config" is read by v2 and by v1 from 3.67, "chartConfig" never.
    config = query.get("config") if endpoint == "v2" or version >= (3, 67) else None
    row_limit = 100 if endpoint == "v2" else None
    if config is not None:
        limit = config.get("row_limit") if isinstance(config, dict) else None
        if limit is not None:
            if not isinstance(limit, int) or isinstance(limit, bool) or not 0 < limit <= 1000:
                raise BadQuery("config.row_limit must be a positive integer, at most 1000")
            row_limit = limit
    dims = [d.get("field") if isinstance(d, dict) else None for d in query.get("dimensions") or []]
    for d in dims:
        if d not in view.dimensions:
            raise BadQuery(f"Invalid dimension {d}")
    metrics = []
    for m in query.get("metrics") or []:
        if not isinstance(m, dict) or m.get("aggregation") not in AGGREGATIONS:
            raise BadQuery("Invalid metric aggregation")
        if m.get("measure") not in view.measures:
            raise BadQuery(f"Invalid measure {m.get('measure')}")
        metrics.append((m["measure"], m["aggregation"]))
    events = endpoint == "v2"
    keep = [_filter(view, f, events) for f in query.get("filters") or []]
    records = [r for r in getattr(data, view.records) if r.project_id == project_id
               and start <= view.time(r) <= end and (view.segment is None or view.segment(r))
               and all(k(r) for k in keep)]
    groups: dict[tuple, list] = defaultdict(list)
    for r in records:
        groups[tuple(view.dimensions[d](r) for d in dims)].append(r)
    rows = []
    for key, members in sorted(groups.items(), key=lambda kv: json.dumps(kv[0], default=str)):
        row = dict(zip(dims, key))
        for measure, aggregation in metrics:
            values = [v for v in (view.measures[measure](r) for r in members) if v is not None]
            if measure == "count" and aggregation == "count":
                values = [1] * len(members)
            row[f"{aggregation}_{measure}"] = _value(values, aggregation, measure in view.integer_measures)
        rows.append(row)
    return rows if row_limit is None else rows[:row_limit]


class FakeLangfuseServer(FakeServer):
    """``mode``: ok, error (500 everywhere but health), garbage, hang, down (health 503).

    ``write_mode`` is ``LANGFUSE_MIGRATION_V4_WRITE_MODE`` (legacy, dual, events_only; default:
    legacy on v3, events_only on v4); ``preview`` its ``LANGFUSE_MIGRATION_V4_ALLOW_PREVIEW_OPT_IN``
    (default: off on v3, on on v4).
    """

    def __init__(self, version: str = "4.16.0", data: Dataset | None = None, *, project_id: str = "p-chat",
                 public_key: str = "pk-lf-test", secret_key: str = "sk-lf-test", mode: str = "ok",
                 write_mode: str | None = None, preview: bool | None = None,
                 latency: float = 0.0, host: str = "127.0.0.1", port: int = 0):
        super().__init__(hang=mode == "hang", latency=latency, host=host, port=port)
        self.version, self.data, self.project_id, self.mode = version, data or Dataset(), project_id, mode
        self.write_mode = write_mode or ("events_only" if self.major >= 4 else "legacy")
        self.preview = self.major >= 4 if preview is None else preview
        self.auth = "Basic " + base64.b64encode(f"{public_key}:{secret_key}".encode()).decode()
        self.queries: list[dict] = []
        self.answered: list[int] = []  # rows of each metrics answer

    @property
    def major(self) -> int:
        return (version_tuple(self.version) or (0,))[0]

    def endpoints(self) -> set[str]:
        """The metrics endpoints this deployment serves: "v1" (/api/public/metrics), "v2" (/api/public/v2/metrics)."""
        version = version_tuple(self.version)
        out = set()
        if version >= (3, 57) and self.write_mode != "events_only":
            out.add("v1")
        if self.write_mode != "legacy" and self.preview and (self.major >= 4 or version >= (3, 137)):
            out.add("v2")
        return out

    def answer(self, path: str, headers: dict[str, str]) -> tuple[int, str, bytes]:
        parts = urlsplit(path)
        route = parts.path
        if route == "/api/public/health":
            if self.mode == "down":
                return 503, "application/json", json.dumps({"status": "Database error", "version": self.version}).encode()
            return self._json(200, {"status": "OK", "version": self.version})
        if self.mode == "error":
            return 500, "application/json", b'{"message": "Internal Server Error"}'
        if self.mode == "garbage":
            return 200, "text/html", b"<html>502 Bad Gateway</html>"
        if headers.get("authorization") != self.auth:
            return self._json(401, {"message": "Invalid credentials. Confirm that you've configured the correct host."})
        if route == "/api/public/projects":
            return self._json(200, {"data": [{"id": self.project_id, "name": self.data.projects.get(self.project_id, self.project_id)}]})
        endpoint = {"/api/public/metrics": "v1", "/api/public/v2/metrics": "v2"}.get(route)
        if endpoint is None or endpoint not in self.endpoints():
            return self._json(404, {"message": "Not found"})
        try:
            query = json.loads(parse_qs(parts.query)["query"][0])
        except (KeyError, ValueError):
            return self._json(400, {"message": "Invalid JSON in query parameter"})
        self.queries.append(query)
        try:
            rows = evaluate(self.data, self.project_id, version_tuple(self.version), endpoint, query)
        except BadQuery as e:
            return self._json(400, {"message": str(e)})
        self.answered.append(len(rows))
        return self._json(200, {"data": rows})

    @staticmethod
    def _json(status: int, body) -> tuple[int, str, bytes]:
        return status, "application/json", json.dumps(body).encode()
