"""Insights: prices, attribution, advice with hysteresis, slots, Prometheus answers and failures."""

import contextlib
import json

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from llmwatch.exporters import known_sections
from llmwatch.core.settings import SettingsError, load
from llmwatch.exporters.insights import InsightsSettings, analysis, parse_prices
from llmwatch.exporters.insights.analysis import Advice, Gpu, Load, Server, Thresholds
from llmwatch.exporters.insights.collector import queries
from llmwatch.exporters.insights.prometheus import QueryFailed, parse_vector
from tests.fakes.prometheus import FakePrometheus
from tests.insights.scenarios import NOW, make, node_answers
from tests.procs import render, samples

TH = Thresholds(hold_seconds=600, hysteresis=0.1)
BUSY = Load(kv_cache=0.85, queue_per_replica=0, ttft_burning=False, utilization=0.5, window_utilization=0.5,
            window_kv_cache=0.9, replicas=1)
CALM = Load(kv_cache=0.5, queue_per_replica=0, ttft_burning=False, utilization=0.5, window_utilization=0.5,
            window_kv_cache=0.6, replicas=1)
QUIET = Load(kv_cache=0.05, queue_per_replica=0, ttft_burning=False, utilization=0.1, window_utilization=0.1,
             window_kv_cache=0.1, replicas=2)


def test_price_is_the_first_matching_entry_else_the_default():
    prices = parse_prices([{"match": "H100 NVL", "dollars_per_hour": 4.0}, {"match": "h100", "dollars_per_hour": 5}])
    assert analysis.price_for("NVIDIA H100 NVL", prices, 1.0) == 4.0
    assert analysis.price_for("NVIDIA H100 80GB HBM3", prices, 1.0) == 5.0
    assert analysis.price_for("Tesla T4", prices, 1.0) == 1.0


@pytest.mark.parametrize("bad, message", [
    ("H100=5", "must be a list"),
    ([{"match": "H100"}], "exactly match and dollars_per_hour"),
    ([{"match": "", "dollars_per_hour": 1}], "non-empty"),
    ([{"match": "H100", "dollars_per_hour": -1}], "in [0, 10000)"),
])
def test_bad_price_tables_are_named(bad, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace(")", r"\)")):
        parse_prices(bad)


def test_a_bad_price_table_in_the_environment_is_reported(monkeypatch):
    monkeypatch.setenv("LLMWATCH_INSIGHTS__GPU_PRICES", '[{match = "H100", dollars = 5}]')
    with pytest.raises(SettingsError) as e:
        load("insights", InsightsSettings, known_sections=known_sections())
    assert any("insights.gpu_prices (env LLMWATCH_INSIGHTS__GPU_PRICES)" in p for p in e.value.problems)


def test_container_gpus_from_docker_by_index_uuid_or_all_else_from_memory():
    gpus = [Gpu("0", "GPU-a", "H200"), Gpu("1", "GPU-b", "H200"), Gpu("2", "GPU-c", "H200")]
    assert analysis.server_gpus("x", ["GPU-b", "0"], [], gpus) == ("0", "1")
    assert analysis.server_gpus("x", ["all"], [], gpus) == ("0", "1", "2")
    assert analysis.server_gpus("x", [], ["2"], gpus) == ("2",)
    assert analysis.server_gpus("x", ["GPU-gone"], [], gpus) == ()


def test_a_shared_gpu_is_split_between_models_not_containers():
    servers = [Server("a", "llama", ("0", "1")), Server("b", "llama", ("1",)), Server("c", "qwen", ("1",))]
    assert analysis.allocation(servers) == {("0", "llama"): 1.0, ("1", "llama"): 0.5, ("1", "qwen"): 0.5}


def test_scale_up_is_immediate_and_stays_until_clearly_over():
    up = analysis.decide(None, BUSY, TH, now=0)
    assert (up.advice, up.reason, up.since) == ("scale_up", "kv_cache", 0)
    # 0.75 is under the 0.8 threshold but within the 10 % margin: still scale_up.
    assert analysis.decide(up, Load(**{**BUSY.__dict__, "kv_cache": 0.75}), TH, now=2000) is up
    # Clearly below (0.7 < 0.72), but the advice is only 100 s old: it stands.
    assert analysis.decide(up, CALM, TH, now=100) is up
    later = analysis.decide(up, CALM, TH, now=700)
    assert (later.advice, later.since) == ("none", 700)


def test_flapping_load_does_not_flap_the_advice():
    advice, changes = None, 0
    for t in range(0, 3600, 15):
        load = BUSY if (t // 15) % 2 == 0 else Load(**{**BUSY.__dict__, "kv_cache": 0.78})  # 0.85, 0.78, 0.85 ...
        new = analysis.decide(advice, load, TH, now=t)
        changes += advice is not None and new.advice != advice.advice
        advice = new
    assert advice.advice == "scale_up" and changes == 0


def test_every_scale_up_trigger_is_named():
    base = dict(kv_cache=0.1, queue_per_replica=0, ttft_burning=False, utilization=0.2, window_utilization=0.2,
                window_kv_cache=0.2, replicas=1)
    assert analysis.scale_up_reason(Load(**{**base, "queue_per_replica": 6}), TH) == "queue"
    assert analysis.scale_up_reason(Load(**{**base, "ttft_burning": True}), TH) == "ttft_slo"
    assert analysis.scale_up_reason(Load(**{**base, "utilization": 0.9}), TH) == "utilization"
    assert analysis.scale_up_reason(Load(**base), TH) == ""


def test_quiet_model_scales_down_or_consolidates_and_unknown_load_is_not_quiet():
    assert analysis.decide(None, QUIET, TH, now=0).advice == "scale_down"
    one = Load(**{**QUIET.__dict__, "replicas": 1})
    assert analysis.decide(None, one, TH, now=0, fits_beside="qwen") == Advice("consolidate", "low_load", "qwen", 0)
    unknown = Load(None, None, False, None, None, None, 1)
    assert analysis.decide(None, unknown, TH, now=0).advice == "none"
    # From scale_down, load at 0.32 (above 0.3 but inside the margin) keeps it.
    down = analysis.decide(None, QUIET, TH, now=0)
    assert analysis.decide(down, Load(**{**QUIET.__dict__, "window_utilization": 0.32}), TH, now=5000) is down


def test_fits_beside_needs_as_many_gpus_each_with_room():
    gpus = {"0": Gpu("0", "", "", 80, 70), "1": Gpu("1", "", "", 80, 70), "2": Gpu("2", "", "", 80, 20),
            "3": Gpu("3", "", "", 80, 30), "4": Gpu("4", "", "", 80, 50)}
    servers = [Server("a", "big", ("0", "1")), Server("b", "small", ("2",)), Server("c", "mid", ("3", "4"))]
    assert analysis.fits_beside("small", servers, gpus) == "mid"  # 20 fits in 50 free on GPU 3
    assert analysis.fits_beside("mid", servers, gpus) == ""  # needs two GPUs with 50 free
    assert analysis.fits_beside("big", servers, gpus) == ""


def test_slots_from_setting_kv_cache_or_peak():
    assert analysis.slots_per_replica(8, 256, 40.0, 60) == 8
    assert analysis.slots_per_replica(0, 256, 46.5, 30) == 46
    assert analysis.slots_per_replica(0, 256, 10.0, 30) == 30
    assert analysis.slots_per_replica(0, 256, 1e9, 30) == 256
    assert analysis.slots_per_replica(0, 256, None, None) == 1


def test_parse_vector_keeps_finite_values_and_names_bad_answers():
    body = {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"gpu": "0"}, "value": [1, "0.5"]}, {"metric": {"gpu": "1"}, "value": [1, "NaN"]},
        {"metric": {"gpu": "2"}, "value": [1, "+Inf"]}]}}
    assert [(s.labels, s.value) for s in parse_vector(json.dumps(body).encode())] == [({"gpu": "0"}, 0.5)]
    for bad, reason in ((b"<html>", "invalid_answer"), (b'{"status": "error", "error": "x"}', "query_error"),
                        (b'{"status": "success", "data": {"resultType": "matrix", "result": []}}', "invalid_answer")):
        with pytest.raises(QueryFailed) as e:
            parse_vector(bad)
        assert e.value.reason == reason


@hsettings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=8) | st.integers(),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                        st.sampled_from(["status", "data", "resultType", "result", "metric", "value", "error"]),
                        inner, max_size=4), max_leaves=25))
def test_any_json_answer_parses_or_fails_with_a_reason(document):
    try:
        parse_vector(json.dumps(document).encode())
    except QueryFailed as e:
        assert e.reason in ("invalid_answer", "query_error")


def test_a_refused_query_is_counted_and_the_rest_still_served():
    answers = node_answers()
    refused = queries(1800)["kv_cache"]
    with FakePrometheus(answers, refuse=(refused,)) as prometheus, \
            contextlib.closing(make(prometheus.url)) as exporter:
        got = samples(render(exporter))
    assert got[("llmwatch_insights_up", frozenset())] == 0
    assert got[("llmwatch_insights_scrape_errors_total", frozenset({("reason", "query_error")}))] == 1
    # Without the KV cache, llama's scale-up comes from elsewhere or not at all; attribution stands.
    assert got[("llmwatch_insights_gpu_allocation_ratio", frozenset({("gpu", "6"), ("model_name", "bge-m3")}))] == 1


def test_queries_are_cached_between_scrapes():
    with FakePrometheus(node_answers()) as prometheus, contextlib.closing(make(prometheus.url)) as exporter:
        render(exporter)
        render(exporter)
        assert len(prometheus.queries) == len(queries(1800))


def test_advice_persists_across_refreshes_with_its_age():
    clock = [NOW]
    with FakePrometheus(node_answers()) as prometheus, \
            contextlib.closing(make(prometheus.url, cache_seconds=0)) as exporter:
        exporter.clock = lambda: clock[0]
        render(exporter)
        clock[0] += 120
        got = samples(render(exporter))
    since = ("llmwatch_insights_advice_since_timestamp_seconds", frozenset({("model_name", "llama-3.1-70b")}))
    assert got[since] == NOW


def test_concurrent_scrapes_share_one_refresh():
    """Twenty scrapers at once cost Prometheus one batch of queries, not twenty (single flight)."""
    import threading

    from llmwatch.core.scrape import ScrapeErrors

    with FakePrometheus(node_answers()) as prometheus, \
            contextlib.closing(make(prometheus.url, cache_seconds=60)) as exporter:
        start = threading.Barrier(20)

        def scrape():
            start.wait(5)
            list(exporter.scrape(ScrapeErrors()))

        threads = [threading.Thread(target=scrape) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        asked = len(prometheus.queries)
        assert asked == len(queries(exporter.settings.advice_window_seconds)), f"one refresh, not {asked} queries"
