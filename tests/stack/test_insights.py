"""The insights exporter as a process against the stack's real Prometheus: it reads the GPU and vLLM
exporters' series back, Prometheus scrapes what it derives, and the insights rules turn that into
cost per model and per 1M tokens, the heartbeat, SLO compliance and a capacity forecast."""

from __future__ import annotations

import threading

import pytest

from tests.procs import wait_until
from tests.stack.test_stack import stack  # noqa: F401  (the module-scoped running stack)

pytestmark = pytest.mark.integration


def values(stack, expr: str) -> dict[tuple, float]:
    """Results keyed by their labels, without __name__, job and instance."""
    return {tuple(sorted((k, v) for k, v in r["metric"].items() if k not in ("__name__", "job", "instance"))):
            float(r["value"][1]) for r in stack.query(expr)}


def test_insights_reads_prometheus_and_feeds_the_cost_rules(stack):  # noqa: F811
    # Both stack vLLM servers serve qwen3-32b; the simulated GPU node shows vllm-llama-3.1-70b's
    # processes on GPUs 0-3 and vllm-qwen3-32b's on 4-5 (static targets: attribution by memory).
    stop = threading.Event()
    engines = [server.engines[0] for server in stack.vllm.values()]

    def traffic():
        while not stop.wait(0.05):
            for engine in engines:
                engine.finish(prompt=800, generated=120, ttft=0.25, itl=0.02, queue=0.01)

    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    try:
        allocation = wait_until(lambda: values(stack, "llmwatch_insights_gpu_allocation_ratio") or None, 60,
                                "GPU attribution in Prometheus")
        assert {dict(k)["gpu"] for k in allocation} == {"0", "1", "2", "3", "4", "5"}
        assert {dict(k)["model_name"] for k in allocation} == {"qwen3-32b"}
        assert values(stack, "llmwatch_insights_up") and set(values(stack, "llmwatch_insights_up").values()) == {1.0}
        # Simulated H200s at the default $6/h: six allocated GPUs, $36/h; eight in all, $1152/day.
        cost = wait_until(lambda: values(stack, "model_name:llmwatch_gpu_cost_dollars_per_hour:allocation") or None,
                          60, "cost per model")
        assert cost == {(("model_name", "qwen3-32b"),): 36.0}
        assert list(values(stack, "cluster:llmwatch_gpu_cost_dollars_per_day:sum").values()) == [8 * 6 * 24]
        per_million = wait_until(
            lambda: values(stack, "model_name:llmwatch_cost_dollars_per_million_tokens:allocation") or None,
            60, "cost per 1M tokens")
        assert 0 < per_million[(("model_name", "qwen3-32b"),)] < 1e6
        bpm = list(values(stack, "cluster:llmwatch_heartbeat_bpm").values())
        assert len(bpm) == 1 and 40 < bpm[0] < 150
        # The idle GPU 7 costs its whole price; the SLO is met (first tokens at 0.25 s).
        idle = values(stack, "gpu:llmwatch_idle_gpu_cost_dollars_per_hour")
        assert idle[(("gpu", "7"),)] == pytest.approx(6.0)
        met = wait_until(lambda: values(stack, "model_name:vllm_ttft_slo_met:ratio_rate5m") or None, 60, "TTFT SLO")
        assert met[(("model_name", "qwen3-32b"),)] == 1.0
        forecast = wait_until(lambda: values(stack, "llmwatch_insights_forecast_max_request_rate") or None, 90,
                              "capacity forecast")
        assert forecast[(("model_name", "qwen3-32b"),)] > 0
        advice = values(stack, "llmwatch_insights_advice_info")
        assert {dict(k)["model_name"] for k in advice} == {"qwen3-32b"}
    finally:
        stop.set()
        thread.join()
