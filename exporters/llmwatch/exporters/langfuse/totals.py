"""Running totals of Langfuse activity, kept as Prometheus counters, with bounded label values.

Both sources (v2's Postgres, v3/v4's public API) hand over a :class:`Batch`: what happened
between two instants, already aggregated per project, model, type and level, plus latency
percentiles over a trailing window. This module adds batches into counters and builds the metric
families; it does no I/O.

Label values are bounded per dimension: the first ``limit`` distinct projects, models and score
names keep their own series, later ones are counted under ``other``. First come keeps each series
monotonic (a counter never moves from one label to another).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily

OTHER = "other"
QUANTILES = ("0.5", "0.95", "0.99")


class SourceError(Exception):
    """A source could not read Langfuse; ``reason`` goes to scrape_errors_total."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class ObservationRow:
    project: str
    model: str
    type: str
    level: str
    count: int
    input_tokens: float
    output_tokens: float
    cost_usd: float


@dataclass(frozen=True)
class LatencyRow:
    """Percentiles (seconds) by quantile ("0.5", "0.95", "0.99") over the trailing window; empty: none."""

    project: str
    model: str
    latency: dict[str, float]
    time_to_first_token: dict[str, float]


@dataclass
class Batch:
    observations: list[ObservationRow] = field(default_factory=list)
    traces: dict[str, int] | None = field(default_factory=dict)  # None: this source cannot count traces
    scores: list[tuple[str, str, int, float]] = field(default_factory=list)  # project, name, count, sum
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


class Totals:
    def __init__(self, projects: int = 20, models: int = 50, score_names: int = 30):
        self.project = LabelBudget(projects)
        self.model = LabelBudget(models)
        self.score_name = LabelBudget(score_names)
        self.observations: dict[tuple[str, str, str, str], int] = defaultdict(int)
        self.tokens: dict[tuple[str, str, str], float] = defaultdict(float)
        self.cost: dict[tuple[str, str], float] = defaultdict(float)
        self.traces: dict[str, int] | None = defaultdict(int)
        self.scores: dict[tuple[str, str], list[float]] = {}
        self.latency: list[LatencyRow] = []

    def add(self, batch: Batch) -> None:
        for row in batch.observations:
            project, model = self.project(row.project), self.model(row.model or "none")
            self.observations[(project, model, row.type, row.level)] += row.count
            self.tokens[(project, model, "input")] += row.input_tokens
            self.tokens[(project, model, "output")] += row.output_tokens
            self.cost[(project, model)] += row.cost_usd
        if batch.traces is None:
            self.traces = None
        elif self.traces is not None:
            for project, count in batch.traces.items():
                self.traces[self.project(project)] += count
        for project, name, count, total in batch.scores:
            entry = self.scores.setdefault((self.project(project), self.score_name(name)), [0, 0.0])
            entry[0] += count
            entry[1] += total
        # Percentiles cannot be merged: rows that fall into "other" are left out rather than mixed.
        self.latency = [r for r in batch.latency if self.project(r.project) == r.project
                        and self.model(r.model or "none") == (r.model or "none")]

    def families(self) -> list:
        observations = CounterMetricFamily("llmwatch_langfuse_observations", "Observations (spans, generations, "
                                           "events) by start time, counted since the exporter started.",
                                           labels=["project", "model", "type", "level"])
        for labels, count in sorted(self.observations.items()):
            observations.add_metric(list(labels), count)
        tokens = CounterMetricFamily("llmwatch_langfuse_tokens", "Input and output tokens of the observations counted.",
                                     labels=["project", "model", "direction"])
        for labels, count in sorted(self.tokens.items()):
            tokens.add_metric(list(labels), count)
        cost = CounterMetricFamily("llmwatch_langfuse_cost_usd", "Cost Langfuse recorded for the observations "
                                   "counted (user-provided, else computed from its model prices).",
                                   labels=["project", "model"])
        for labels, total in sorted(self.cost.items()):
            cost.add_metric(list(labels), total)
        out = [observations, tokens, cost]
        if self.traces is not None:
            traces = CounterMetricFamily("llmwatch_langfuse_traces", "Traces by timestamp, counted since the "
                                         "exporter started.", labels=["project"])
            for project, count in sorted(self.traces.items()):
                traces.add_metric([project], count)
            out.append(traces)
        scores = SummaryMetricFamily("llmwatch_langfuse_score_value", "Numeric and boolean scores: how many and "
                                     "their sum (the average is sum / count).", labels=["project", "name"])
        for labels, (count, total) in sorted(self.scores.items()):
            scores.add_metric(list(labels), count_value=count, sum_value=total)
        out.append(scores)
        latency = GaugeMetricFamily("llmwatch_langfuse_generation_latency_seconds", "Generation latency "
                                    "percentiles over the trailing window (langfuse.window_seconds).",
                                    labels=["project", "model", "quantile"])
        ttft = GaugeMetricFamily("llmwatch_langfuse_generation_time_to_first_token_seconds", "Time-to-first-token "
                                 "percentiles of streamed generations over the trailing window.",
                                 labels=["project", "model", "quantile"])
        for row in sorted(self.latency, key=lambda r: (r.project, r.model)):
            for family, values in ((latency, row.latency), (ttft, row.time_to_first_token)):
                for q in QUANTILES:
                    if q in values:
                        family.add_metric([row.project, row.model or "none", q], values[q])
        return out + [latency, ttft]
