"""Langfuse activity turned into Prometheus counters that a restart, a late update or an outage cannot falsify.

Both sources (v2's Postgres, v3/v4's public API) answer the same questions about a time range
with an :class:`Aggregate`: observations per project, environment, model, type and level, traces
per project and environment (and per trace name, and per release), numeric and boolean scores per
name. This module turns aggregates
into counter values; it does no I/O.

How a counter is built (the :class:`Ledger`): time is split at ``settled_until`` (Z), which trails
the refresh instant by ``settle_seconds``.

- Rows before Z are *settled*: their values were read once, in the refresh at which Z passed them
  (a half-open range ``[Z_old, Z_new)``, so a row on a boundary falls in exactly one), and added to
  ``frozen``. Changes Langfuse makes to them later are not counted.
- Rows from Z to now are *open*: every refresh reads their aggregate afresh (the window), so a
  row that arrives late, or whose usage, cost or level is updated, is counted with its current
  values, once.

A counter's value is frozen + window. It never goes down: a row that moves to another series (a
generation updated to level ERROR) or is deleted makes its old series wait until new rows make up
for it (``exposed`` keeps the highest value shown), so Prometheus never sees a false reset. A
series shows 0 in its first scrape, so ``increase()`` counts its first rows too. The ledger is
saved after each refresh (``to_json``); a restarted exporter loads it and carries on from Z, so
nothing is counted twice or skipped. Without a saved ledger, counting starts at the first refresh:
``frozen`` starts as minus that window, so every counter starts at 0 and grows with what happens
from then on (rows arriving, and updates to rows younger than ``settle_seconds``).

Label values are bounded per dimension: the first ``limit`` distinct projects, environments,
models, score names, trace names and releases keep their own series, later ones are counted under
``other``. Within one read, trace names and releases are admitted by count, the largest first, so
the busiest ones get the series when more arrive at once than the limit allows.
"""

from __future__ import annotations

import fnmatch
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily

OTHER = "other"
QUANTILES = ("0.5", "0.95", "0.99")
DEFAULT_ENVIRONMENT = "default"  # Langfuse's own default; also what v2 data (no environments) is read as
STATE_FORMAT = 1


class SourceError(Exception):
    """A source could not read Langfuse; ``reason`` goes to scrape_errors_total."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class ObservationRow:
    project: str
    environment: str
    model: str
    type: str
    level: str
    count: int
    input_tokens: float
    output_tokens: float
    cost_usd: float


@dataclass(frozen=True)
class TraceRow:
    project: str
    environment: str
    count: int


@dataclass(frozen=True)
class TraceGroupRow:
    """Traces of one trace name or one release (``value``; "" when the trace has none)."""

    project: str
    environment: str
    value: str
    count: int


@dataclass(frozen=True)
class ScoreRow:
    project: str
    environment: str
    name: str
    count: int
    total: float


@dataclass(frozen=True)
class LatencyRow:
    """Percentiles (seconds) by quantile ("0.5", "0.95", "0.99") over the trailing window; empty: none.

    ``environment`` is None when the rows of all counted environments were taken together.
    """

    project: str
    environment: str | None
    model: str
    latency: dict[str, float]
    time_to_first_token: dict[str, float]


@dataclass
class Aggregate:
    """What one time range holds; ``traces`` None: this source cannot count traces (nor by name or release)."""

    observations: list[ObservationRow] = field(default_factory=list)
    traces: list[TraceRow] | None = field(default_factory=list)
    scores: list[ScoreRow] = field(default_factory=list)
    trace_names: list[TraceGroupRow] = field(default_factory=list)
    trace_releases: list[TraceGroupRow] = field(default_factory=list)


@dataclass
class Reading:
    """One read of the source: each settling range in order, the open window (None: not read), percentiles."""

    settled: list[Aggregate] = field(default_factory=list)
    window: Aggregate | None = None
    latency: list[LatencyRow] = field(default_factory=list)


class LabelBudget:
    """The first ``limit`` distinct values pass; the rest become ``other``."""

    def __init__(self, limit: int):
        self.limit = limit
        self.admitted: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self.admitted:
            return value
        if len(self.admitted) < self.limit:
            self.admitted.add(value)
            return value
        return OTHER


@dataclass(frozen=True)
class EnvironmentFilter:
    """Which Langfuse environments are counted: those matching ``include`` and no ``exclude`` pattern (fnmatch).

    The default leaves out ``langfuse-*``: Langfuse's own LLM-as-a-judge and experiment runs,
    which its UI hides unless asked for.
    """

    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ("langfuse-*",)

    def __call__(self, environment: str) -> bool:
        return (any(fnmatch.fnmatchcase(environment, p) for p in self.include)
                and not any(fnmatch.fnmatchcase(environment, p) for p in self.exclude))

    @property
    def everything(self) -> bool:
        return self.include == ("*",) and not self.exclude

    def describe(self) -> str:
        return f"include={','.join(self.include)} exclude={','.join(self.exclude)}"


Key = tuple[str, tuple[str, ...]]  # (family, label values)

FAMILIES = {  # family -> label names, without the optional environment label
    "observations": ("project", "model", "type", "level"),
    "tokens": ("project", "model", "direction"),
    "cost": ("project", "model"),
    "traces": ("project",),
    "traces_by_name": ("project", "trace_name"),
    "traces_by_release": ("project", "release"),
    "score_count": ("project", "name"),
    "score_sum": ("project", "name"),
}


class Labeler:
    """Aggregates to counter values: environments filtered, label values bounded, environment as a label or not."""

    def __init__(self, projects: int = 20, models: int = 50, score_names: int = 30, environments: int = 20,
                 trace_names: int = 30, releases: int = 10,
                 environment_filter: EnvironmentFilter = EnvironmentFilter(), environment_label: bool = False,
                 trace_groups: bool = True):
        self.project = LabelBudget(projects)
        self.model = LabelBudget(models)
        self.score_name = LabelBudget(score_names)
        self.environment = LabelBudget(environments)
        self.trace_name = LabelBudget(trace_names)
        self.release = LabelBudget(releases)
        self.counted = environment_filter
        self.environment_label = environment_label
        # Traces per name and release are asked for only when on: off for a deployment whose trace
        # names carry ids, where one window can hold more names than an answer (the read fails, truncated).
        self.trace_groups = trace_groups

    def describe(self) -> str:
        """What decides the series (part of the ledger's identity: a saved ledger of other labels is not reused)."""
        return (f"{self.counted.describe()} environment_label={self.environment_label}"
                + ("" if self.trace_groups else " trace_groups=off"))

    def admit(self, keys) -> None:
        """Labels already counted (a loaded ledger) keep their series."""
        for family, labels in keys:
            names = FAMILIES[family] + (("environment",) if self.environment_label else ())
            for name, value in zip(names, labels):
                budget = {"project": self.project, "model": self.model, "name": self.score_name,
                          "environment": self.environment, "trace_name": self.trace_name,
                          "release": self.release}.get(name)
                if budget is not None and value != OTHER:
                    budget.admitted.add(value)

    def _env(self, environment: str) -> tuple[str, ...]:
        return (self.environment(environment),) if self.environment_label else ()

    def values(self, aggregate: Aggregate) -> tuple[dict[Key, float], bool]:
        """Counter values of one aggregate, and whether it counted traces."""
        out: dict[Key, float] = defaultdict(float)
        for r in aggregate.observations:
            if not self.counted(r.environment):
                continue
            project, model, env = self.project(r.project), self.model(r.model or "none"), self._env(r.environment)
            out[("observations", (project, model, r.type, r.level) + env)] += r.count
            out[("tokens", (project, model, "input") + env)] += r.input_tokens
            out[("tokens", (project, model, "output") + env)] += r.output_tokens
            out[("cost", (project, model) + env)] += r.cost_usd
        for r in aggregate.traces or []:
            if self.counted(r.environment):
                out[("traces", (self.project(r.project),) + self._env(r.environment))] += r.count
        for family, rows, budget in (("traces_by_name", aggregate.trace_names, self.trace_name),
                                     ("traces_by_release", aggregate.trace_releases, self.release)):
            for r in sorted(rows, key=lambda r: -r.count):  # the busiest first, while the budget lasts
                if self.counted(r.environment):
                    out[(family, (self.project(r.project), budget(r.value)) + self._env(r.environment))] += r.count
        for r in aggregate.scores:
            if self.counted(r.environment):
                labels = (self.project(r.project), self.score_name(r.name)) + self._env(r.environment)
                out[("score_count", labels)] += r.count
                out[("score_sum", labels)] += r.total
        return dict(out), aggregate.traces is not None

    def latency(self, rows: list[LatencyRow]) -> list[LatencyRow]:
        """Percentiles cannot be merged: rows whose labels fall into ``other`` are left out rather than mixed."""
        out = []
        for r in rows:
            if r.environment is not None and not self.counted(r.environment):
                continue
            model = r.model or "none"
            if self.project(r.project) != r.project or self.model(model) != model:
                continue
            if self.environment_label and r.environment is not None and self.environment(r.environment) != r.environment:
                continue
            out.append(r)
        return out


def _add(into: dict[Key, float], values: dict[Key, float], sign: float = 1.0) -> None:
    for key, value in values.items():
        into[key] = into.get(key, 0.0) + sign * value


class Ledger:
    """Counter values of one Langfuse (``identity``), kept across refreshes and restarts; see the module doc."""

    def __init__(self, identity: str):
        self.identity = identity
        self.settled_until: datetime | None = None
        self.frozen: dict[Key, float] = {}
        self.exposed: dict[Key, float] = {}
        self.announced: set[Key] = set()
        self.traces = True

    @property
    def started(self) -> bool:
        return self.settled_until is not None

    def start(self, settled_until: datetime, window: dict[Key, float]) -> None:
        """The first refresh without a saved ledger: everything read so far counts as 0."""
        self.settled_until = settled_until
        self.frozen = {k: -v for k, v in window.items()}
        for key in window:
            self.exposed.setdefault(key, 0.0)

    def settle(self, until: datetime, values: dict[Key, float]) -> None:
        """Rows of ``[settled_until, until)`` get their final values."""
        _add(self.frozen, values)
        self.settled_until = until

    def observe(self, window: dict[Key, float] | None, traces: bool) -> None:
        """Show frozen + window (None: the window was not read; frozen alone, which never overtakes the truth)."""
        self.traces = traces
        totals = dict(self.frozen)
        if window is not None:
            _add(totals, window)
        for key, value in totals.items():
            self.exposed[key] = max(value, self.exposed.get(key, 0.0))

    def families(self, environment_label: bool) -> list:
        """Counter families; a series not shown before shows 0 once (marked shown here)."""
        env = ("environment",) if environment_label else ()
        shown: dict[Key, float] = {}
        for key in sorted(self.exposed):
            shown[key] = self.exposed[key] if key in self.announced else 0.0
            self.announced.add(key)
        observations = CounterMetricFamily("llmwatch_langfuse_observations", "Observations (spans, generations, "
                                           "events...) by start time; see docs/metrics.md for the exact meaning.",
                                           labels=[*FAMILIES["observations"], *env])
        tokens = CounterMetricFamily("llmwatch_langfuse_tokens", "Input and output tokens of the observations "
                                     "counted (usage measured in tokens only).", labels=[*FAMILIES["tokens"], *env])
        cost = CounterMetricFamily("llmwatch_langfuse_cost_usd", "Cost of the observations counted, as Langfuse "
                                   "computes it (the user's cost, else its model prices).",
                                   labels=[*FAMILIES["cost"], *env])
        traces = CounterMetricFamily("llmwatch_langfuse_traces", "Traces by timestamp (v4: root observations by "
                                     "start time).", labels=[*FAMILIES["traces"], *env])
        scores = SummaryMetricFamily("llmwatch_langfuse_score_value", "Numeric and boolean scores by timestamp: how "
                                     "many and their sum (the average is sum / count).",
                                     labels=[*FAMILIES["score_count"], *env])
        by_name = CounterMetricFamily("llmwatch_langfuse_traces_by_name", "The same traces by trace name (\"\": "
                                      "none; names past langfuse.trace_names_limit: other).",
                                      labels=[*FAMILIES["traces_by_name"], *env])
        by_release = CounterMetricFamily("llmwatch_langfuse_traces_by_release", "The same traces by release (\"\": "
                                         "none; releases past langfuse.releases_limit: other).",
                                         labels=[*FAMILIES["traces_by_release"], *env])
        by_family = {"observations": observations, "tokens": tokens, "cost": cost, "traces": traces,
                     "traces_by_name": by_name, "traces_by_release": by_release}
        score_sums = {labels: v for (family, labels), v in shown.items() if family == "score_sum"}
        for (family, labels), value in shown.items():
            if family in by_family:
                by_family[family].add_metric(list(labels), value)
            elif family == "score_count":
                scores.add_metric(list(labels), count_value=value, sum_value=score_sums.get(labels, 0.0))
        return [observations, tokens, cost] + ([traces, by_name, by_release] if self.traces else []) + [scores]

    def to_json(self) -> str:
        def pairs(values):
            return [[family, list(labels), value] for (family, labels), value in sorted(values.items())]
        return json.dumps({"format": STATE_FORMAT, "identity": self.identity,
                           "settled_until": self.settled_until.isoformat() if self.settled_until else None,
                           "frozen": pairs(self.frozen), "exposed": pairs(self.exposed),
                           "announced": [[f, list(ls)] for f, ls in sorted(self.announced)], "traces": self.traces})

    @classmethod
    def from_json(cls, text: str) -> Ledger:
        """ValueError when ``text`` is not a ledger this version wrote."""
        try:
            raw = json.loads(text)
            if raw.get("format") != STATE_FORMAT:
                raise ValueError(f"format {raw.get('format')!r}")
            ledger = cls(str(raw["identity"]))
            ledger.settled_until = datetime.fromisoformat(raw["settled_until"]) if raw["settled_until"] else None
            ledger.frozen = {(f, tuple(ls)): float(v) for f, ls, v in raw["frozen"] if f in FAMILIES}
            ledger.exposed = {(f, tuple(ls)): float(v) for f, ls, v in raw["exposed"] if f in FAMILIES}
            ledger.announced = {(f, tuple(ls)) for f, ls in raw["announced"]}
            ledger.traces = bool(raw.get("traces", True))
            return ledger
        except (TypeError, KeyError, AttributeError, json.JSONDecodeError) as e:
            raise ValueError(f"not a saved Langfuse ledger: {e}") from None


def latency_families(rows: list[LatencyRow], environment_label: bool) -> list:
    env = ["environment"] if environment_label else []
    latency = GaugeMetricFamily("llmwatch_langfuse_generation_latency_seconds", "Generation latency "
                                "percentiles over the trailing window (langfuse.window_seconds).",
                                labels=["project", "model", "quantile", *env])
    ttft = GaugeMetricFamily("llmwatch_langfuse_generation_time_to_first_token_seconds", "Time-to-first-token "
                             "percentiles of streamed generations over the trailing window.",
                             labels=["project", "model", "quantile", *env])
    for row in sorted(rows, key=lambda r: (r.project, r.model, r.environment or "")):
        extra = [row.environment or DEFAULT_ENVIRONMENT] if environment_label else []
        for family, values in ((latency, row.latency), (ttft, row.time_to_first_token)):
            for q in QUANTILES:
                if q in values:
                    family.add_metric([row.project, row.model or "none", q, *extra], values[q])
    return [latency, ttft]
