"""A simulated Langfuse, for demo mode and tests (Langfuse, ClickHouse and its workers cannot run here).

:func:`generate` makes a repeatable dataset of projects, traces, observations and scores; tests
load the same records into a real PostgreSQL with Langfuse v2's schema, or serve them through
:class:`FakeLangfuseServer`, which answers the public API the way each major version does:

- every version: ``GET /api/public/health`` → ``{"status": "OK", "version": ...}`` (no auth);
- v3 (``3.x``, from 3.57): ``GET /api/public/metrics?query=<JSON>`` with views ``traces``,
  ``observations``, ``scores-numeric``; ``/api/public/v2/metrics`` answers 404 (preview off);
- v4 (``4.x``, events_only mode): ``/api/public/metrics`` answers 404; ``/api/public/v2/metrics``
  serves ``observations`` and ``scores-numeric`` (no ``traces`` view: 400);
- ``GET /api/public/projects`` → the keys' project. Basic auth with the project's key pair.

Rows name dimensions by field and metrics ``<aggregation>_<measure>``; counts come as strings
(ClickHouse UInt64), latencies in milliseconds. Percentiles are exact (linear interpolation).
"""

from __future__ import annotations

import base64
import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from llmwatch.simulation.server import FakeServer

MODELS = ("meta-llama/Llama-3.1-70B-Instruct", "Qwen/Qwen3-32B", "mistralai/Mistral-7B-Instruct-v0.3")


@dataclass
class Observation:
    id: str
    trace_id: str
    project_id: str
    type: str  # SPAN, EVENT, GENERATION
    level: str  # DEBUG, DEFAULT, WARNING, ERROR
    name: str
    model: str | None
    start_time: datetime  # naive UTC, as Langfuse stores it
    end_time: datetime | None
    completion_start_time: datetime | None
    prompt_tokens: int
    completion_tokens: int
    total_cost: float | None  # user-provided
    calculated_total_cost: float | None  # computed by Langfuse at ingestion

    @property
    def cost(self) -> float:
        return self.total_cost if self.total_cost is not None else (self.calculated_total_cost or 0.0)


@dataclass
class Trace:
    id: str
    project_id: str
    name: str
    timestamp: datetime


@dataclass
class Score:
    id: str
    project_id: str
    trace_id: str
    name: str
    value: float | None
    data_type: str
    timestamp: datetime


@dataclass
class Dataset:
    projects: dict[str, str] = field(default_factory=dict)  # id -> name
    traces: list[Trace] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    scores: list[Score] = field(default_factory=list)


def generate(now: datetime, traces: int = 200, seed: int = 7, span: timedelta = timedelta(minutes=50),
             projects: dict[str, str] | None = None, prefix: str = "") -> Dataset:
    """Traces spread over ``span`` before ``now`` (naive UTC), each with a span and one or two generations.

    Ids are ``<prefix>t1``, ``<prefix>o2``...: give datasets loaded together different prefixes.
    """
    rng = random.Random(seed)
    data = Dataset(projects=projects or {"p-chat": "chat-app", "p-rag": "rag-search"})
    ids = iter(range(10**9))
    for _ in range(traces):
        project = rng.choice(sorted(data.projects))
        start = now - span * rng.random()
        start = start.replace(microsecond=start.microsecond // 1000 * 1000)  # Langfuse keeps milliseconds
        trace = Trace(f"{prefix}t{next(ids)}", project, rng.choice(["chat", "search"]), start)
        data.traces.append(trace)
        data.observations.append(Observation(
            f"{prefix}o{next(ids)}", trace.id, project, "SPAN", "DEFAULT", "retrieve", None, start,
            start + timedelta(milliseconds=rng.randint(5, 80)), None, 0, 0, None, None))
        for g in range(rng.choice([1, 1, 2])):
            model = rng.choice(MODELS)
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
                round(prompt * 2e-7 + completion * 6e-7, 8)))
        if rng.random() < 0.4:
            data.scores.append(Score(f"{prefix}s{next(ids)}", project, trace.id, rng.choice(["helpfulness", "correctness"]),
                                     round(rng.random(), 3), "NUMERIC", start + timedelta(seconds=1)))
        if rng.random() < 0.1:
            data.scores.append(Score(f"{prefix}s{next(ids)}", project, trace.id, "tone", None, "CATEGORICAL",
                                     start + timedelta(seconds=1)))
    return data


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)


MEASURES = {
    "observations": {
        "count": lambda o: 1, "inputTokens": lambda o: o.prompt_tokens, "outputTokens": lambda o: o.completion_tokens,
        "totalCost": lambda o: o.cost,
        "latency": lambda o: (o.end_time - o.start_time).total_seconds() * 1000 if o.end_time else None,
        "timeToFirstToken": lambda o: ((o.completion_start_time - o.start_time).total_seconds() * 1000
                                       if o.completion_start_time else None)},
    "traces": {"count": lambda t: 1},
    "scores-numeric": {"count": lambda s: 1, "value": lambda s: s.value},
}
DIMENSIONS = {"providedModelName": lambda r: r.model, "type": lambda r: r.type, "level": lambda r: r.level,
              "name": lambda r: r.name}


class FakeLangfuseServer(FakeServer):
    """``mode``: ok, error (500 everywhere but health), garbage, hang, down (health 503)."""

    def __init__(self, version: str = "4.16.0", data: Dataset | None = None, *, project_id: str = "p-chat",
                 public_key: str = "pk-lf-test", secret_key: str = "sk-lf-test", mode: str = "ok",
                 latency: float = 0.0, host: str = "127.0.0.1", port: int = 0):
        super().__init__(hang=mode == "hang", latency=latency, host=host, port=port)
        self.version, self.data, self.project_id, self.mode = version, data or Dataset(), project_id, mode
        self.auth = "Basic " + base64.b64encode(f"{public_key}:{secret_key}".encode()).decode()
        self.queries: list[dict] = []

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

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
        v1, v2 = route == "/api/public/metrics", route == "/api/public/v2/metrics"
        if (v1 and self.major >= 4) or (v2 and self.major < 4) or not (v1 or v2):
            return self._json(404, {"message": "Not found"})
        query = json.loads(parse_qs(parts.query)["query"][0])
        self.queries.append(query)
        if query["view"] not in MEASURES or (v2 and query["view"] == "traces"):
            return self._json(400, {"message": f"Invalid view {query['view']}"})
        return self._json(200, {"data": self.evaluate(query)})

    def evaluate(self, query: dict) -> list[dict]:
        view = query["view"]
        records = {"observations": self.data.observations, "traces": self.data.traces,
                   "scores-numeric": [s for s in self.data.scores if s.data_type == "NUMERIC"]}[view]
        start, end = _parse_time(query["fromTimestamp"]), _parse_time(query["toTimestamp"])
        when = (lambda r: r.start_time) if view == "observations" else (lambda r: r.timestamp)
        chosen = [r for r in records if r.project_id == self.project_id and start <= when(r) < end]
        for f in query.get("filters") or []:
            chosen = [r for r in chosen if str(getattr(r, f["column"])) == f["value"]]
        dims = [d["field"] for d in query.get("dimensions") or []]
        groups: dict[tuple, list] = defaultdict(list)
        for r in chosen:
            groups[tuple(DIMENSIONS[d](r) for d in dims)].append(r)
        rows = []
        for key, members in sorted(groups.items(), key=lambda kv: str(kv[0])):
            row = dict(zip(dims, key))
            for metric in query["metrics"]:
                measure, aggregation = metric["measure"], metric["aggregation"]
                values = [v for v in (MEASURES[view][measure](r) for r in members) if v is not None]
                if aggregation == "count":
                    result = str(len(members))
                elif aggregation == "sum":
                    result = sum(values)
                else:
                    result = _percentile(values, int(aggregation[1:]) / 100) if values else None
                row[f"{aggregation}_{measure}"] = result
            rows.append(row)
        return rows

    @staticmethod
    def _json(status: int, body) -> tuple[int, str, bytes]:
        return status, "application/json", json.dumps(body).encode()
