"""Named insights situations, shared by the golden tests and the metric-catalog test.

The node is the simulated 8xH200 box of the GPU exporter's demo (llmwatch.simulation.nvml):
llama-3.1-70b on GPUs 0-3 with a nearly full KV cache, qwen3-32b on GPUs 4-5 doing fine,
an embedding model idling on GPU 6 (small enough to move beside qwen3-32b), GPU 7 unused.
Prometheus is a canned /api/v1/query (tests/fakes/prometheus.py); the clock is fixed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tomllib
from pathlib import Path

from llmwatch.exporters.insights import InsightsSettings
from llmwatch.exporters.insights.collector import InsightsExporter, forecast_queries, queries
from llmwatch.exporters.insights.prometheus import PrometheusSource
from tests.fakes.prometheus import FakePrometheus, Rows
from tests.procs import dead_url, render

REPO = Path(__file__).resolve().parents[2]
NOW = 1_795_000_000.0
GIB = 1 << 30


def settings(**over) -> InsightsSettings:
    """settings.toml's [insights] defaults, with ``over`` replacing some."""
    raw = tomllib.loads((REPO / "config" / "settings.toml").read_text())["insights"]
    raw["gpu_prices"] = tuple(raw["gpu_prices"])
    return dataclasses.replace(InsightsSettings(**raw), **over)


MODELS = {  # model: (containers, GPUs, memory used per GPU in GiB, utilisation, KV cache, queue per replica)
    "llama-3.1-70b": (["vllm-llama-3.1-70b"], ["0", "1", "2", "3"], 135, 0.9, 0.86, 2.0),
    "qwen3-32b": (["vllm-qwen3-32b"], ["4", "5"], 110, 0.6, 0.4, 0.0),
    "bge-m3": (["vllm-embed"], ["6"], 9, 0.05, 0.02, 0.0),
}


def node_answers(window: float = 1800.0, forecast_window: float = 3600.0) -> dict[str, Rows]:
    q, f = queries(window), forecast_queries(forecast_window)
    gpus = [str(i) for i in range(8)]
    util = {g: 0.0 for g in gpus}
    used = {g: 0.5 * GIB for g in gpus}
    answers: dict[str, Rows] = {name: [] for name in q}
    for model, (containers, mine, mem, u, kv, queue) in MODELS.items():
        for g in mine:
            util[g], used[g] = u, mem * GIB
        for c in containers:
            answers["instances"].append(({"container": c, "model_name": model, "vllm_version": "0.11.0"}, 1))
            answers["container_memory"] += [({"container": c, "gpu": g}, mem * GIB) for g in mine]
        answers["kv_cache"].append(({"model_name": model}, kv))
        answers["kv_cache_window"].append(({"model_name": model}, min(1.0, kv * 1.05)))
        answers["queue_per_replica"].append(({"model_name": model}, queue))
    # Docker assigned llama its GPUs by index, qwen by UUID; the embed container has no device
    # request (a static target): its GPU is found from where it holds memory.
    answers["container_gpu"] = [({"container": "vllm-llama-3.1-70b", "gpu": g}, 1) for g in "0123"] + \
        [({"container": "vllm-qwen3-32b", "gpu": f"GPU-{g}000"}, 1) for g in "45"]
    answers["gpu_info"] = [({"gpu": g, "name": "NVIDIA H200", "uuid": f"GPU-{g}000"}, 1) for g in gpus]
    answers["gpu_memory_total"] = [({"gpu": g}, 141 * GIB) for g in gpus]
    answers["gpu_memory_used"] = [({"gpu": g}, used[g]) for g in gpus]
    answers["gpu_utilization"] = [({"gpu": g}, util[g]) for g in gpus]
    answers["gpu_utilization_window"] = [({"gpu": g}, util[g]) for g in gpus]
    answers["ttft_burn_1h"] = [({"model_name": "llama-3.1-70b"}, 0.4), ({"model_name": "qwen3-32b"}, 0.0)]
    out = {q[name]: rows for name, rows in answers.items()}
    # Forecast inputs: llama and qwen have traffic; the embedder has no timing histograms.
    workloads = {"llama-3.1-70b": (4.0, 900, 3000, 180, 600, 9000, 35),
                 "qwen3-32b": (2.5, 600, 2000, 250, 900, 14000, 60)}
    for name in ("prompt_p50", "prompt_p90", "output_p50", "output_p90", "prefill_speed", "decode_speed",
                 "request_rate"):
        index = ("request_rate", "prompt_p50", "prompt_p90", "output_p50", "output_p90", "prefill_speed",
                 "decode_speed").index(name)
        out[f[name]] = [({"model_name": m}, w[index]) for m, w in workloads.items()]
    out[f["replicas"]] = [({"model_name": m}, len(c[0])) for m, c in MODELS.items()]
    # llama: 40 running fill 86 % of the KV cache (46 fit); qwen: 12 running in 40 % (30 fit).
    out[f["slots_by_kv"]] = [({"model_name": "llama-3.1-70b"}, 40 / 0.86), ({"model_name": "qwen3-32b"}, 12 / 0.4)]
    out[f["peak_running"]] = [({"model_name": "llama-3.1-70b"}, 52), ({"model_name": "qwen3-32b"}, 18)]
    return out


def make(url: str, *, password: str = "", **over) -> InsightsExporter:
    source = PrometheusSource(url, "llmwatch" if password else "", password, timeout=5.0)
    return InsightsExporter(source, settings(**over), clock=lambda: NOW, start_forecast=False)


def node(tmp_path: Path) -> str:
    """The node with a forecast: llama scales up (KV cache), bge-m3 consolidates beside qwen3-32b."""
    with FakePrometheus(node_answers()) as prometheus, \
            contextlib.closing(make(prometheus.url, forecast_requests=600)) as exporter:
        exporter.forecast_now()
        return render(exporter)


def prometheus_down(tmp_path: Path) -> str:
    """Prometheus unreachable: up 0, connect errors; prices, SLOs and heartbeat bounds still served."""
    with contextlib.closing(make(dead_url())) as exporter:
        return render(exporter)


def wrong_password(tmp_path: Path) -> str:
    with FakePrometheus(node_answers(), password="right-password-123") as prometheus, \
            contextlib.closing(make(prometheus.url, password="wrong-password-456")) as exporter:
        return render(exporter)


SCENARIOS = {"node": node, "prometheus_down": prometheus_down, "wrong_password": wrong_password}
