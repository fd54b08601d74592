"""Demo mode: the live queueing model, the simulated upstreams together, the CLI's target files."""

from __future__ import annotations

import contextlib
import json
import signal
import queue
import sys
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest

from llmwatch.mixin import MIXIN
from llmwatch.simulation.demo import (BREACH_LOAD, DEFAULT_LOAD, ENGINES, MASTER_KEY, OUTPUT_TOKENS,
                                      PROMPT_TOKENS, Demo)
from llmwatch.simulation.demo.engine import LiveEngine, replay
from llmwatch.simulation.nvml import http_loads, simulated_node
from llmwatch.queueing.config import MonoCluster
from llmwatch.exporters.vllm.collector import VllmExporter, vllm_fetcher
from llmwatch.upstreams.vllm_discovery import Target
from llmwatch.simulation.vllm import Engine
from tests.procs import Process, render, value, wait_until

ROOT = Path(__file__).resolve().parents[2]


class SteppedTime:
    """A clock that moves only when the test says: each ``sleep`` waits for :meth:`step`, which
    ends it at once, so the engine's steps are taken one at a time, in simulated time."""

    def __init__(self):
        self.now = 0.0
        self.sleeps: queue.Queue[tuple[float, threading.Event]] = queue.Queue()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        done = threading.Event()
        self.sleeps.put((seconds, done))
        done.wait()

    def step(self) -> float:
        seconds, done = self.sleeps.get(timeout=10)
        self.now += seconds
        done.set()
        return seconds


def demo_arrivals(rate: float, seconds: float, seed: int = 3) -> list[tuple[float, int, int]]:
    """Poisson arrivals with the demo load's prompt and output lengths."""
    rng = np.random.default_rng(seed)
    count = rng.poisson(rate * seconds)
    prompts, outputs = PROMPT_TOKENS.sample(rng, count), OUTPUT_TOKENS.sample(rng, count)
    return [(float(t), int(p), max(1, int(o)))
            for t, p, o in zip(np.sort(rng.uniform(0, seconds, count)), prompts, outputs)]


def p95(values) -> float:
    return float(np.percentile(values, 95))


def test_throughput_grows_with_concurrency_up_to_the_slots():
    llama = ENGINES[0]

    def tokens_per_second(concurrent: int) -> float:
        served = replay(llama.cluster, llama.slots, [(0.0, 100, 200)] * concurrent)
        return concurrent * 200 / max(r.token_times[-1] for r in served)

    one, eight = tokens_per_second(1), tokens_per_second(8)
    assert one == pytest.approx(1 / (100 / 6000 / 200 + 1 / 35))  # one prefill, then one token a step
    assert eight > 6 * one  # steps shared by the batch, each a little longer
    assert tokens_per_second(2 * llama.slots) == pytest.approx(tokens_per_second(llama.slots), rel=0.05)


@pytest.mark.parametrize("spec", ENGINES, ids=lambda spec: spec.container)
def test_at_the_default_demo_load_every_latency_slo_holds(spec):
    slo = MIXIN.slo.of(spec.model)
    served = replay(spec.cluster, spec.slots, demo_arrivals(DEFAULT_LOAD * spec.share, 1800))
    assert len(served) > 100
    ttft = [r.token_times[0] - r.arrived for r in served]
    tpot = [(r.token_times[-1] - r.token_times[0]) / (r.sent - 1) for r in served if r.sent > 1]
    assert p95(ttft) < slo.ttft_p95_seconds / 2
    assert p95(tpot) < slo.tpot_p95_seconds / 2


def test_the_documented_breach_load_breaks_the_llamas_ttft_slo():
    llama = ENGINES[0]
    slo = MIXIN.slo.of(llama.model)
    served = replay(llama.cluster, llama.slots, demo_arrivals(BREACH_LOAD * llama.share, 600))
    # beyond the page (critical) threshold, not just the SLO
    assert p95([r.token_times[0] - r.arrived for r in served]) > MIXIN.ttft_threshold(slo.ttft_p95_seconds).critical
    assert f"--load {BREACH_LOAD:g}" in (ROOT / "README.md").read_text()


def test_the_live_engine_batches_a_request_that_arrives_mid_stream():
    # decode 100 tokens/s alone; prefill 50 tokens at 1000/s = 0.05 s
    clock = SteppedTime()
    live = LiveEngine(Engine(model_name="m"), MonoCluster(gpus=1, prefill_tokens_per_s=1000.0, decode_tokens_per_s=100.0),
                      slots=2, clock=clock, sleep=clock.sleep)
    seen: dict[str, list[int]] = {"a": [], "b": []}

    def client(name: str, output: int) -> None:
        for k in live.tokens(50, output):
            seen[name].append(k)

    a = threading.Thread(target=client, args=("a", 4))
    a.start()
    assert clock.step() == pytest.approx(0.05 + 0.01)  # a's prefill and its first token
    wait_until(lambda: clock.sleeps.qsize() == 1, 10, "the engine in its next step, a alone")
    b = threading.Thread(target=client, args=("b", 2))
    b.start()
    wait_until(lambda: live.engine.waiting == 1, 10, "b queued for the next step")
    assert clock.step() == pytest.approx(0.01)
    assert clock.step() == pytest.approx(0.05 + 1.03 / 100)  # b's prefill; two decoding: 3 % more a step
    assert clock.step() == pytest.approx(1.03 / 100)  # a's last token and b's
    a.join(10)
    b.join(10)
    assert seen == {"a": [0, 1, 2, 3], "b": [0, 1]}
    # a's tokens at 0.06, 0.07, 0.1303, 0.1406; b arrived at 0.06, its tokens at 0.1303, 0.1406
    ttft = live.engine.histograms["ttft"]
    assert ttft.count == 2 and ttft.sum == pytest.approx(0.06 + (0.1303 - 0.06))
    queued = live.engine.histograms["queue"]
    assert queued.count == 2 and queued.sum == pytest.approx(0.07 - 0.06)
    assert live.engine.finished["length"] == 2 and live.engine.running == 0 and live.engine.waiting == 0


def test_an_abandoned_stream_frees_its_slot_and_counts_as_aborted():
    live = LiveEngine(Engine(model_name="m"), MonoCluster(gpus=1, prefill_tokens_per_s=1e6, decode_tokens_per_s=1e4))
    tokens = live.tokens(10, 100)
    next(tokens)
    tokens.close()
    assert live.engine.finished["abort"] == 1 and live.engine.running == 0
    assert list(live.tokens(10, 3)) == [0, 1, 2]


def test_the_demo_serves_every_upstream_and_the_gpus_follow_its_traffic():
    with contextlib.closing(Demo(fixed_ports=False).start()) as demo:
        urls = demo.urls()
        # a burst through the simulated LiteLLM to the llama group keeps its engine busy
        def request():
            with httpx.stream("POST", urls["litellm"] + "/v1/chat/completions",
                              headers={"Authorization": f"Bearer {MASTER_KEY}"},
                              json={"model": "llama-3.1-70b", "messages": [{"role": "user", "content": "hi"}],
                                    "max_tokens": 30, "ignore_eos": True, "stream": True}, timeout=10) as r:
                assert r.status_code == 200
                return sum(1 for line in r.iter_lines() if line.startswith("data: {"))
        threads = [threading.Thread(target=request) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        read_load = lambda: json.loads(httpx.get(urls["status"] + "/load").text)  # noqa: E731
        before = read_load()
        assert before["vllm-llama-3.1-70b"] > 0 and before["vllm-embed"] == 0

        node = simulated_node()
        node.load_source = http_loads(urls["status"] + "/load")
        node.nvmlInit()
        node.nvmlDeviceGetCount()
        after = read_load()
        # the load is a moving average that falls once the burst is over: the node read it in between
        llama = ENGINES[0].container
        assert round(100 * after[llama]) - 1 <= node.gpus[0].util_gpu <= round(100 * before[llama]) + 1
        assert node.gpus[6].util_gpu == 1  # vllm-embed idle: 1 %, its memory still held
        assert node.gpus[6].memory_used > 0

        # the vLLM exporter reads all three, the old one normalised to the newest names
        targets = [Target(spec.container, urls[spec.container], "static") for spec in ENGINES]
        exporter = VllmExporter(static_targets=targets, discovery=None, fetcher=vllm_fetcher(1 << 24), budget=5.0,
                                prefixes=("vllm:",), metadata_seconds=60, health_seconds=10, lora_limit=5)
        with contextlib.closing(exporter):
            text = render(exporter)
        assert value(text, "vllm:e2e_request_latency_seconds_count", container="vllm-llama-3.1-70b") == 4
        assert value(text, "vllm:kv_cache_usage_perc", container="vllm-embed") == 0  # from gpu_cache_usage_perc
        assert 'vllm_version="0.6.4"' in text
        spend = httpx.get(urls["litellm"] + "/metrics").text
        assert 'requested_model="llama-3.1-70b"' in spend


def test_the_demo_command_writes_its_prometheus_targets_and_removes_them(tmp_path):
    targets, urls = tmp_path / "targets", tmp_path / "urls.json"
    demo = Process([sys.executable, "-m", "llmwatch", "demo", "--any-ports", "--urls-file", str(urls),
                    "--targets-dir", str(targets)], tmp_path / "demo.log")
    try:
        wait_until(lambda: urls.exists() or demo.proc.poll() is not None, 20, "the demo's URLs")
        status = json.loads(urls.read_text())["status"]
        assert httpx.get(status + "/").status_code == 200
        files = sorted(p.name for p in targets.iterdir())
        assert files == ["litellm-demo.json", "llmwatch-gpu-demo.json", "llmwatch-langfuse-demo.json",
                         "llmwatch-litellm-demo.json", "llmwatch-probe-demo.json", "llmwatch-vllm-demo.json"]
        gpu = json.loads((targets / "llmwatch-gpu-demo.json").read_text())
        assert gpu == [{"targets": ["demo-gpu-exporter:9445"], "labels": {"simulated": "true"}}]
        assert "SIMULATED" in httpx.get(status + "/").text
        demo.proc.send_signal(signal.SIGTERM)
        assert demo.proc.wait(10) == 0
        assert list(targets.iterdir()) == [] and not urls.exists()
    finally:
        demo.stop()
