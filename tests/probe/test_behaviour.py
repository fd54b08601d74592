"""The probe loop: one probe in flight per target, bounded concurrency, timing, settings, slow and
dripping targets, stale successes."""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
import pytest

from llmwatch.core import settings as settings_mod
from llmwatch.exporters import known_sections
from llmwatch.exporters.probe import READS, ProbeSettings, StaticTarget, build, parse_targets
from llmwatch.exporters.probe.collector import ProbeExporter
from llmwatch.exporters.probe.targets import TargetSource
from tests.fakes.dripping import DrippingServer
from tests.fakes.streaming import ScriptedStreamServer, openai_events
from tests.probe.scenarios import TGI
from tests.procs import render, value


def exporter(source: TargetSource, **kwargs) -> ProbeExporter:
    options = dict(interval=0.05, timeout=5.0, stall=2.0, prompt="Say ok.", max_tokens=4, concurrency=4) | kwargs
    return ProbeExporter(source, **options)


def static(*servers, model="m") -> TargetSource:
    return TargetSource(static=[StaticTarget(f"t{i}", s.url, "openai", model, "") for i, s in enumerate(servers)])


def test_a_slow_target_never_has_two_probes_in_flight():
    with ScriptedStreamServer([1.0] + openai_events(2)) as slow:
        with contextlib.closing(exporter(static(slow))) as probe:
            assert probe.wait_for(lambda e: e.rounds >= 10)  # ten rounds while the first probe waits
            assert len(slow.requests) == 1
            assert probe.wait_for(lambda e: e.probes_done >= 1, 20)


def test_concurrency_is_bounded_over_all_targets():
    servers = [ScriptedStreamServer([0.3] + openai_events(1)) for _ in range(6)]
    with contextlib.ExitStack() as stack:
        for server in servers:
            stack.enter_context(server)
        with contextlib.closing(exporter(static(*servers), concurrency=2)) as probe:
            assert probe.wait_for(lambda e: e.probes_done >= 6, 30)
    assert sum(len(s.requests) for s in servers) >= 6
    # each server answers one at a time; across servers at most two ran at once
    starts = sorted((s.writes[0] - 0.3, s.writes[0]) for s in servers)
    overlap = max(sum(1 for a, b in starts if a <= t < b) for t, _ in starts)
    assert overlap <= 2


@pytest.mark.parametrize("delay", [0.3, 0.6])
def test_measured_ttft_is_the_injected_delay(delay):
    # each token a delay after the last: timing the wrong event would be off by a whole delay
    with ScriptedStreamServer([delay] + openai_events(3, gap=delay)) as server:
        with contextlib.closing(exporter(static(server), interval=3600)) as probe:
            assert probe.wait_for(lambda e: e.probes_done >= 1, 20)
            text = render(probe)
    ttft = value(text, "llmwatch_probe_last_ttft_seconds", target="t0")
    assert delay <= ttft < 2 * delay
    assert value(text, "llmwatch_probe_ttft_seconds_count", target="t0") == 1
    assert value(text, "llmwatch_probe_up", target="t0") == 1


def test_a_target_that_leaves_takes_its_series_and_up_flips_on_failure():
    with ScriptedStreamServer(openai_events(2)) as good:
        source = static(good)
        with contextlib.closing(exporter(source, interval=0.05)) as probe:
            assert probe.wait_for(lambda e: e.probes_done >= 1, 20)
            assert value(render(probe), "llmwatch_probe_up", target="t0") == 1
            good.script = [b"data: {broken\n\n"]
            done = probe.probes_done
            assert probe.wait_for(lambda e: e.probes_done >= done + 2, 20)
            text = render(probe)
            assert value(text, "llmwatch_probe_up", target="t0") == 0
            assert value(text, "llmwatch_probe_requests_total", target="t0", outcome="malformed") >= 1
            source.static = []
            rounds = probe.rounds
            assert probe.wait_for(lambda e: e.rounds >= rounds + 2, 20)
            assert "t0" not in render(probe)


def test_the_probe_sends_its_prompt_and_asks_for_a_stream():
    with ScriptedStreamServer(openai_events(2)) as server:
        with contextlib.closing(exporter(static(server, model="qwen"), interval=3600, prompt="Ping.")) as probe:
            assert probe.wait_for(lambda e: e.probes_done >= 1, 20)
    body = server.bodies[0]
    assert body["model"] == "qwen" and body["messages"] == [{"role": "user", "content": "Ping."}]
    assert body["max_tokens"] == 4 and body["stream"] is True


def test_settings_follow_the_vllm_and_litellm_sections_and_keys_come_from_the_environment(monkeypatch):
    with ScriptedStreamServer(openai_events(2), models=["served-model"]) as engine, \
            ScriptedStreamServer(openai_events(2), models=["group-a"]) as proxy, \
            ScriptedStreamServer(TGI) as tgi:
        monkeypatch.setenv("LLMWATCH_VLLM__DISCOVERY", "false")
        monkeypatch.setenv("LLMWATCH_VLLM__TARGETS", f'[{{name = "vllm-a", url = "{engine.url}"}}]')
        monkeypatch.setenv("LLMWATCH_LITELLM__URL", proxy.url)
        monkeypatch.setenv("LLMWATCH_LITELLM__MASTER_KEY", "sk-master-x")
        monkeypatch.setenv("LLMWATCH_PROBE__INTERVAL_SECONDS", "3600")
        monkeypatch.setenv("LLMWATCH_PROBE__TARGETS",
                           f'[{{name = "tgi", url = "{tgi.url}", api = "tgi", api_key_env = "TGI_TOKEN"}}]')
        monkeypatch.setenv("TGI_TOKEN", "hf-secret")
        loaded = settings_mod.load("probe", ProbeSettings, known_sections=known_sections(), reads=READS)
        with contextlib.closing(build(loaded)) as probe:
            assert probe.wait_for(lambda e: e.probes_done >= 3, 30)
            text = render(probe)
    assert value(text, "llmwatch_probe_success", target="vllm-a", model="served-model") == 1
    assert value(text, "llmwatch_probe_success", target="litellm", model="group-a") == 1
    assert value(text, "llmwatch_probe_success", target="tgi", model="default") == 1
    assert proxy.headers[-1]["authorization"] == "Bearer sk-master-x"
    assert tgi.headers[-1]["authorization"] == "Bearer hf-secret"
    assert "hf-secret" not in text and "sk-master-x" not in text


@pytest.mark.parametrize("entry,message", [
    ({"url": "http://x:1"}, "must be a table with name and url"),
    ({"name": "a", "url": "ftp://x"}, r"is not an http\(s\) base URL"),
    ({"name": "a", "url": "http://x:1", "api": "grpc"}, "api must be one of openai, completions, tgi, ollama"),
    ({"name": "a", "url": "http://x:1", "api": "ollama"}, "an Ollama target needs a model"),
    ({"name": "litellm", "url": "http://x:1"}, "reserved"),
    ({"name": "a", "url": "http://x:1", "api_key_env": "not a name"}, "environment variable name"),
])
def test_bad_targets_are_named(entry, message):
    with pytest.raises(ValueError, match=message):
        parse_targets([entry])


def test_bad_settings_fail_at_start_naming_the_key(monkeypatch):
    monkeypatch.setenv("LLMWATCH_PROBE__TARGETS", '[{name = "x", url = "http://h:1", api = "soap"}]')
    monkeypatch.setenv("LLMWATCH_PROBE__MAX_TOKENS", "0")
    with pytest.raises(settings_mod.SettingsError) as caught:
        settings_mod.load("probe", ProbeSettings, known_sections=known_sections(), reads=READS)
    problems = "\n".join(caught.value.problems)
    assert "probe.max_tokens (env LLMWATCH_PROBE__MAX_TOKENS) must be >= 2" in problems


def test_a_dripping_model_list_delays_no_other_target():
    # the dripping server sends a byte every 50 ms, well within the 0.5 s stall: only an overall
    # deadline on its model list ends the read, and meanwhile the healthy target keeps its turns
    with DrippingServer() as drip, ScriptedStreamServer(openai_events(2)) as healthy:
        source = TargetSource(static=[StaticTarget("drip", drip.url, "openai", "", ""),
                                      StaticTarget("healthy", healthy.url, "openai", "m", "")], timeout=0.5)
        with contextlib.closing(exporter(source, stall=0.5)) as probe:
            assert probe.wait_for(lambda e: e.probes_done >= 3, 10), "the healthy target waited on the dripping one"
            assert probe.wait_for(lambda e: e.collector.errors.snapshot()["models"] >= 1, 10)
            text = render(probe)
    assert value(text, "llmwatch_probe_up", target="healthy") == 1
    assert value(text, "llmwatch_probe_up", target="drip") == 0


def test_a_model_list_is_read_within_its_deadline_and_size_cap():
    async def resolve(server, **options):
        source = TargetSource(**options)
        async with httpx.AsyncClient() as client:
            start = time.monotonic()
            probe = await source.resolve(client, source._target(name="t", url=server.url, api="openai",
                                                                 via="direct", source="settings", model="", key=""))
            return probe, time.monotonic() - start

    with DrippingServer() as drip:
        probe, seconds = asyncio.run(resolve(drip, timeout=0.3))
    assert probe.problem == "/v1/models: no complete answer within 0.3s" and probe.models == ()
    assert seconds < 2
    with ScriptedStreamServer([], models=[f"model-{i}" for i in range(100)]) as big:
        probe, _ = asyncio.run(resolve(big, max_body_bytes=1024))
        assert probe.problem == "/v1/models: ValueError: answer larger than 1024 bytes"
        probe, _ = asyncio.run(resolve(big))
        assert probe.models == ("model-0",) and not probe.problem


def test_up_is_0_once_the_last_success_is_older_than_two_intervals_and_two_timeouts():
    clock = [1_795_000_000.0]
    with ScriptedStreamServer(openai_events(2)) as server:
        with contextlib.closing(exporter(static(server), interval=60, timeout=5.0, now=lambda: clock[0])) as probe:
            assert probe.wait_for(lambda e: e.probes_done >= 1, 20)
            text = render(probe)
            assert value(text, "llmwatch_probe_up", target="t0") == 1
            assert value(text, "llmwatch_probe_last_success_timestamp_seconds", target="t0") == clock[0]
            clock[0] += 2 * 60 + 2 * 5  # no further probe has ended: the interval is a minute
            assert value(render(probe), "llmwatch_probe_up", target="t0") == 1
            clock[0] += 1
            text = render(probe)
    assert value(text, "llmwatch_probe_up", target="t0") == 0
    assert value(text, "llmwatch_probe_last_success_timestamp_seconds", target="t0") == 1_795_000_000.0
