"""The GPU exporter as a real process: linted by promtool, scraped by a real Prometheus."""

from __future__ import annotations

import subprocess

import httpx
import pytest

from tests.conftest import require_binary
from tests.procs import SIMULATED_GPU, Process, exporter, free_port, wait_until

pytestmark = pytest.mark.integration
NO_CONTAINERS = {"LLMWATCH_GPU__CONTAINERS": "false"}


@pytest.fixture
def gpu_exporter(tmp_path):
    port = free_port()
    with exporter("gpu", port, tmp_path / "gpu.log", NO_CONTAINERS, command=SIMULATED_GPU) as proc:
        yield f"127.0.0.1:{port}", proc


def test_exposition_passes_promtool_lint(gpu_exporter):
    promtool = require_binary("promtool")
    address, _ = gpu_exporter
    text = httpx.get(f"http://{address}/metrics").text
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_real_prometheus_scrapes_every_gpu(gpu_exporter, tmp_path):
    prometheus = require_binary("prometheus")
    address, proc = gpu_exporter
    web = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(f"global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: gpu\n"
                      f"    static_configs: [{{targets: ['{address}']}}]\n")
    with Process([prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                  f"--web.listen-address=127.0.0.1:{web}"], tmp_path / "prometheus.log") as prom:
        api = f"http://127.0.0.1:{web}/api/v1/query"
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{web}/-/ready", timeout=2).status_code == 200
                   or prom.proc.poll() is not None, 60, "Prometheus ready")
        assert prom.proc.poll() is None, prom.log()

        def query(q):
            return httpx.get(api, params={"query": q}, timeout=2).json()["data"]["result"]

        wait_until(lambda: query("count(llmwatch_gpu_up == 1) == 8"), 60, "8 GPUs up in Prometheus")
        assert query('up{job="gpu"}')[0]["value"][1] == "1"
        assert float(query("sum(llmwatch_gpu_memory_total_bytes)")[0]["value"][1]) == 8 * 150_754_820_096
        assert query('llmwatch_gpu_info{name="NVIDIA H200"}')
        assert "level=ERROR" not in proc.log(), proc.log()


@pytest.mark.parametrize("name", ["h200_serving", "h100_vm_mig", "gpu_lost", "nvml_absent"])
def test_every_scenario_passes_promtool_lint(name, tmp_path):
    from tests.gpu.scenarios import SCENARIOS

    promtool = require_binary("promtool")
    text = SCENARIOS[name](tmp_path)
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
