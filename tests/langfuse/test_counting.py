"""What the Langfuse counters promise: each row counted once, with its values as of settle_seconds after its
time, whatever happens around it: a restart, an update after it was first counted, a row on a range
boundary, an empty range, an outage of Langfuse."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import psycopg
import pytest

from llmwatch.exporters.langfuse import collector as langfuse_collector
from llmwatch.simulation.langfuse import Dataset, FakeLangfuseServer, Observation, generate
from tests.langfuse.database import load
from tests.langfuse.scenarios import LATER, NOW, arrivals, dataset, make_exporter, naive, v2_database
from tests.langfuse.truth import assert_totals, counted, exposed, plus
from tests.procs import render, samples, value

SETTLE = timedelta(hours=1)


class Clock:
    def __init__(self, now=NOW):
        self.now = now

    def __call__(self):
        return self.now


def total(text: str, name: str = "llmwatch_langfuse_observations_total", **labels) -> float:
    return sum(v for (n, ls), v in samples(text).items() if n == name and set(labels.items()) <= ls)


@pytest.fixture
def v2(postgres, request):
    """A Langfuse v2 health endpoint and a fresh database with the standard dataset."""
    dsn = v2_database(f"lf_{request.node.name[:40].lower()}")
    with FakeLangfuseServer("2.95.12") as server:
        yield server, dsn


@pytest.mark.parametrize("version", ["3.225.4", "4.16.0"])
def test_counters_start_at_zero_and_hold_what_arrived_since(version):
    data = dataset()
    clock = Clock()
    with FakeLangfuseServer(version, data) as server, \
            contextlib.closing(make_exporter(server.url, wall=clock, cache_seconds=0)) as exporter:
        first = render(exporter)
        more = arrivals()
        data.extend(more)
        clock.now = LATER
        text = render(exporter)
    assert value(first, "llmwatch_langfuse_up") == 1
    assert total(first) == 0 and "llmwatch_langfuse_observations_total{" in first  # every series shows 0 first
    assert_totals(text, counted(more, naive(NOW - SETTLE), naive(LATER), project_id="p-chat"))
    assert value(text, "llmwatch_langfuse_counted_until_timestamp_seconds") == LATER.timestamp()


def test_v2_counters_hold_what_arrived_since(v2):
    server, dsn = v2
    clock = Clock()
    with contextlib.closing(make_exporter(server.url, database_url=dsn, wall=clock, cache_seconds=0)) as exporter:
        render(exporter)
        more = arrivals()
        load(dsn, more)
        clock.now = LATER
        text = render(exporter)
    assert_totals(text, counted(more, naive(NOW - SETTLE), naive(LATER), v2=True))


@pytest.mark.parametrize("saved", [True, False])
def test_a_restart_mid_hour_never_counts_a_row_twice(saved, tmp_path):
    """The counters carry on from the saved ledger; without one they start again at 0, never repeating the hour."""
    data = dataset()
    clock = Clock()
    state = str(tmp_path / "langfuse.json") if saved else ""
    with FakeLangfuseServer("4.16.0", data) as server:
        with contextlib.closing(make_exporter(server.url, wall=clock, cache_seconds=0, state_file=state)) as first:
            render(first)
            before = arrivals(seed=1, traces=30)
            data.extend(before)
            clock.now = NOW + timedelta(minutes=10)
            old = render(first)
        during = generate(naive(NOW + timedelta(minutes=13)), traces=20, seed=2, span=timedelta(minutes=2),
                          prefix="down-")
        data.extend(during)  # the exporter is down for 5 minutes
        clock.now = NOW + timedelta(minutes=15)
        with contextlib.closing(make_exporter(server.url, wall=clock, cache_seconds=0, state_file=state)) as second:
            new = render(second)
    start = naive(NOW - SETTLE)
    assert_totals(old, counted(before, start, naive(NOW + timedelta(minutes=10)), project_id="p-chat"))
    if saved:  # exactly what happened, the downtime included: increase() over the restart is the truth
        assert_totals(new, plus(counted(before, start, naive(clock.now), project_id="p-chat"),
                                counted(during, start, naive(clock.now), project_id="p-chat")))
    else:  # a reset to 0 (Prometheus sees it as one): nothing counted twice, the downtime lost
        assert total(new) == 0


def test_an_update_after_counting_is_counted_once(tmp_path):
    """Usage, cost and level (ERROR) sent after the generation was first counted, within settle_seconds."""
    data = dataset()
    clock = Clock()
    with FakeLangfuseServer("4.16.0", data) as server, \
            contextlib.closing(make_exporter(server.url, wall=clock, cache_seconds=0)) as exporter:
        render(exporter)
        late = Observation("late-1", "t-late", "p-chat", "GENERATION", "DEFAULT", "completion", "Qwen/Qwen3-32B",
                           naive(NOW + timedelta(minutes=1)), None, None, 0, 0, None, None, "production")
        data.observations.append(late)
        clock.now = NOW + timedelta(minutes=2)
        started = render(exporter)
        late.prompt_tokens, late.completion_tokens, late.calculated_total_cost, late.level = 500, 80, 0.25, "ERROR"
        clock.now = NOW + timedelta(minutes=30)
        updated = render(exporter)
        clock.now = NOW + timedelta(hours=3)  # long settled: counted with its final values, once
        settled = render(exporter)
    labels = {"project": "chat-app", "model": "Qwen/Qwen3-32B"}
    assert total(started, level="DEFAULT", **labels) == 1 and total(started, level="ERROR", **labels) == 0
    for text in (updated, settled):
        assert total(text, level="ERROR", **labels) == 1
        assert total(text, level="DEFAULT", **labels) == 1  # a counter never goes down: the move waits for new rows
        assert total(text, "llmwatch_langfuse_tokens_total", direction="input", **labels) == 500
        assert total(text, "llmwatch_langfuse_tokens_total", direction="output", **labels) == 80
        assert total(text, "llmwatch_langfuse_cost_usd_total", **labels) == pytest.approx(0.25)


def test_v2_an_update_after_counting_is_counted_once(v2):
    server, dsn = v2
    clock = Clock()
    with contextlib.closing(make_exporter(server.url, database_url=dsn, wall=clock, cache_seconds=0)) as exporter:
        render(exporter)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO observations (id, project_id, type, level, model, start_time, unit) "
                         "VALUES ('late-1', 'p-chat', 'GENERATION', 'DEFAULT', 'Qwen/Qwen3-32B', %s, 'TOKENS')",
                         (naive(NOW + timedelta(minutes=1)),))
            clock.now = NOW + timedelta(minutes=2)
            render(exporter)
            conn.execute("UPDATE observations SET prompt_tokens = 500, completion_tokens = 80, total_tokens = 580, "
                         "calculated_total_cost = 0.25, level = 'ERROR' WHERE id = 'late-1'")
        clock.now = NOW + timedelta(hours=2)
        text = render(exporter)
    labels = {"project": "chat-app", "model": "Qwen/Qwen3-32B"}
    assert total(text, level="ERROR", **labels) == 1
    assert total(text, "llmwatch_langfuse_tokens_total", direction="input", **labels) == 500
    assert total(text, "llmwatch_langfuse_cost_usd_total", **labels) == pytest.approx(0.25)


def edge_rows(moments) -> list[Observation]:
    return [Observation(f"edge-{i}", f"t-edge-{i}", "p-chat", "EVENT", "DEFAULT", "edge", None, naive(m), None, None,
                        0, 0, None, None, "production") for i, m in enumerate(moments)]


@pytest.mark.parametrize("version", ["3.225.4", "4.16.0"])
def test_rows_exactly_on_range_boundaries_are_counted_once(version):
    """A row at a read's end and one at a settling boundary; the API includes both ends of every range."""
    data = dataset()
    clock = Clock()
    reads = [NOW + timedelta(minutes=m) for m in (1, 2, 62, 63, 200)]
    # at the end of the first two reads (then at the settling boundary of the third and fourth: read - 1 h);
    # at the boundary between two settling ranges of the last read (hours from the last boundary)
    rows = edge_rows([reads[0], reads[1], reads[3] - SETTLE + timedelta(minutes=60)])
    with FakeLangfuseServer(version, data) as server, \
            contextlib.closing(make_exporter(server.url, wall=clock, cache_seconds=0)) as exporter:
        render(exporter)
        data.observations += rows
        for moment in reads:
            clock.now = moment
            render(exporter)  # a new series shows 0 first
            text = render(exporter)  # the same instant read again: the same counts
            assert total(text, type="EVENT") == sum(1 for r in rows if naive(NOW) < r.start_time <= naive(moment))
    assert total(text, type="EVENT") == len(rows)


def test_v2_rows_exactly_on_range_boundaries_are_counted_once(v2):
    server, dsn = v2
    clock = Clock()
    reads = [NOW + timedelta(minutes=m) for m in (1, 2, 62, 63, 200)]
    rows = edge_rows([reads[0], reads[1], reads[2] - SETTLE])
    with contextlib.closing(make_exporter(server.url, database_url=dsn, wall=clock, cache_seconds=0)) as exporter:
        render(exporter)
        load(dsn, Dataset(projects={"p-chat": "chat-app"}, observations=rows))
        for moment in reads:
            clock.now = moment
            render(exporter)
            text = render(exporter)
            assert total(text, type="EVENT") == sum(1 for r in rows if naive(NOW) < r.start_time <= naive(moment))
    assert total(text, type="EVENT") == len(rows)


@pytest.mark.parametrize("step", ["settle_0", "clock_back", "same_instant"])
def test_an_empty_range_is_never_asked_for(step):
    """settle_seconds = 0, a clock stepping back, two reads at one instant: Langfuse answers 400 to from >= to."""
    data = dataset()
    clock = Clock()
    settle = 0.0 if step == "settle_0" else 3600.0
    with FakeLangfuseServer("4.16.0", data) as server, \
            contextlib.closing(make_exporter(server.url, wall=clock, cache_seconds=0, settle_seconds=settle)) as exporter:
        render(exporter)
        data.extend(arrivals(traces=10))
        clock.now = LATER
        render(exporter)  # new series show 0 first
        before = render(exporter)
        clock.now = {"settle_0": LATER + timedelta(minutes=1), "clock_back": LATER - timedelta(hours=2),
                     "same_instant": LATER}[step]
        after = render(exporter)
    for text in (before, after):
        assert value(text, "llmwatch_langfuse_up") == 1
        assert value(text, "llmwatch_langfuse_scrape_errors_total", reason="http_status") == 0
    assert total(after) == total(before) > 0  # nothing new arrived: nothing lost, nothing counted again
    assert all(q["fromTimestamp"] < q["toTimestamp"] for q in server.queries)


def test_an_outage_of_langfuse_is_caught_up_exactly():
    """Three hours unreadable: the settling ranges are read in hours, six at most per refresh, until caught up."""
    data = dataset()
    clock = Clock()
    with FakeLangfuseServer("4.16.0", data) as server, \
            contextlib.closing(make_exporter(server.url, wall=clock, cache_seconds=0)) as exporter:
        render(exporter)
        server.mode = "error"
        outage = generate(naive(NOW + timedelta(hours=3)), traces=120, seed=5, span=timedelta(hours=3), prefix="o-")
        data.extend(outage)
        clock.now = NOW + timedelta(hours=1)
        assert value(render(exporter), "llmwatch_langfuse_up") == 0
        clock.now = NOW + timedelta(hours=3)
        server.mode = "ok"
        text = render(exporter)
    assert value(text, "llmwatch_langfuse_up") == 1
    assert_totals(text, counted(outage, naive(NOW - SETTLE), naive(clock.now), project_id="p-chat"))


def test_a_week_long_outage_is_caught_up_over_several_refreshes(monkeypatch):
    monkeypatch.setattr(langfuse_collector, "SETTLE_RANGES_PER_REFRESH", 2)
    data = dataset()
    clock = Clock()
    with FakeLangfuseServer("4.16.0", data) as server, \
            contextlib.closing(make_exporter(server.url, wall=clock, cache_seconds=0)) as exporter:
        render(exporter)
        outage = generate(naive(NOW + timedelta(hours=5)), traces=50, seed=6, span=timedelta(hours=5), prefix="w-")
        data.extend(outage)
        clock.now = NOW + timedelta(hours=5)
        seen = [total(render(exporter)) for _ in range(3)]
    assert seen[0] <= seen[1] <= seen[2]  # growing as the hours settle, never past the truth
    assert seen[2] == sum(counted(outage, naive(NOW - SETTLE), naive(clock.now), project_id="p-chat")[
        "observations"].values())


def test_a_new_series_shows_zero_before_its_first_rows():
    """Prometheus' increase() takes a series' first sample as its start: that sample must be 0."""
    data = dataset()
    clock = Clock()
    with FakeLangfuseServer("4.16.0", data) as server, \
            contextlib.closing(make_exporter(server.url, wall=clock, cache_seconds=0)) as exporter:
        render(exporter)
        data.observations += [Observation(f"new-{i}", "t-new", "p-chat", "GENERATION", "DEFAULT", "completion",
                                          "brand-new-model", naive(NOW + timedelta(seconds=30 + i)), None, None,
                                          10, 2, None, 0.01, "production") for i in range(3)]
        clock.now = NOW + timedelta(minutes=1)
        first = render(exporter)
        second = render(exporter)
    labels = {"model": "brand-new-model", "project": "chat-app"}
    assert value(first, "llmwatch_langfuse_observations_total", level="DEFAULT", **labels) == 0
    assert value(second, "llmwatch_langfuse_observations_total", level="DEFAULT", **labels) == 3


def test_the_saved_ledger_of_another_langfuse_is_not_used(tmp_path):
    data = dataset()
    clock = Clock()
    state = str(tmp_path / "langfuse.json")
    with FakeLangfuseServer("4.16.0", data) as server:
        with contextlib.closing(make_exporter(server.url, wall=clock, cache_seconds=0, state_file=state)) as exporter:
            render(exporter)
            data.extend(arrivals())
            clock.now = LATER
            assert total(render(exporter)) > 0
    with FakeLangfuseServer("4.16.0", data, project_id="p-rag") as other:
        with contextlib.closing(make_exporter(other.url, wall=clock, cache_seconds=0, state_file=state)) as exporter:
            text = render(exporter)
    assert total(text) == 0 and 'project="chat-app"' not in text
    assert exposed(text)["observations"] == {}
