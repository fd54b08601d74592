"""Demo mode: the live queueing model, the simulated upstreams together, the CLI's target files."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading

import httpx
import pytest

from llmwatch.simulation.demo import ENGINES, MASTER_KEY, Demo
from llmwatch.simulation.demo.engine import LiveEngine
from llmwatch.simulation.nvml import http_loads, simulated_node
from llmwatch.queueing.config import MonoCluster
from llmwatch.exporters.vllm.collector import VllmExporter, vllm_fetcher
from llmwatch.upstreams.vllm_discovery import Target
from llmwatch.simulation.vllm import Engine
from tests.procs import Process, render, value, wait_until


class VirtualTime:
    """A clock whose sleeps advance it at once: the engine's timing, without waiting for it."""

    def __init__(self):
        self.now = 0.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def test_requests_queue_fifo_for_slots_as_the_simulator_models_them():
    # one slot; prefill 50 tokens at 1000/s = 0.05 s, decode 100/s: 5 tokens take 0.01 s each
    clock = VirtualTime()
    live = LiveEngine(Engine(model_name="m"), MonoCluster(gpus=1, prefill_tokens_per_s=1000.0, decode_tokens_per_s=100.0),
                      clock=clock, sleep=clock.sleep)
    first = live.tokens(50, 5)
    assert next(first) == 0 and clock() == pytest.approx(0.06)  # prefill + one decode step; the slot is held

    seconds: dict[str, float] = {}

    def second_client() -> None:  # arrives at 0.06 while the first holds the only slot
        arrived = clock()
        for k in live.tokens(50, 5):
            if k == 0:
                seconds["ttft"] = clock() - arrived

    second = threading.Thread(target=second_client)
    second.start()
    wait_until(lambda: live.engine.waiting == 1, 10, "the second request queued")
    assert list(first) == [1, 2, 3, 4] and clock() == pytest.approx(0.10)  # the first ends, handing its slot over
    second.join(10)
    # the second waited 0.04 s for the slot, then prefill + one decode step like the first
    assert seconds["ttft"] == pytest.approx(0.04 + 0.06)
    queue, ttft = live.engine.histograms["queue"], live.engine.histograms["ttft"]
    assert queue.count == 2 and queue.sum == pytest.approx(0.04)
    assert ttft.count == 2 and ttft.sum == pytest.approx(0.06 + 0.10)
    assert live.engine.running == 0 and live.engine.waiting == 0


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
