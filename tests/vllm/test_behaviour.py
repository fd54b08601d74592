"""What the vLLM exporter promises: newest names, nothing fabricated, failures as up 0, caches honoured."""

from __future__ import annotations

import itertools

import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmwatch.upstreams.vllm_discovery import DockerDiscovery, MatchRules, parse_static_targets
from llmwatch.simulation.vllm import FakeVllmServer, busy_engine, render_metrics
from tests.fakes.docker_engine import FakeDockerEngine, container
from tests.procs import dead_url, render, samples, value
from tests.vllm.scenarios import AWKWARD, fixture_server, make_exporter


def series(text: str, name: str, **labels) -> list[frozenset]:
    """Every matching sample line, duplicates included (a duplicate is a bug to catch)."""
    return [frozenset(s.labels.items()) for fam in text_string_to_metric_families(text) for s in fam.samples
            if s.name == name and set(labels.items()) <= set(s.labels.items())]


def scrape_once(*servers: FakeVllmServer, names=None, **kwargs) -> str:
    names = names or [f"t{i}" for i in range(len(servers))]
    exporter = make_exporter(parse_static_targets([{"name": n, "url": s.url} for n, s in zip(names, servers)]),
                             **kwargs)
    try:
        return render(exporter)
    finally:
        exporter.close()


def upstream_value(fixture: str, name: str) -> float:
    with open(f"tests/vllm/fixtures/{fixture}") as f:
        return value(f.read(), name)


def test_every_series_carries_container_and_version_from_the_first_scrape():
    """/version is read before /metrics is parsed, so the first scrape already has the right label."""
    with fixture_server("vllm-0.11.0.prom", latency=0.05) as server:
        text = scrape_once(server, names=["v11"])
    vllm_series = [ls for (n, ls) in samples(text) if n.startswith(("vllm:", "http_"))]
    assert vllm_series and all({("container", "v11"), ("vllm_version", "0.11.0")} <= ls for ls in vllm_series)


def test_v0_gpu_cache_usage_becomes_kv_cache_usage():
    with fixture_server("vllm-0.6.4.prom") as server:
        text = scrape_once(server, names=["old"])
    assert value(text, "vllm:kv_cache_usage_perc", container="old") == upstream_value("vllm-0.6.4.prom",
                                                                                       "vllm:gpu_cache_usage_perc")
    assert not series(text, "vllm:gpu_cache_usage_perc")
    assert value(text, "llmwatch_vllm_up", container="old") == 1


def test_v0_time_per_output_token_becomes_inter_token_latency_with_its_buckets():
    fixture = open("tests/vllm/fixtures/vllm-0.6.4.prom").read()
    upstream = {dict(ls)["le"]: v for (n, ls), v in samples(fixture).items()
                if n == "vllm:time_per_output_token_seconds_bucket"}
    with fixture_server("vllm-0.6.4.prom") as server:
        text = scrape_once(server, names=["old"])
    exposed = {dict(ls)["le"]: v for (n, ls), v in samples(text).items()
               if n == "vllm:inter_token_latency_seconds_bucket"}
    assert exposed == upstream  # the upstream's own (old, shorter) bucket set, untouched
    assert max(float(le) for le in exposed if le != "+Inf") == 2.5
    assert not series(text, "vllm:time_per_output_token_seconds_bucket")
    assert value(text, "llmwatch_vllm_renamed_info", container="old",
                 upstream_name="vllm:time_per_output_token_seconds") == 1


def test_transition_release_exports_the_newest_name_once():
    """awkward.prom sends gpu_cache_usage_perc 0.5 and kv_cache_usage_perc 0.25: the newest name wins."""
    with FakeVllmServer(body=AWKWARD) as server:
        text = scrape_once(server, names=["both"])
    assert value(text, "vllm:kv_cache_usage_perc", container="both") == 0.25
    assert len(series(text, "vllm:kv_cache_usage_perc")) == 1
    assert not series(text, "llmwatch_vllm_renamed_info", container="both")


def test_transition_0_10_prefix_cache_counters_are_not_doubled():
    with fixture_server("vllm-0.10.1.prom") as server:
        text = scrape_once(server, names=["t"])
    assert len(series(text, "vllm:prefix_cache_queries_total", container="t")) == 1
    assert not series(text, "vllm:gpu_prefix_cache_queries_total")
    assert not series(text, "vllm:gpu_cache_usage_perc")


def test_a_metric_the_upstream_lacks_stays_absent():
    with fixture_server("vllm-0.6.4.prom") as old, fixture_server("vllm-0.28.0.prom") as new:
        text = scrape_once(old, new, names=["old", "new"])
    for name in ("vllm:prefix_cache_queries_total", "vllm:request_time_per_output_token_seconds_count",
                 "vllm:num_requests_waiting_by_reason"):
        assert series(text, name, container="new"), name
        assert not series(text, name, container="old"), f"{name} fabricated for the V0 server"
    # V0-only metrics keep their own name: nothing to fold them into, nothing lost
    assert value(text, "vllm:num_requests_swapped", container="old") == 0
    assert not series(text, "vllm:num_requests_swapped", container="new")


def test_created_and_process_families_are_dropped_http_kept():
    with fixture_server("vllm-0.28.0.prom") as server:
        text = scrape_once(server)
    names = {n for n, _ in samples(text)}
    assert not [n for n in names if n.endswith("_created")]
    assert not [n for n in names if n.startswith(("python_", "process_"))]
    assert series(text, "http_requests_total", handler="/v1/chat/completions", status="2xx")


def test_fresh_server_with_help_and_type_only_is_up_with_no_samples():
    with fixture_server("vllm-0.5.3-fresh.prom") as server:
        text = scrape_once(server, names=["fresh"])
    assert value(text, "llmwatch_vllm_up", container="fresh") == 1
    assert value(text, "llmwatch_vllm_target_samples", container="fresh") == 0
    assert not [n for n, ls in samples(text) if n.startswith("vllm:") and ("container", "fresh") in ls]


def test_label_order_and_le_spelling_do_not_split_buckets():
    """'1' from one server and '1.0' from another must be the same bucket in sum by (le)."""
    plain = AWKWARD
    with FakeVllmServer(body=plain) as a, fixture_server("vllm-0.11.0.prom") as b:
        text = scrape_once(a, b, names=["a", "b"])
    les_a = {dict(ls)["le"] for ls in series(text, "vllm:time_to_first_token_seconds_bucket", container="a")}
    les_b = {dict(ls)["le"] for ls in series(text, "vllm:time_to_first_token_seconds_bucket", container="b")}
    assert "1.0" in les_a and "1" not in les_a
    assert "1.0" in les_b


def test_upstream_container_label_is_kept_as_exported_container():
    with FakeVllmServer(body=AWKWARD) as server:
        text = scrape_once(server, names=["mine"])
    assert value(text, "vllm:cache_config_info", container="mine", exported_container="from-upstream") == 1


def test_unreadable_lines_are_skipped_and_counted():
    with FakeVllmServer(body=AWKWARD) as server:
        text = scrape_once(server, names=["a"])
    assert value(text, "llmwatch_vllm_up", container="a") == 1
    assert value(text, "llmwatch_vllm_target_errors_total", container="a", reason="invalid_line") == 1
    assert value(text, "vllm:num_requests_running", container="a") == 3  # timestamp dropped, duplicate once


@pytest.mark.parametrize("mode, reason", [("garbage", "invalid_exposition"), ("error", "http_status"),
                                          ("hang", "timeout")])
def test_a_broken_server_is_up_0_with_its_reason_and_the_others_still_served(mode, reason):
    with FakeVllmServer(mode=mode) as broken, fixture_server("vllm-0.28.0.prom") as good:
        text = scrape_once(broken, good, names=["broken", "good"], budget=0.5)
    assert value(text, "llmwatch_vllm_up", container="broken") == 0
    assert value(text, "llmwatch_vllm_up", container="good") == 1
    assert value(text, "llmwatch_vllm_target_errors_total", container="broken", reason=reason) == 1
    assert value(text, "llmwatch_vllm_scrape_errors_total", reason=reason) == 1
    assert not [n for n, ls in samples(text) if n.startswith("vllm:") and ("container", "broken") in ls]
    assert series(text, "vllm:kv_cache_usage_perc", container="good")


def test_dead_port_is_up_0():
    exporter = make_exporter(parse_static_targets([{"name": "gone", "url": dead_url()}]))
    try:
        text = render(exporter)
    finally:
        exporter.close()
    assert value(text, "llmwatch_vllm_up", container="gone") == 0
    assert value(text, "llmwatch_vllm_healthy", container="gone") == 0
    assert value(text, "llmwatch_vllm_target_errors_total", container="gone", reason="connect") == 1


def test_unhealthy_engine_that_still_serves_metrics():
    with FakeVllmServer(mode="unhealthy") as server:
        text = scrape_once(server, names=["sick"])
    assert value(text, "llmwatch_vllm_up", container="sick") == 1
    assert value(text, "llmwatch_vllm_healthy", container="sick") == 0


def test_oversized_body_is_refused():
    with FakeVllmServer(body="vllm:x 1\n" * 20_000) as server:
        exporter = make_exporter(parse_static_targets([{"name": "big", "url": server.url}]))
        exporter.fetcher.max_body_bytes = 64 * 1024
        try:
            text = render(exporter)
        finally:
            exporter.close()
    assert value(text, "llmwatch_vllm_up", container="big") == 0
    assert value(text, "llmwatch_vllm_target_errors_total", container="big", reason="too_large") == 1


def test_metadata_and_health_are_cached_metrics_are_not():
    ticks = itertools.count()
    with FakeVllmServer() as server:
        exporter = make_exporter(parse_static_targets([server.url]), metadata_seconds=60, health_seconds=10,
                                 clock=lambda: next(ticks) * 4.0)  # 4 s per scrape
        try:
            for _ in range(6):
                render(exporter)
        finally:
            exporter.close()
    paths = [p for p in server.requests]
    assert paths.count("/metrics") == 6
    assert paths.count("/v1/models") == 1 and paths.count("/version") == 1
    assert paths.count("/health") == 2  # at 0 s and 12 s (t=0,4,8 cached; 12 fetched; 16,20 cached)


def test_metadata_is_fetched_again_when_a_server_comes_back():
    ticks = itertools.count()
    with FakeVllmServer() as server:
        exporter = make_exporter(parse_static_targets([server.url]), metadata_seconds=3600,
                                 clock=lambda: float(next(ticks)))
        try:
            render(exporter)
            server.mode = "error"
            down = render(exporter)
            server.mode, server.version = "ok", "0.29.0"  # upgraded while it was down
            server.engines = [busy_engine(model_name="new-model")]
            server.body = render_metrics("0.28.0", server.engines)
            text = render(exporter)
        finally:
            exporter.close()
    name = server.url.removeprefix("http://")
    assert value(down, "llmwatch_vllm_up", container=name) == 0
    assert value(text, "llmwatch_vllm_instance_info", container=name, vllm_version="0.29.0",
                 model_name="new-model") == 1
    # the re-exposed series follow the upgrade: the new version's label, the old one gone
    assert series(text, "vllm:kv_cache_usage_perc", container=name, vllm_version="0.29.0")
    assert not series(text, "vllm:kv_cache_usage_perc", vllm_version="0.28.0")


def test_model_name_falls_back_to_the_metrics_label_when_v1_models_fails():
    class NoModels(FakeVllmServer):
        def answer(self, path, headers):
            if path == "/v1/models":
                return 404, "application/json", b"{}"
            return super().answer(path, headers)

    with NoModels(body=render_metrics("0.28.0", [busy_engine(model_name="from-metrics")])) as server:
        text = scrape_once(server, names=["x"])
    assert value(text, "llmwatch_vllm_instance_info", container="x", model_name="from-metrics",
                 max_model_len="unknown") == 1


def test_lora_adapters_are_capped():
    engine = busy_engine(lora_adapters=tuple(f"adapter-{i}" for i in range(30)))
    with FakeVllmServer(engines=[engine]) as server:
        text = scrape_once(server, names=["x"], lora_limit=5)
    assert len(series(text, "llmwatch_vllm_lora_adapter_info", container="x")) == 5


def test_type_conflict_between_targets_keeps_the_first():
    with FakeVllmServer(body="# TYPE vllm:thing gauge\nvllm:thing 1\n") as a, \
            FakeVllmServer(body="# TYPE vllm:thing counter\nvllm:thing_total 2\n") as b:
        text = scrape_once(a, b, names=["a", "b"])
    assert value(text, "vllm:thing", container="a") == 1
    assert not series(text, "vllm:thing_total")
    assert value(text, "llmwatch_vllm_target_errors_total", container="b", reason="type_conflict") == 1


def test_containers_come_and_go_between_scrapes(tmp_path):
    with FakeVllmServer() as a, FakeVllmServer() as b:
        first = container("a" * 64, "vllm-a", ports={8000: a.port})
        second = container("b" * 64, "vllm-b", ports={8000: b.port})
        with FakeDockerEngine(tmp_path / "docker.sock", [first]) as engine:
            discovery = DockerDiscovery(engine.url, 5.0, MatchRules(host_address="127.0.0.1"))
            exporter = make_exporter([], discovery=discovery)
            try:
                before = render(exporter)
                engine.containers = [second]
                after = render(exporter)
            finally:
                exporter.close()
    assert series(before, "llmwatch_vllm_up", container="vllm-a")
    assert not series(after, "llmwatch_vllm_up", container="vllm-a")
    assert not series(after, "vllm:kv_cache_usage_perc", container="vllm-a")
    assert value(after, "llmwatch_vllm_up", container="vllm-b") == 1


def test_container_is_inspected_once_then_again_after_the_cache_time(tmp_path):
    now = [0.0]
    with FakeVllmServer() as a:
        with FakeDockerEngine(tmp_path / "docker.sock", [container("a" * 64, "vllm-a", ports={8000: a.port})]) as engine:
            discovery = DockerDiscovery(engine.url, 5.0, MatchRules(host_address="127.0.0.1"), inspect_seconds=30,
                                        clock=lambda: now[0])
            for t in (0, 10, 20, 31):
                now[0] = t
                assert [x.name for x in discovery.targets()] == ["vllm-a"]
            discovery.close()
    inspects = [p for p in engine.requests if p.split("?")[0].endswith("/json") and "/containers/a" in p]
    assert len(inspects) == 2


def test_static_target_wins_over_the_same_container_found_by_docker(tmp_path):
    with FakeVllmServer() as a:
        with FakeDockerEngine(tmp_path / "docker.sock", [container("a" * 64, "vllm-a", ports={8000: a.port})]) as engine:
            discovery = DockerDiscovery(engine.url, 5.0, MatchRules(host_address="127.0.0.1"))
            exporter = make_exporter(parse_static_targets([{"name": "pinned", "url": a.url}]), discovery=discovery)
            try:
                text = render(exporter)
            finally:
                exporter.close()
    assert [dict(ls)["container"] for ls in series(text, "llmwatch_vllm_up")] == ["pinned"]


def test_docker_unreachable_from_the_start_is_counted_not_fatal(tmp_path):
    discovery = DockerDiscovery(f"unix://{tmp_path}/nothing.sock", 1.0, MatchRules())
    exporter = make_exporter([], discovery=discovery)
    try:
        text = render(exporter)
    finally:
        exporter.close()
    assert value(text, "llmwatch_vllm_docker_up") == 0
    assert value(text, "llmwatch_vllm_scrape_errors_total", reason="docker") == 1
    assert value(text, "llmwatch_vllm_targets", source="docker") == 0
