"""Traces per trace name and per release, from every source: each upstream's own reading of a trace without
a name or a release, the limit that folds the quietest values into "other", and complete answers or up 0."""

from __future__ import annotations

from datetime import timedelta

import pytest

from llmwatch.simulation.langfuse import Dataset, FakeLangfuseServer, Observation, Trace
from tests.langfuse.database import load
from tests.langfuse.scenarios import NOW, naive, read_twice, v2_database
from tests.procs import samples, value


def traces(counts: dict[tuple[str | None, str | None], int], environments: tuple[str, ...] = ("production",)) -> Dataset:
    """``counts[(name, release)]`` traces of p-chat between NOW and LATER, spread over ``environments``,
    each with its root observation (v4 counts traces as root observations)."""
    data = Dataset(projects={"p-chat": "chat-app", "p-rag": "rag-search"})
    i = 0
    for (name, release), n in counts.items():
        for _ in range(n):
            at = naive(NOW + timedelta(seconds=1 + i % 500))
            environment = environments[i % len(environments)]
            data.traces.append(Trace(f"tt{i}", "p-chat", name, at, environment, release))
            data.observations.append(Observation(f"to{i}", f"tt{i}", "p-chat", "SPAN", "DEFAULT", "root-span", None,
                                                 at, at, None, 0, 0, None, None, environment))
            i += 1
    return data


def by(text: str, label: str) -> dict[str, float]:
    """Traces per value of ``label`` (trace_name or release) as exposed; a missing label is the empty value."""
    family = {"trace_name": "llmwatch_langfuse_traces_by_name_total", "release": "llmwatch_langfuse_traces_by_release_total"}
    out: dict[str, float] = {}
    for (n, ls), v in samples(text).items():
        if n == family[label] and v:
            key = dict(ls).get(label, "")
            out[key] = out.get(key, 0) + v
    return out


MIXED = {("chat", "2026.11.1"): 3, ("search", None): 2, (None, "2026.11.1"): 1, ("", ""): 1}


@pytest.mark.parametrize("version, unnamed", [
    ("3.225.4", ""),  # v1's traces view: name is a String, "" when none
    ("4.16.0", "root-span"),  # v2's traceName: a trace without a name takes its root observation's
])
def test_api_counts_traces_by_name_and_release_as_each_version_reads_them(version, unnamed):
    more = traces(MIXED)
    data = Dataset(projects=more.projects)
    with FakeLangfuseServer(version, data) as server:
        text = read_twice(server.url, data, more)
    assert value(text, "llmwatch_langfuse_up") == 1
    assert by(text, "trace_name") == {"chat": 3, "search": 2, unnamed: 2}
    assert by(text, "release") == {"2026.11.1": 4, "": 3}  # null (v1) and "" (v2: nullIf) are one value


def test_v2_postgres_counts_traces_by_name_and_release_null_as_empty(postgres):
    dsn = v2_database("lf_trace_groups")
    with FakeLangfuseServer("2.95.12") as server:
        text = read_twice(server.url, more=traces(MIXED), load_more=lambda rows: load(dsn, rows), database_url=dsn)
    assert value(text, "llmwatch_langfuse_up") == 1
    assert by(text, "trace_name") == {"chat": 3, "search": 2, "": 2}
    assert by(text, "release") == {"2026.11.1": 4, "": 3}


def test_a_v4_without_root_observations_exposes_neither():
    """Before 4.3 the v2 endpoint cannot tell a trace's root: no trace counts at all, rather than wrong ones."""
    more = traces(MIXED)
    data = Dataset(projects=more.projects)
    with FakeLangfuseServer("4.2.0", data) as server:
        text = read_twice(server.url, data, more)
    assert value(text, "llmwatch_langfuse_up") == 1
    assert "llmwatch_langfuse_traces_by_name_total" not in text and "llmwatch_langfuse_traces_by_release_total" not in text


@pytest.mark.parametrize("version", ["3.225.4", "4.16.0"])
def test_past_the_limit_the_busiest_keep_their_series_and_the_rest_is_other(version):
    # n1 is the quietest and sorts first: admitting in the order rows come would keep the quiet ones
    more = traces({(f"n{i}", f"r{i}"): i for i in range(1, 7)})
    data = Dataset(projects=more.projects)
    with FakeLangfuseServer(version, data) as server:
        text = read_twice(server.url, data, more, limits={"trace_names": 3, "releases": 2})
    assert by(text, "trace_name") == {"n6": 6, "n5": 5, "n4": 4, "other": 1 + 2 + 3}
    assert by(text, "release") == {"r6": 6, "r5": 5, "other": 1 + 2 + 3 + 4}


@pytest.mark.parametrize("version", ["3.225.4", "4.16.0"])
def test_more_names_than_an_answer_holds_are_split_by_environment_and_all_counted(version):
    more = traces({(f"job-{i}", None): 1 for i in range(1400)}, environments=("production", "staging"))
    data = Dataset(projects=more.projects)
    with FakeLangfuseServer(version, data) as server:
        text = read_twice(server.url, data, more)
        asked = [q for q in server.queries if any(d["field"] in ("name", "traceName") for d in q["dimensions"])]
    assert value(text, "llmwatch_langfuse_up") == 1
    assert sum(by(text, "trace_name").values()) == 1400 and by(text, "trace_name")["other"] == 1400 - 30
    assert any(f["column"] == "environment" for q in asked for f in q["filters"])  # split, each part complete


@pytest.mark.parametrize("version", ["3.225.4", "4.16.0"])
def test_an_answer_of_names_that_cannot_be_split_is_up_0_truncated_never_a_partial_count(version):
    more = traces({(f"job-{i}", None): 1 for i in range(1200)})  # one environment: nothing left to split by
    data = Dataset(projects=more.projects)
    with FakeLangfuseServer(version, data) as server:
        text = read_twice(server.url, data, more)
    assert value(text, "llmwatch_langfuse_up") == 0
    assert value(text, "llmwatch_langfuse_scrape_errors_total", reason="truncated") >= 1
    assert sum(by(text, "trace_name").values()) == 0


@pytest.mark.parametrize("version", ["3.225.4", "4.16.0"])
def test_trace_groups_off_asks_no_names_and_the_rest_reads_whole(version):
    """The way out for trace names that carry ids: the same 1,200 names read up 1, the traces counted, no
    name or release asked for (a truncated read would otherwise keep every Langfuse number away)."""
    more = traces({(f"job-{i}", None): 1 for i in range(1200)})
    data = Dataset(projects=more.projects)
    with FakeLangfuseServer(version, data) as server:
        text = read_twice(server.url, data, more, limits={"trace_groups": False})
        asked = [q for q in server.queries if any(d["field"] in ("name", "traceName", "release", "traceRelease")
                                                  for d in q["dimensions"] if q["view"] != "scores-numeric")]
    assert value(text, "llmwatch_langfuse_up") == 1
    assert sum(v for (n, _), v in samples(text).items() if n == "llmwatch_langfuse_traces_total") == 1200
    assert by(text, "trace_name") == {} and by(text, "release") == {} and asked == []


def test_trace_groups_off_on_postgres_runs_no_group_query(postgres):
    dsn = v2_database("lf_trace_groups_off")
    with FakeLangfuseServer("2.95.12") as server:
        text = read_twice(server.url, more=traces(MIXED), load_more=lambda rows: load(dsn, rows), database_url=dsn,
                          limits={"trace_groups": False})
    assert value(text, "llmwatch_langfuse_up") == 1
    assert sum(v for (n, _), v in samples(text).items() if n == "llmwatch_langfuse_traces_total") == 7
    assert by(text, "trace_name") == {} and by(text, "release") == {}
