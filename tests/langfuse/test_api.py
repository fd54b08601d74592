"""Langfuse v3/v4 through the public metrics API: complete answers or a loud error, the right endpoint for
each version and write mode, Langfuse's own runs left out, failures as up 0."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest

from llmwatch.exporters.langfuse.totals import EnvironmentFilter
from llmwatch.simulation.langfuse import INTERNAL_ENVIRONMENTS, FakeLangfuseServer, Observation
from tests.langfuse.scenarios import LATER, NOW, arrivals, dataset, make_exporter, naive, read_twice
from tests.langfuse.truth import assert_totals, counted, exposed, internal
from tests.procs import render, samples, value

SETTLE = timedelta(hours=1)


def groups(n: int, *, levels=("DEFAULT", "WARNING", "ERROR", "DEBUG"), types=("GENERATION", "SPAN"),
           environment: str = "production") -> list[Observation]:
    """``n`` observations in ``n`` distinct (model, type, level) groups, between NOW and LATER."""
    out = []
    for i in range(n):
        out.append(Observation(f"g{i}", f"tg{i}", "p-chat", types[i % len(types)], levels[(i // len(types)) % len(levels)],
                               "step", f"model-{i // (len(types) * len(levels))}",
                               naive(NOW + timedelta(seconds=1 + i % 500)), None, None, 3, 1, None, 0.001, environment))
    return out


def endpoint_paths(server) -> set[str]:
    return {r.split("?")[0] for r in server.requests}


@pytest.mark.parametrize("version", ["3.225.4", "4.16.0"])
def test_more_groups_than_langfuses_default_row_limit_are_all_counted(version):
    """v4's metrics API stops at 100 rows unless config.row_limit says otherwise."""
    data = dataset()
    rows = groups(128)
    with FakeLangfuseServer(version, data) as server:
        text = read_twice(server.url, data, type(data)(observations=rows))
        sent = server.queries
    assert value(text, "llmwatch_langfuse_up") == 1
    assert sum(v for (n, ls), v in samples(text).items() if n == "llmwatch_langfuse_observations_total") == 128
    assert all(q.get("config") == {"row_limit": 1000} and "chartConfig" not in q for q in sent)


def test_answers_that_fill_the_row_limit_are_split_until_complete():
    data = dataset()
    rows = groups(2400, levels=("DEFAULT", "WARNING", "ERROR"), types=("GENERATION", "SPAN", "EVENT", "TOOL"))
    with FakeLangfuseServer("4.16.0", data) as server:
        text = read_twice(server.url, data, type(data)(observations=rows), limits={"models": 1000})
    assert value(text, "llmwatch_langfuse_up") == 1
    assert sum(v for (n, ls), v in samples(text).items() if n == "llmwatch_langfuse_observations_total") == 2400


def test_an_answer_that_cannot_be_split_is_up_0_truncated_never_a_partial_number():
    data = dataset()
    rows = groups(1200, levels=("DEFAULT",), types=("GENERATION",))  # 1200 models, all one type and level
    with FakeLangfuseServer("4.16.0", data) as server:
        text = read_twice(server.url, data, type(data)(observations=rows), limits={"models": 1000})
    assert value(text, "llmwatch_langfuse_up") == 0
    assert value(text, "llmwatch_langfuse_scrape_errors_total", reason="truncated") >= 1
    assert sum(v for (n, ls), v in samples(text).items() if n == "llmwatch_langfuse_observations_total") == 0


@pytest.mark.parametrize("version, path, traces", [("3.225.4", "/api/public/metrics", True),
                                                   ("4.16.0", "/api/public/v2/metrics", True),
                                                   ("4.2.0", "/api/public/v2/metrics", False)])
def test_v3_and_v4_totals_equal_the_truth_of_the_keys_project(version, path, traces):
    data = dataset()
    more = arrivals()
    with FakeLangfuseServer(version, data) as server:
        text = read_twice(server.url, data, more)
    assert_totals(text, counted(more, naive(NOW - SETTLE), naive(LATER), project_id="p-chat"), traces=traces)
    assert endpoint_paths(server) == {"/api/public/health", "/api/public/projects", path}
    assert ("llmwatch_langfuse_traces_total" in text) == traces  # v4 from 4.3: root observations


@pytest.mark.parametrize("write_mode, path", [("legacy", "/api/public/metrics"), ("dual", "/api/public/v2/metrics")])
def test_v4_in_legacy_write_mode_falls_back_to_the_v1_endpoint(write_mode, path):
    data = dataset()
    more = arrivals()
    with FakeLangfuseServer("4.16.0", data, write_mode=write_mode) as server:
        text = read_twice(server.url, data, more)
        asked = [r.split("?")[0] for r in server.requests if "metrics" in r]
    assert value(text, "llmwatch_langfuse_up") == 1
    assert_totals(text, counted(more, naive(NOW - SETTLE), naive(LATER), project_id="p-chat"))
    assert asked[-1] == path and set(asked) <= {"/api/public/v2/metrics", path}


def test_a_v3_with_the_events_preview_only_is_read_through_v2():
    data = dataset()
    with FakeLangfuseServer("3.225.4", data, write_mode="events_only", preview=True) as server:
        text = read_twice(server.url, data, arrivals())
    assert value(text, "llmwatch_langfuse_up") == 1
    assert "llmwatch_langfuse_traces_total" not in text  # no root-observation dimension before 4.3


def test_no_metrics_endpoint_at_all_is_an_error():
    with FakeLangfuseServer("3.225.4", dataset(), write_mode="events_only", preview=False) as server:
        text = render(make_exporter(server.url))
    assert value(text, "llmwatch_langfuse_up") == 0
    assert value(text, "llmwatch_langfuse_scrape_errors_total", reason="http_status") == 1


@pytest.mark.parametrize("version", ["3.40.1", "3.57.0", "3.60.1"])
def test_a_v3_before_3_61_is_named_unsupported(version):
    """3.57 to 3.60 have a metrics API but no inputTokens/outputTokens (Langfuse answers 400 to them)."""
    with FakeLangfuseServer(version, dataset()) as server:
        text = render(make_exporter(server.url))
    assert value(text, "llmwatch_langfuse_scrape_errors_total", reason="unsupported_version") == 1
    assert [r.split("?")[0] for r in server.requests] == ["/api/public/health"]


def test_3_61_is_read():
    data = dataset()
    with FakeLangfuseServer("3.61.0", data) as server:
        text = read_twice(server.url, data, arrivals())
    assert value(text, "llmwatch_langfuse_up") == 1


@pytest.mark.parametrize("version", ["3.225.4", "4.16.0"])
def test_langfuses_own_runs_are_left_out_by_default(version):
    """LLM-as-a-judge and experiment traces (langfuse-* environments) are not the application's traffic."""
    data = dataset()
    more = arrivals()
    judge = Observation("judge-1", "t-judge", "p-chat", "GENERATION", "DEFAULT", "judge", "gpt-4o-mini",
                        naive(LATER - timedelta(minutes=1)), naive(LATER), None, 900, 40, None, 0.002,
                        "langfuse-llm-as-a-judge")
    more.observations.append(judge)  # one in the percentile window too
    with FakeLangfuseServer(version, data) as server:
        text = read_twice(server.url, data, more)
        latency_filters = [q["filters"] for q in server.queries if any(m["aggregation"] == "p95" for m in q["metrics"])]
    assert_totals(text, counted(more, naive(NOW - SETTLE), naive(LATER), project_id="p-chat"))
    assert 'model="gpt-4o-mini"' not in text  # the judge's model appears nowhere, percentiles included
    assert any(f["column"] == "environment" and not set(f["value"]) & set(INTERNAL_ENVIRONMENTS)
               for f in latency_filters[-1])  # the judge is in the last read's percentile window


def test_environments_can_be_chosen_and_labelled():
    data = dataset()
    more = arrivals()
    keep = EnvironmentFilter(include=("production", "langfuse-*"), exclude=())
    with FakeLangfuseServer("4.16.0", data) as server:
        text = read_twice(server.url, data, more, environments=keep, environment_label=True)
    want = counted(more, naive(NOW - SETTLE), naive(LATER), project_id="p-chat", keep=keep, by_environment=True)
    assert_totals(text, want, by_environment=True)
    labelled = {dict(ls)["environment"] for (n, ls), v in samples(text).items()
                if n == "llmwatch_langfuse_observations_total" and v}
    assert labelled == {key[-1] for key in want["observations"]} and "staging" not in labelled
    assert 'model="gpt-4o-mini"' in text


def test_v4_counts_traces_as_root_observations():
    data = dataset()
    more = arrivals()
    with FakeLangfuseServer("4.16.0", data) as server:
        text = read_twice(server.url, data, more)
    roots = sum(1 for o in more.observations if o.parent_observation_id is None and o.project_id == "p-chat"
                and not internal(o.environment))
    assert exposed(text)["traces"] == {("chat-app",): roots}


def test_wrong_keys_are_an_auth_error():
    with FakeLangfuseServer("4.16.0", dataset()) as server:
        text = render(make_exporter(server.url, keys=("pk-lf-test", "sk-lf-wrong")))
    assert value(text, "llmwatch_langfuse_up") == 0
    assert value(text, "llmwatch_langfuse_scrape_errors_total", reason="auth") == 1


@pytest.mark.parametrize("mode, reason", [("garbage", "invalid_answer"), ("error", "http_status")])
def test_a_broken_api_gives_up_0_and_counters_stay(mode, reason):
    data = dataset()
    clock = {"now": NOW}
    with FakeLangfuseServer("4.16.0", data) as server:
        with contextlib.closing(make_exporter(server.url, cache_seconds=0, wall=lambda: clock["now"])) as exporter:
            render(exporter)
            data.extend(arrivals())
            clock["now"] = LATER
            render(exporter)
            good = render(exporter)
            server.mode = mode
            text = render(exporter)
    assert value(text, "llmwatch_langfuse_up") == 0
    assert value(text, "llmwatch_langfuse_scrape_errors_total", reason=reason) == 1
    assert exposed(text)["observations"] == exposed(good)["observations"] != {}  # counters keep their values
    assert "llmwatch_langfuse_generation_latency_seconds{" in good
    assert "llmwatch_langfuse_generation_latency_seconds{" not in text  # a snapshot is not served stale


def test_unhealthy_langfuse_is_reported():
    with FakeLangfuseServer("4.16.0", dataset(), mode="down") as server:
        text = render(make_exporter(server.url))
    assert value(text, "llmwatch_langfuse_healthy") == 0
