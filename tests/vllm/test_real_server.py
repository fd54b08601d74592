"""The vLLM exporter as a real process: configured by environment, linted by promtool, scraped by Prometheus."""

from __future__ import annotations

import contextlib
import json
import subprocess

import httpx
import pytest

from tests.conftest import require_binary
from tests.fakes.docker_engine import FakeDockerEngine, container, gpus
from tests.procs import Process, dead_url, exporter, free_port, wait_until
from tests.vllm.make_fixtures import FLEET
from tests.vllm.scenarios import fixture_server

pytestmark = pytest.mark.integration


def static(*targets) -> dict[str, str]:
    return {"LLMWATCH_VLLM__DISCOVERY": "false", "LLMWATCH_VLLM__TARGETS": json.dumps(list(targets))}


def test_old_v0_server_is_exposed_under_the_newest_names(tmp_path):
    """The acceptance run: the exporter against simulated servers of every version."""
    with fixture_server("vllm-0.6.4.prom") as server:
        port = free_port()
        with exporter("vllm", port, tmp_path / "vllm.log", static(server.url)):
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    name = server.url.removeprefix("http://")
    assert f'vllm:kv_cache_usage_perc{{container="{name}",model_name="llama-3-8b",vllm_version="0.6.4"}} 0.37' in text
    assert (f'vllm:inter_token_latency_seconds_bucket{{container="{name}",le="2.5",model_name="llama-3-8b",'
            f'vllm_version="0.6.4"}}') in text
    assert f'llmwatch_vllm_up{{container="{name}"}} 1.0' in text
    assert not [line for line in text.split("\n") if line.startswith("vllm:gpu_cache_usage_perc")]


def test_dead_port_gives_up_0_and_a_200(tmp_path):
    url = dead_url()
    port = free_port()
    with exporter("vllm", port, tmp_path / "vllm.log", static(url)) as proc:
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert response.status_code == 200
    assert f'llmwatch_vllm_up{{container="{url.removeprefix("http://")}"}} 0.0' in response.text
    assert "Traceback" not in proc.log()


def test_exposition_passes_promtool_lint_apart_from_vllms_own_names(tmp_path):
    promtool = require_binary("promtool")
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(fixture_server(name)) for name in FLEET]
        port = free_port()
        stack.enter_context(exporter("vllm", port, tmp_path / "vllm.log",
                                     static(*[{"name": f"v{i}", "url": s.url} for i, s in enumerate(servers)])))
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if line.strip() and not line.startswith("vllm:")]  # vLLM's names use ':' and "_toks_per_s"
    assert not problems, problems
    assert "vllm:" in text


def test_real_prometheus_sees_every_version_under_one_name(tmp_path):
    prometheus = require_binary("prometheus")
    with contextlib.ExitStack() as stack:
        servers = {name.removesuffix(".prom"): stack.enter_context(fixture_server(name)) for name in FLEET}
        port = free_port()
        proc = stack.enter_context(exporter("vllm", port, tmp_path / "vllm.log",
                                            static(*[{"name": n, "url": s.url} for n, s in servers.items()])))
        web = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(f"global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: vllm\n"
                          f"    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n")
        prom = stack.enter_context(Process([prometheus, f"--config.file={config}",
                                            f"--storage.tsdb.path={tmp_path / 'data'}",
                                            f"--web.listen-address=127.0.0.1:{web}"], tmp_path / "prometheus.log"))
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{web}/-/ready", timeout=2).status_code == 200
                   or prom.proc.poll() is not None, 60, "Prometheus ready")
        assert prom.proc.poll() is None, prom.log()

        def query(q):
            return httpx.get(f"http://127.0.0.1:{web}/api/v1/query", params={"query": q}, timeout=5).json()["data"]["result"]

        wait_until(lambda: query('count(llmwatch_vllm_up == 1) == 6'), 60, "6 servers up in Prometheus")
        assert query('up{job="vllm"}')[0]["value"][1] == "1"
        # every version but the fresh 0.5.3 has a KV-cache gauge under the newest name
        with_kv = {r["metric"]["container"] for r in query("vllm:kv_cache_usage_perc")}
        assert with_kv == set(servers) - {"vllm-0.5.3-fresh"}
        # inter-token latency from V0's time_per_output_token and V1's new name, one metric
        itl = {r["metric"]["container"] for r in query("vllm:inter_token_latency_seconds_count")}
        assert itl == set(servers) - {"vllm-0.5.3-fresh"}
        # buckets of different versions add up per le: 1.0 exists in old and new bucket sets
        merged = query('sum by (le) (vllm:time_to_first_token_seconds_bucket{le="1.0"})')
        assert len(merged) == 1 and float(merged[0]["value"][1]) > 0
        # the cost rules' join: model per container
        joined = query("vllm:num_requests_running * on (container) group_left (vllm_version) llmwatch_vllm_instance_info")
        assert {r["metric"]["vllm_version"] for r in joined} == {"0.5.3", "0.6.4", "0.10.1", "0.11.0", "0.28.0"}
        assert "level=ERROR" not in proc.log(), proc.log()


def test_discovers_containers_through_docker_host(tmp_path):
    with contextlib.ExitStack() as stack:
        new = stack.enter_context(fixture_server("vllm-0.28.0.prom"))
        old = stack.enter_context(fixture_server("vllm-0.6.4.prom"))
        containers = [container("a" * 64, "vllm-qwen3", image="vllm/vllm-openai:v0.28.0", ports={8000: new.port},
                                device_requests=gpus("0", "1")),
                      container("b" * 64, "vllm-llama", image="vllm/vllm-openai:v0.6.4", cmd=["--port", "8001"],
                                ports={8001: old.port}, device_requests=gpus("2"))]
        engine = stack.enter_context(FakeDockerEngine(tmp_path / "docker.sock", containers))
        port = free_port()
        stack.enter_context(exporter("vllm", port, tmp_path / "vllm.log",
                                     {"DOCKER_HOST": engine.url, "LLMWATCH_VLLM__HOST_ADDRESS": "127.0.0.1"}))
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert 'llmwatch_vllm_up{container="vllm-qwen3"} 1.0' in text
        assert 'llmwatch_vllm_up{container="vllm-llama"} 1.0' in text
        assert 'llmwatch_vllm_container_gpu{container="vllm-llama",gpu="2"} 1.0' in text
        assert 'llmwatch_vllm_docker_up 1.0' in text
        # a container stops: gone from the next scrape, no restart needed
        engine.containers = containers[:1]
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert 'container="vllm-llama"' not in text
        assert 'llmwatch_vllm_up{container="vllm-qwen3"} 1.0' in text
