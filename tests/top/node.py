"""A small known node for ``llmwatch top``'s tests: one /metrics on loopback with the series the
exporters would publish, and the real Prometheus scraping it with the repository's rule files.

Two models: llama-3.1-70b on two replicas (one of them down and ``starting``), with traffic;
qwen3-32b on one replica, idle (no requests: no latency, no cost per token); an override SLO for
qwen3-32b (TTFT 2.5 s). Four GPUs: GPU 1 had XID 79 two minutes ago, an uncorrected ECC
error and a failed row remap; GPU 3 has no temperature series. Counters grow at fixed rates from the start, so rates
and percentiles are steady; gauges are fixed.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import bcrypt
import httpx
import yaml

from llmwatch.mixin import VLLM_ITL_BOUNDS, VLLM_TTFT_BOUNDS
from llmwatch.simulation.server import FakeServer
from tests.binaries import binary
from tests.procs import REPO, Process, free_port, wait_until

PASSWORD = "top-test-password-7"
GIB = 1 << 30

# container: (model, up, GPUs, requests/s, 5xx share of /v1/ requests)
CONTAINERS = {
    "vllm-llama-a": ("llama-3.1-70b", 1, ["0", "1"], 3.0, 0.02),
    "vllm-llama-b": ("llama-3.1-70b", 0, [], 0.0, 0.0),
    "vllm-qwen": ("qwen3-32b", 1, ["2"], 0.0, 0.0),
}
STATES = {"vllm-llama-a": "running", "vllm-llama-b": "starting", "vllm-qwen": "running"}
# cumulative share of requests at or below each TTFT / inter-token bound (the rest above the largest)
TTFT_SHARE = {0.25: 0.3, 0.5: 0.7, 0.75: 0.9, 1.0: 0.97}
ITL_SHARE = {0.025: 0.4, 0.05: 0.8, 0.075: 0.95, 0.1: 0.99}
GPUS = {  # gpu: (utilisation, memory used GiB, temperature or None, watts)
    "0": (0.9, 120, 64.0, 610.0), "1": (0.85, 118, 66.0, 590.0), "2": (0.1, 60, 41.0, 150.0), "3": (0.0, 0.5, None, 80.0)}


def _line(name: str, labels: dict[str, str], value: float) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{name}{{{inner}}} {value!r}" if labels else f"{name} {value!r}"


def _histogram(name: str, labels: dict, bounds, shares: dict, count: float, mean: float) -> list[str]:
    out, share = [], 0.0
    for bound in bounds:
        share = shares.get(bound, share if bound < max(shares) else 1.0)
        out.append(_line(f"{name}_bucket", {**labels, "le": repr(float(bound))}, count * share))
    out.append(_line(f"{name}_bucket", {**labels, "le": "+Inf"}, count))
    out.append(_line(f"{name}_count", labels, count))
    out.append(_line(f"{name}_sum", labels, count * mean))
    return out


def exposition(now: float, start: float) -> str:
    """The node at ``now`` for a node started at ``start`` (taken when the node starts, not at import: the
    full suite imports this module half an hour before it runs, and the XID would be too old to alert)."""
    elapsed = now - start + 60.0  # counters start as if a minute old
    lines = []
    for container, (model, up, gpus, rate, errors) in CONTAINERS.items():
        c = {"container": container}
        lines.append(_line("llmwatch_vllm_up", c, up))
        lines.append(_line("llmwatch_vllm_container_state", {**c, "state": STATES[container]}, 1))
        lines.append(_line("llmwatch_vllm_instance_info", {**c, "model_name": model, "vllm_version": "0.11.0"}, 1))
        for gpu in gpus:
            lines.append(_line("llmwatch_gpu_container_memory_used_bytes", {**c, "gpu": gpu}, 100 * GIB))
        if not up:
            continue
        m = {**c, "model_name": model}
        requests = rate * elapsed
        lines.append(_line("vllm:request_success_total", {**m, "finished_reason": "stop"}, requests))
        lines.append(_line("vllm:prompt_tokens_total", m, requests * 500))
        lines.append(_line("vllm:generation_tokens_total", m, requests * 200))
        lines.append(_line("vllm:num_requests_waiting", m, 4.0 if rate else 0.0))
        lines.append(_line("vllm:kv_cache_usage_perc", m, 0.62 if rate else 0.01))
        lines += _histogram("vllm:time_to_first_token_seconds", m, VLLM_TTFT_BOUNDS, TTFT_SHARE, requests, 0.4)
        lines += _histogram("vllm:inter_token_latency_seconds", m, VLLM_ITL_BOUNDS, ITL_SHARE, requests * 200, 0.03)
        v1 = {**c, "handler": "/v1/chat/completions", "method": "POST"}
        lines.append(_line("http_requests_total", {**v1, "status": "2xx"}, requests * (1 - errors)))
        lines.append(_line("http_requests_total", {**v1, "status": "5xx"}, requests * errors))
    for gpu, (util, used, temperature, watts) in GPUS.items():
        g = {"gpu": gpu}
        lines.append(_line("llmwatch_gpu_info", {**g, "name": "NVIDIA H200", "uuid": f"GPU-{gpu}000"}, 1))
        lines.append(_line("llmwatch_gpu_up", g, 1))
        lines.append(_line("llmwatch_gpu_utilization_ratio", g, util))
        lines.append(_line("llmwatch_gpu_memory_used_bytes", g, used * GIB))
        lines.append(_line("llmwatch_gpu_memory_total_bytes", g, 141 * GIB))
        if temperature is not None:
            lines.append(_line("llmwatch_gpu_temperature_celsius", g, temperature))
        lines.append(_line("llmwatch_gpu_power_watts", g, watts))
        lines.append(_line("llmwatch_gpu_ecc_volatile_errors_total", {**g, "error": "uncorrected"},
                           1.0 if gpu == "1" else 0.0))
        lines.append(_line("llmwatch_gpu_remapped_rows_failure", g, 1.0 if gpu == "1" else 0.0))
        lines.append(_line("llmwatch_insights_gpu_cost_dollars_per_hour", {**g, "gpu_name": "NVIDIA H200"}, 3.5))
    lines.append(_line("llmwatch_gpu_xid_last_timestamp_seconds", {"gpu": "1", "xid": "79"}, start - 120))
    for gpu, model in (("0", "llama-3.1-70b"), ("1", "llama-3.1-70b"), ("2", "qwen3-32b")):
        lines.append(_line("llmwatch_insights_gpu_allocation_ratio", {"gpu": gpu, "model_name": model}, 1))
    for model, ttft in (("default", 1.0), ("qwen3-32b", 2.5)):
        lines.append(_line("llmwatch_insights_slo_ttft_p95_seconds", {"model_name": model}, ttft))
        lines.append(_line("llmwatch_insights_slo_tpot_p95_seconds", {"model_name": model}, 0.1))
        lines.append(_line("llmwatch_insights_slo_error_ratio", {"model_name": model}, 0.001))
    lines.append(_line("llmwatch_insights_advice_info", {"advice": "scale_up", "beside": "",
                                                         "model_name": "llama-3.1-70b", "reason": "queue"}, 1))
    lines.append(_line("llmwatch_insights_advice_info", {"advice": "none", "beside": "",
                                                         "model_name": "qwen3-32b", "reason": ""}, 1))
    lines.append(_line("llmwatch_insights_heartbeat_min_bpm", {}, 40))
    lines.append(_line("llmwatch_insights_heartbeat_max_bpm", {}, 150))
    return "\n".join(lines) + "\n"


class NodeExporter(FakeServer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.started = time.time()

    def answer(self, path: str, headers: dict[str, str]) -> tuple[int, str, bytes]:
        if path != "/metrics":
            return 404, "text/plain", b"not found\n"
        return 200, "text/plain; version=0.0.4", exposition(time.time(), self.started).encode()


class NodePrometheus:
    """The pinned Prometheus (1 s scrapes and rule evaluations) over :class:`NodeExporter`."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.stack = contextlib.ExitStack()

    def __enter__(self) -> "NodePrometheus":
        node = self.stack.enter_context(NodeExporter())
        port = free_port()
        rules = sorted(str(p) for p in (REPO / "config" / "prometheus" / "rules").glob("*.yml"))
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
                  "rule_files": rules,
                  "scrape_configs": [{"job_name": "llmwatch-node", "static_configs": [
                      {"targets": [node.url.removeprefix("http://")]}]}]}
        (self.tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
        (self.tmp / "web.yml").write_text(yaml.safe_dump({"basic_auth_users": {"llmwatch": hashed}}))
        (self.tmp / "password").write_text(PASSWORD + "\n")
        self.password_file = self.tmp / "password"
        self.url = f"http://127.0.0.1:{port}"
        self.stack.enter_context(Process([
            binary("prometheus"), f"--config.file={self.tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.tmp / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
            f"--web.config.file={self.tmp / 'web.yml'}"], self.tmp / "prometheus.log"))
        wait_until(lambda: self.get("/-/ready").status_code == 200, 60, "Prometheus ready")
        return self

    def get(self, path: str, **params) -> httpx.Response:
        return httpx.get(self.url + path, params=params, auth=("llmwatch", PASSWORD), timeout=5)

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        answer = self.get("/api/v1/query", **params)
        answer.raise_for_status()
        return answer.json()["data"]["result"]

    def __exit__(self, *exc):
        self.stack.close()
