"""Langfuse v2 from its Postgres: Langfuse's own definitions of scores, token usage and cost; bounded
queries on its indexes; a slow, stalled, lost or unreachable database as up 0."""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import datetime, timedelta

import psycopg
import pytest

from llmwatch.exporters.langfuse import postgres as pg
from llmwatch.simulation.langfuse import Dataset, FakeLangfuseServer, Model, Observation, Score, generate
from tests.fakes.tcp_proxy import StallingProxy
from tests.langfuse.database import load
from tests.langfuse.scenarios import LATER, NOW, arrivals, dataset, make_exporter, naive, read_twice, v2_database
from tests.langfuse.truth import assert_totals, counted
from tests.procs import render, samples, value

SETTLE = timedelta(hours=1)


@pytest.fixture
def v2(postgres, request):
    """A Langfuse v2 health endpoint and a fresh database with the standard dataset."""
    dsn = v2_database(f"lf_{request.node.name[:40].lower()}")
    with FakeLangfuseServer("2.95.12") as server:
        yield server, dsn


def between(i: int) -> datetime:
    return naive(NOW + timedelta(seconds=10 + i))


def v2_read(v2, more: Dataset, **kwargs) -> str:
    server, dsn = v2
    return read_twice(server.url, more=more, load_more=lambda rows: load(dsn, rows), database_url=dsn, **kwargs)


def series(text: str, metric: str, **labels) -> float:
    return sum(v for (n, ls), v in samples(text).items() if n == metric and set(labels.items()) <= ls)


def test_categorical_scores_are_left_out_even_when_they_carry_a_value(v2):
    """Langfuse's numeric score views take NUMERIC and BOOLEAN only; a CATEGORICAL score may still hold a number."""
    more = Dataset(projects={"p-chat": "chat-app"}, scores=[
        Score("s-num", "p-chat", "t1", "quality", 0.5, "NUMERIC", between(1)),
        Score("s-bool", "p-chat", "t1", "quality", 1.0, "BOOLEAN", between(2), string_value="True"),
        Score("s-cat", "p-chat", "t1", "quality", 7.0, "CATEGORICAL", between(3), string_value="seven")])
    text = v2_read(v2, more)
    assert series(text, "llmwatch_langfuse_score_value_count", name="quality") == 2
    assert series(text, "llmwatch_langfuse_score_value_sum", name="quality") == 1.5


def test_usage_in_characters_or_images_is_not_counted_as_tokens(v2):
    def generation(i, unit, prompt, completion):
        return Observation(f"u{i}", "t1", "p-chat", "GENERATION", "DEFAULT", "g", "tts-1", between(i), None, None,
                           prompt, completion, None, 0.01, "default", None, unit, "tts-1")
    more = Dataset(projects={"p-chat": "chat-app"}, observations=[
        generation(1, "TOKENS", 100, 10), generation(2, None, 50, 5), generation(3, "CHARACTERS", 4000, 0),
        generation(4, "IMAGES", 2, 0), generation(5, "SECONDS", 30, 0)])
    text = v2_read(v2, more)
    labels = {"project": "chat-app", "model": "tts-1"}
    assert series(text, "llmwatch_langfuse_tokens_total", direction="input", **labels) == 150
    assert series(text, "llmwatch_langfuse_tokens_total", direction="output", **labels) == 15
    assert series(text, "llmwatch_langfuse_observations_total", **labels) == 5  # still counted, and their cost
    assert series(text, "llmwatch_langfuse_cost_usd_total", **labels) == pytest.approx(0.05)


def test_rows_without_any_cost_are_priced_like_langfuses_view(v2):
    """Rows ingested before Langfuse computed costs: usage times the price row that applied to them."""
    prices = [Model("m-default", "gpt-x", "(?i)^gpt-x$", "TOKENS", 1e-6, 2e-6),  # Langfuse's own price row
              Model("m-project", "gpt-x", "(?i)^gpt-x$", "TOKENS", 3e-6, 4e-6, project_id="p-chat"),  # the project's
              Model("m-total", "flat-y", "(?i)^flat-y$", "TOKENS", None, None, total_price=5e-6),
              Model("m-old", "gpt-z", "(?i)^gpt-z$", "TOKENS", 9e-6, 9e-6, start_date=naive(NOW - timedelta(days=9))),
              Model("m-new", "gpt-z", "(?i)^gpt-z$", "TOKENS", 1e-6, 1e-6, start_date=naive(NOW - timedelta(days=1)))]

    def legacy(i, project, model, prompt, completion, user_cost=None, calculated=None):
        return Observation(f"l{i}", "t1", project, "GENERATION", "DEFAULT", "g", model, between(i), None, None,
                           prompt, completion, user_cost, calculated, "default", None, "TOKENS", model)
    rows = [legacy(1, "p-chat", "gpt-x", 1000, 100), legacy(2, "p-rag", "gpt-x", 1000, 100),
            legacy(3, "p-chat", "flat-y", 1000, 100), legacy(4, "p-chat", "gpt-z", 1000, 100),
            legacy(5, "p-chat", "no-price", 1000, 100), legacy(6, "p-chat", "gpt-x", 1000, 100, user_cost=0.5)]
    more = Dataset(projects={"p-chat": "chat-app", "p-rag": "rag-search"}, observations=rows, models=prices)
    text = v2_read(v2, more)
    cost = lambda project, model: series(text, "llmwatch_langfuse_cost_usd_total", project=project, model=model)  # noqa: E731
    assert cost("chat-app", "gpt-x") == pytest.approx(1000 * 3e-6 + 100 * 4e-6 + 0.5)
    assert cost("rag-search", "gpt-x") == pytest.approx(1000 * 1e-6 + 100 * 2e-6)
    assert cost("chat-app", "flat-y") == pytest.approx(1100 * 5e-6)
    assert cost("chat-app", "gpt-z") == pytest.approx(1100 * 1e-6)
    assert cost("chat-app", "no-price") == 0
    assert_totals(text, counted(more, naive(NOW - SETTLE), naive(LATER), v2=True))


def test_v2_totals_equal_the_truth_of_every_project(v2):
    more = arrivals()
    text = v2_read(v2, more)
    assert_totals(text, counted(more, naive(NOW - SETTLE), naive(LATER), v2=True))


def test_v2_queries_use_langfuses_indexes(postgres):
    """Range reads by start_time/timestamp, never a full scan of a big table."""
    data = generate(naive(NOW), traces=6000, seed=3, span=timedelta(hours=24))
    dsn = v2_database("lf_plans", data)
    params = {"start": naive(NOW) - timedelta(minutes=2), "end": naive(NOW) - timedelta(minutes=1)}
    with psycopg.connect(dsn) as conn:
        for sql in (pg.OBSERVATIONS.format(end="<"), pg.OBSERVATIONS.format(end="<="), pg.TRACES.format(end="<"),
                    pg.SCORES.format(end="<"), pg.LATENCY):
            plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + sql, params))
            assert "Index" in plan, plan
            for table in ("observations", "traces", "scores"):
                assert f"Seq Scan on {table}" not in plan, plan


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


def test_an_unreachable_database_is_db_connect_and_shows_no_counters(postgres):
    with FakeLangfuseServer("2.95.12") as server:
        dsn = postgres.dsn("no_such_database")
        text = render(make_exporter(server.url, database_url=dsn))
    assert value(text, "llmwatch_langfuse_up") == 0
    assert value(text, "llmwatch_langfuse_scrape_errors_total", reason="db_connect") == 1
    assert "llmwatch_langfuse_observations_total" not in text


def test_labels_are_bounded_first_come(v2):
    more = arrivals()
    text = v2_read(v2, more, limits={"models": 2, "projects": 1})
    models = {dict(ls)["model"] for (n, ls), _ in samples(text).items() if n == "llmwatch_langfuse_observations_total"}
    projects = {dict(ls)["project"] for (n, ls), _ in samples(text).items()
                if n == "llmwatch_langfuse_observations_total"}
    assert len(models - {"other"}) == 2 and "other" in models
    assert len(projects) == 2 and "other" in projects
    want = counted(more, naive(NOW - SETTLE), naive(LATER), v2=True)
    assert series(text, "llmwatch_langfuse_observations_total") == sum(want["observations"].values())


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


def test_a_stalled_database_is_db_timeout_within_the_budget_with_one_read_in_flight(v2, postgres):
    """The statement timeout runs on the server; a server (or network) that stops answering must
    still end the scrape within its budget, and later scrapes must not each leave a thread waiting."""
    server, dsn = v2
    with StallingProxy("127.0.0.1", postgres.port) as proxy:
        proxied = dsn.replace(f":{postgres.port}/", f":{proxy.port}/")
        exporter = make_exporter(server.url, database_url=proxied, cache_seconds=0, budget=1.0)
        with contextlib.closing(exporter):
            assert value(render_within(exporter, 10), "llmwatch_langfuse_up") == 1
            proxy.stall()
            started = time.monotonic()
            text = render_within(exporter, 10)
            assert time.monotonic() - started < 2.5
            assert value(text, "llmwatch_langfuse_up") == 0
            assert value(text, "llmwatch_langfuse_scrape_errors_total", reason="db_timeout") == 1
            threads = threading.active_count()
            for _ in range(5):
                started = time.monotonic()
                text = render_within(exporter, 10)
                assert time.monotonic() - started < 1.0  # the read in flight is not waited for again
            assert threading.active_count() == threads
            assert value(text, "llmwatch_langfuse_up") == 0
            assert value(text, "llmwatch_langfuse_scrape_errors_total", reason="db_timeout") == 6
            proxy.resume()
            assert exporter.source.wait(10)
            assert value(render_within(exporter, 10), "llmwatch_langfuse_up") == 1


def render_within(exporter, seconds: float) -> str:
    """render(exporter), failing (not hanging) when it takes longer than ``seconds``."""
    result: list[str] = []
    worker = threading.Thread(target=lambda: result.append(render(exporter)), daemon=True)
    worker.start()
    worker.join(seconds)
    assert result, f"the scrape did not end within {seconds}s"
    return result[0]
