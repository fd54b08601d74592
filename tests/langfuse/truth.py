"""What the Langfuse counters must say, computed from the records themselves, by Langfuse's definitions.

Written independently of the exporter: the tests compare its exposition with these sums.
"""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from datetime import datetime

import pytest

from llmwatch.simulation.langfuse import Dataset, Model, Observation
from tests.procs import samples


def internal(environment: str) -> bool:
    return fnmatch.fnmatchcase(environment, "langfuse-*")


def view_cost(o: Observation, models: list[Model]) -> float:
    """Langfuse v2's observations_view.calculated_total_cost: a row without any cost is priced from its model."""
    if o.calculated_total_cost is not None or o.total_cost is not None:
        return o.calculated_total_cost if o.calculated_total_cost is not None else o.total_cost
    rows = [m for m in models if m.model_name == o.internal_model and m.unit == o.unit
            and (m.project_id in (None, o.project_id)) and (m.start_date is None or m.start_date < o.start_time)]
    if not rows:
        return 0.0
    m = sorted(rows, key=lambda m: (m.project_id is None, -(m.start_date.timestamp() if m.start_date else -1e18)))[0]
    if m.total_price is not None:
        return m.total_price * (o.prompt_tokens + o.completion_tokens)
    return o.prompt_tokens * (m.input_price or 0) + o.completion_tokens * (m.output_price or 0)


def empty() -> dict:
    return {"observations": defaultdict(int), "tokens": defaultdict(float), "cost": defaultdict(float),
            "traces": defaultdict(int), "by_name": defaultdict(int), "by_release": defaultdict(int),
            "scores": defaultdict(lambda: [0, 0.0])}


def counted(data: Dataset, start: datetime, end: datetime, *, project_id: str | None = None, v2: bool = False,
            keep=lambda environment: not internal(environment), by_environment: bool = False) -> dict:
    """Sums over rows whose time is in [start, end]: observations by start time, traces and scores by timestamp.

    ``v2``: Langfuse v2's Postgres (tokens only where usage is in tokens, costs as its view prices
    them); else the metrics API (its inputTokens/outputTokens and totalCost).
    """
    want = empty()
    name = data.projects
    env = (lambda r: (r.environment or "default",)) if by_environment else (lambda r: ())  # noqa: E731
    chosen = lambda r, when: (start <= when <= end and project_id in (None, r.project_id)  # noqa: E731
                              and keep(r.environment or "default"))
    for o in data.observations:
        if chosen(o, o.start_time):
            key = (name[o.project_id], o.model or "none")
            want["observations"][(*key, o.type, o.level, *env(o))] += 1
            tokens = not v2 or o.unit in (None, "TOKENS")
            want["tokens"][(*key, "input", *env(o))] += o.prompt_tokens if tokens else 0
            want["tokens"][(*key, "output", *env(o))] += o.completion_tokens if tokens else 0
            want["cost"][(*key, *env(o))] += view_cost(o, data.models) if v2 else o.cost
    for t in data.traces:
        if chosen(t, t.timestamp):
            want["traces"][(name[t.project_id], *env(t))] += 1
            want["by_name"][(name[t.project_id], t.name or "", *env(t))] += 1
            want["by_release"][(name[t.project_id], t.release or "", *env(t))] += 1
    for s in data.scores:
        if chosen(s, s.timestamp) and s.data_type in ("NUMERIC", "BOOLEAN") and s.value is not None:
            entry = want["scores"][(name[s.project_id], s.name, *env(s))]
            entry[0] += 1
            entry[1] += s.value
    return want


def plus(*parts: dict) -> dict:
    out = empty()
    for part in parts:
        for kind in ("observations", "tokens", "cost", "traces", "by_name", "by_release"):
            for k, v in part[kind].items():
                out[kind][k] += v
        for k, (count, total) in part["scores"].items():
            out["scores"][k][0] += count
            out["scores"][k][1] += total
    return out


def exposed(text: str, by_environment: bool = False) -> dict:
    got = {"observations": {}, "tokens": {}, "cost": {}, "traces": {}, "by_name": {}, "by_release": {},
           "scores": defaultdict(lambda: [0, 0.0])}
    for (n, labels), v in samples(text).items():
        ls = dict(labels)
        if not n.startswith(("llmwatch_langfuse_observations", "llmwatch_langfuse_tokens", "llmwatch_langfuse_cost",
                             "llmwatch_langfuse_traces", "llmwatch_langfuse_score")):
            continue
        env = (ls["environment"],) if by_environment else ()
        if n == "llmwatch_langfuse_observations_total" and v:
            got["observations"][(ls["project"], ls["model"], ls["type"], ls["level"], *env)] = v
        elif n == "llmwatch_langfuse_tokens_total" and v:
            got["tokens"][(ls["project"], ls["model"], ls["direction"], *env)] = v
        elif n == "llmwatch_langfuse_cost_usd_total" and v:
            got["cost"][(ls["project"], ls["model"], *env)] = v
        elif n == "llmwatch_langfuse_traces_total" and v:
            got["traces"][(ls["project"], *env)] = v
        elif n == "llmwatch_langfuse_traces_by_name_total" and v:
            got["by_name"][(ls["project"], ls.get("trace_name", ""), *env)] = v
        elif n == "llmwatch_langfuse_traces_by_release_total" and v:
            got["by_release"][(ls["project"], ls.get("release", ""), *env)] = v
        elif n == "llmwatch_langfuse_score_value_count" and v:
            got["scores"][(ls["project"], ls["name"], *env)][0] = v
        elif n == "llmwatch_langfuse_score_value_sum" and v:
            got["scores"][(ls["project"], ls["name"], *env)][1] = v
    return got


def assert_totals(text: str, want: dict, traces: bool = True, by_environment: bool = False) -> None:
    got = exposed(text, by_environment)
    assert got["observations"] == {k: v for k, v in want["observations"].items() if v}
    assert got["tokens"] == {k: v for k, v in want["tokens"].items() if v}
    assert got["cost"].keys() == {k for k, v in want["cost"].items() if v}
    for k, v in got["cost"].items():
        assert v == pytest.approx(want["cost"][k], rel=1e-9)
    if traces:
        assert got["traces"] == {k: v for k, v in want["traces"].items() if v}
        assert got["by_name"] == {k: v for k, v in want["by_name"].items() if v}
        assert got["by_release"] == {k: v for k, v in want["by_release"].items() if v}
    else:
        assert got["by_name"] == got["by_release"] == {}
    assert got["scores"].keys() == {k for k, (c, _) in want["scores"].items() if c}
    for k, (count, total) in got["scores"].items():
        assert count == want["scores"][k][0] and total == pytest.approx(want["scores"][k][1])
