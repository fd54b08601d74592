"""What the Langfuse exporter promises: totals equal the database's truth, each row counted once,
bounded queries and labels, every version read from the right place, failures as up 0."""

from __future__ import annotations

import contextlib
import threading
from collections import defaultdict
from datetime import timedelta

import psycopg
import pytest

from llmwatch.exporters.langfuse import postgres as pg
from llmwatch.simulation.langfuse import Dataset, FakeLangfuseServer, generate
from tests.langfuse.database import load
from tests.langfuse.scenarios import NOW, dataset, make_exporter, v2_database
from tests.procs import render, samples, value

LAG = timedelta(seconds=60)
BACKFILL = timedelta(seconds=3600)


def truth(data: Dataset, since, until, project_id: str | None = None) -> dict:
    """What the counters must say for rows in (since, until], computed from the records themselves."""
    want = {"observations": defaultdict(int), "tokens": defaultdict(float), "cost": defaultdict(float),
            "traces": defaultdict(int), "scores": defaultdict(lambda: [0, 0.0])}
    name = data.projects
    for o in data.observations:
        if since < o.start_time <= until and project_id in (None, o.project_id):
            key = (name[o.project_id], o.model or "none")
            want["observations"][(*key, o.type, o.level)] += 1
            want["tokens"][(*key, "input")] += o.prompt_tokens
            want["tokens"][(*key, "output")] += o.completion_tokens
            want["cost"][key] += o.cost
    for t in data.traces:
        if since < t.timestamp <= until and project_id in (None, t.project_id):
            want["traces"][name[t.project_id]] += 1
    for s in data.scores:
        if since < s.timestamp <= until and s.value is not None and project_id in (None, s.project_id):
            entry = want["scores"][(name[s.project_id], s.name)]
            entry[0] += 1
            entry[1] += s.value
    return want


def exposed(text: str) -> dict:
    got = {"observations": {}, "tokens": {}, "cost": {}, "traces": {}, "scores": defaultdict(lambda: [0, 0.0])}
    for (n, labels), v in samples(text).items():
        ls = dict(labels)
        if n == "llmwatch_langfuse_observations_total":
            got["observations"][(ls["project"], ls["model"], ls["type"], ls["level"])] = v
        elif n == "llmwatch_langfuse_tokens_total" and v:
            got["tokens"][(ls["project"], ls["model"], ls["direction"])] = v
        elif n == "llmwatch_langfuse_cost_usd_total" and v:
            got["cost"][(ls["project"], ls["model"])] = v
        elif n == "llmwatch_langfuse_traces_total":
            got["traces"][ls["project"]] = v
        elif n == "llmwatch_langfuse_score_value_count":
            got["scores"][(ls["project"], ls["name"])][0] = v
        elif n == "llmwatch_langfuse_score_value_sum":
            got["scores"][(ls["project"], ls["name"])][1] = v
    return got


def assert_totals(text: str, want: dict, traces: bool = True) -> None:
    got = exposed(text)
    assert got["observations"] == dict(want["observations"])
    assert got["tokens"] == {k: v for k, v in want["tokens"].items() if v}
    assert got["cost"].keys() == {k for k, v in want["cost"].items() if v}
    for k, v in got["cost"].items():
        assert v == pytest.approx(want["cost"][k], rel=1e-9)
    if traces:
        assert got["traces"] == dict(want["traces"])
    assert got["scores"].keys() == want["scores"].keys()
    for k, (count, total) in got["scores"].items():
        assert count == want["scores"][k][0] and total == pytest.approx(want["scores"][k][1])


@pytest.fixture
def v2(postgres, request):
    """A Langfuse v2 health endpoint and a fresh database with the standard dataset."""
    dsn = v2_database(f"lf_{request.node.name[:40].lower()}")
    with FakeLangfuseServer("2.95.12") as server:
        yield server, dsn


def naive(moment):
    return moment.replace(tzinfo=None)


def test_v2_totals_equal_the_seeded_truth(v2):
    server, dsn = v2
    text = render(make_exporter(server.url, database_url=dsn))
    until = naive(NOW) - LAG
    assert_totals(text, truth(dataset(), until - BACKFILL, until))
    assert value(text, "llmwatch_langfuse_up") == 1
    assert value(text, "llmwatch_langfuse_counted_until_timestamp_seconds") == (NOW - LAG).timestamp()


def test_v2_counts_new_rows_exactly_once_as_time_moves_on(v2):
    server, dsn = v2
    clock = {"now": NOW}
    with contextlib.closing(make_exporter(server.url, database_url=dsn, wall=lambda: clock["now"],
                                          cache_seconds=0)) as exporter:
        render(exporter)
        render(exporter)  # same instant: nothing new is counted
        later = generate(naive(NOW) + timedelta(minutes=10), traces=60, seed=99, span=timedelta(minutes=9),
                         prefix="late-")
        load(dsn, later)
        clock["now"] = NOW + timedelta(minutes=10)
        text = render(exporter)
    first_until, second_until = naive(NOW) - LAG, naive(clock["now"]) - LAG
    want = truth(dataset(), first_until - BACKFILL, first_until)
    # the second read adds the first dataset's last minute (too fresh before) and the new rows
    for more in (truth(dataset(), first_until, second_until), truth(later, first_until, second_until)):
        for kind in ("observations", "tokens", "cost", "traces"):
            for k, v in more[kind].items():
                want[kind][k] += v
        for k, (count, total) in more["scores"].items():
            want["scores"][k][0] += count
            want["scores"][k][1] += total
    assert_totals(text, want)


def test_v2_queries_use_langfuses_indexes(postgres):
    """Range reads by start_time/timestamp, never a full scan, on a table big enough for the planner to care."""
    data = generate(naive(NOW), traces=6000, seed=3, span=timedelta(hours=24))
    dsn = v2_database("lf_plans", data)
    params = {"since": naive(NOW) - timedelta(minutes=2), "until": naive(NOW) - timedelta(minutes=1),
              "window_from": naive(NOW) - timedelta(minutes=5), "now": naive(NOW)}
    with psycopg.connect(dsn) as conn:
        for sql in (pg.OBSERVATIONS, pg.TRACES, pg.SCORES, pg.LATENCY):
            plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + sql, params))
            assert "Index" in plan and "Seq Scan" not in plan, plan


def test_a_slow_query_hits_the_statement_timeout_and_the_next_read_recovers(v2):
    server, dsn = v2
    locked = threading.Event()
    release = threading.Event()

    def hold_lock():
        with psycopg.connect(dsn) as conn:
            conn.execute("LOCK TABLE observations IN ACCESS EXCLUSIVE MODE")
            locked.set()
            release.wait(30)

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert locked.wait(10)
        with contextlib.closing(make_exporter(server.url, database_url=dsn, statement_timeout=0.3,
                                              cache_seconds=0)) as exporter:
            text = render(exporter)
            assert value(text, "llmwatch_langfuse_up") == 0
            assert value(text, "llmwatch_langfuse_scrape_errors_total", reason="db_timeout") == 1
            release.set()
            holder.join()
            text = render(exporter)
    finally:
        release.set()
        holder.join()
    assert value(text, "llmwatch_langfuse_up") == 1
    until = naive(NOW) - LAG
    assert_totals(text, truth(dataset(), until - BACKFILL, until))


def test_a_lost_connection_is_reopened_by_itself(v2):
    server, dsn = v2
    minutes = iter(range(100))
    with contextlib.closing(make_exporter(server.url, database_url=dsn, cache_seconds=0,
                                          wall=lambda: NOW + timedelta(minutes=next(minutes)))) as exporter:
        render(exporter)
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE application_name = 'llmwatch'")
        text = render(exporter)
        assert value(text, "llmwatch_langfuse_up") == 0
        assert value(text, "llmwatch_langfuse_scrape_errors_total", reason="db_query") == 1
        text = render(exporter)
    assert value(text, "llmwatch_langfuse_up") == 1


def test_an_unreachable_database_is_db_connect_and_keeps_no_latency(postgres):
    with FakeLangfuseServer("2.95.12") as server:
        dsn = postgres.dsn("no_such_database")
        text = render(make_exporter(server.url, database_url=dsn))
    assert value(text, "llmwatch_langfuse_up") == 0
    assert value(text, "llmwatch_langfuse_scrape_errors_total", reason="db_connect") == 1
    assert "llmwatch_langfuse_observations_total" not in text


def test_labels_are_bounded_first_come(v2):
    server, dsn = v2
    text = render(make_exporter(server.url, database_url=dsn, limits={"models": 2, "projects": 1}))
    models = {dict(ls)["model"] for (n, ls), _ in samples(text).items() if n == "llmwatch_langfuse_observations_total"}
    projects = {dict(ls)["project"] for (n, ls), _ in samples(text).items()
                if n == "llmwatch_langfuse_observations_total"}
    assert len(models - {"other"}) == 2 and "other" in models
    assert len(projects) == 2 and "other" in projects
    total = sum(v for (n, _), v in samples(text).items() if n == "llmwatch_langfuse_observations_total")
    until = naive(NOW) - LAG
    assert total == sum(truth(dataset(), until - BACKFILL, until)["observations"].values())


@pytest.mark.parametrize("version, path", [("3.225.4", "/api/public/metrics"), ("4.16.0", "/api/public/v2/metrics")])
def test_v3_and_v4_totals_equal_the_truth_of_the_keys_project(version, path):
    data = dataset()
    with FakeLangfuseServer(version, data) as server:
        text = render(make_exporter(server.url))
    until = naive(NOW) - LAG
    assert_totals(text, truth(data, until - BACKFILL, until, project_id="p-chat"), traces=version.startswith("3"))
    assert {r.split("?")[0] for r in server.requests} == {"/api/public/health", "/api/public/projects", path}
    assert ("llmwatch_langfuse_traces_total" in text) == version.startswith("3")


def test_v2_and_v4_agree_on_latency_percentiles(v2):
    server, dsn = v2
    text_v2 = render(make_exporter(server.url, database_url=dsn))
    with FakeLangfuseServer("4.16.0", dataset()) as v4:
        text_v4 = render(make_exporter(v4.url))
    for name in ("llmwatch_langfuse_generation_latency_seconds", "llmwatch_langfuse_generation_time_to_first_token_seconds"):
        v4_values = {ls: v for (n, ls), v in samples(text_v4).items() if n == name}
        assert v4_values
        for labels, v in v4_values.items():
            assert samples(text_v2)[(name, labels)] == pytest.approx(v)


def test_wrong_keys_are_an_auth_error():
    with FakeLangfuseServer("4.16.0", dataset()) as server:
        text = render(make_exporter(server.url, keys=("pk-lf-test", "sk-lf-wrong")))
    assert value(text, "llmwatch_langfuse_up") == 0
    assert value(text, "llmwatch_langfuse_scrape_errors_total", reason="auth") == 1


def test_a_v3_without_the_metrics_api_is_named_as_such():
    with FakeLangfuseServer("3.40.1", dataset()) as server:
        text = render(make_exporter(server.url))
    assert value(text, "llmwatch_langfuse_scrape_errors_total", reason="unsupported_version") == 1
    assert [r.split("?")[0] for r in server.requests] == ["/api/public/health"]


@pytest.mark.parametrize("mode, reason", [("garbage", "invalid_answer"), ("error", "http_status")])
def test_a_broken_api_gives_up_0_and_counters_stay(mode, reason):
    with FakeLangfuseServer("4.16.0", dataset()) as server:
        with contextlib.closing(make_exporter(server.url, cache_seconds=0)) as exporter:
            good = render(exporter)
            server.mode = mode
            text = render(exporter)
    assert value(text, "llmwatch_langfuse_up") == 0
    assert value(text, "llmwatch_langfuse_scrape_errors_total", reason=reason) == 1
    assert exposed(text)["observations"] == exposed(good)["observations"]  # counters keep their values
    assert "llmwatch_langfuse_generation_latency_seconds" in good
    assert "llmwatch_langfuse_generation_latency_seconds" not in text  # a snapshot is not served stale


def test_unhealthy_langfuse_is_reported_and_a_long_outage_is_caught_up_only_to_backfill():
    data = dataset()
    clock = {"now": NOW}
    with FakeLangfuseServer("4.16.0", data, mode="down") as server:
        with contextlib.closing(make_exporter(server.url, cache_seconds=0, wall=lambda: clock["now"])) as exporter:
            text = render(exporter)
            assert value(text, "llmwatch_langfuse_healthy") == 0
            server.mode = "error"
            render(exporter)
            server.mode = "ok"
            clock["now"] = NOW + timedelta(hours=3)
            text = render(exporter)
    assert value(text, "llmwatch_langfuse_up") == 1
    assert value(text, "llmwatch_langfuse_counted_until_timestamp_seconds") == (clock["now"] - LAG).timestamp()
