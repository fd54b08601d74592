"""The LiteLLM exporter against a real LiteLLM proxy (both tested versions, without a database) and
as a real process against the simulated one (key from the environment, linted by promtool, key
never shown)."""

from __future__ import annotations

import contextlib
import subprocess
import sys

import httpx
import pytest

from llmwatch.queueing.config import MonoCluster
from llmwatch.simulation.demo.engine import LiveEngine
from llmwatch.simulation.demo.servers import DemoVllmServer
from llmwatch.simulation.litellm import FakeLitellmServer, model_info_entry
from llmwatch.simulation.vllm import Engine
from tests.conftest import require_binary
from tests.litellm.real_proxy import VERSIONS, LitellmProxy, hosted_vllm
from tests.litellm.scenarios import make_exporter
from tests.procs import REPO, exporter, free_port, render, samples, value

pytestmark = pytest.mark.integration


def env(server, key="sk-master-9f2c"):
    return {"LLMWATCH_LITELLM__URL": server.url, "LLMWATCH_LITELLM__MASTER_KEY": key}


def test_exporter_process_reads_the_proxy_and_passes_promtool_lint(tmp_path):
    promtool = require_binary("promtool")
    with FakeLitellmServer(master_key="sk-master-9f2c") as server:
        port = free_port()
        with exporter("litellm", port, tmp_path / "litellm.log", env(server)) as proc:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert "llmwatch_litellm_up 1.0" in text
    assert 'llmwatch_litellm_info{cache="none",version="1.108.7"} 1.0' in text
    assert "llmwatch_litellm_spend_30d_usd 510.75" in text
    assert "sk-master-9f2c" not in proc.log()
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_key_is_logged_as_an_auth_problem_without_the_key(tmp_path):
    with FakeLitellmServer(master_key="sk-master-9f2c") as server:
        port = free_port()
        with exporter("litellm", port, tmp_path / "litellm.log", env(server, key="sk-typo-1234")) as proc:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert "llmwatch_litellm_up 0.0" in text
    assert 'llmwatch_litellm_scrape_errors_total{reason="auth"}' in text
    log = proc.log()
    assert "LLMWATCH_LITELLM__MASTER_KEY" in log and "sk-typo-1234" not in log


def test_check_config_masks_the_key_and_rejects_a_bad_url():
    run = lambda extra: subprocess.run([sys.executable, "-m", "llmwatch", "litellm", "--check-config"], cwd=REPO,
                                       capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", **extra})
    ok = run({"LLMWATCH_LITELLM__MASTER_KEY": "sk-secret-77"})
    assert ok.returncode == 0, ok.stderr
    assert "sk-secret-77" not in ok.stdout and 'master_key = "********"' in ok.stdout
    bad = run({"LLMWATCH_LITELLM__URL": "litellm:4000"})
    assert bad.returncode == 2
    assert "litellm.url (env LLMWATCH_LITELLM__URL)" in bad.stderr and "http://litellm:4000" in bad.stderr


FAST = MonoCluster(gpus=4, prefill_tokens_per_s=100000.0, decode_tokens_per_s=2000.0)


def vllm(model: str) -> DemoVllmServer:
    return DemoVllmServer(LiveEngine(Engine(model_name=model, root=model), FAST, gauges=False), "0.11.0")


@pytest.mark.parametrize("version", VERSIONS)
def test_exporter_reads_a_real_proxy(version, tmp_path):
    """Version, callbacks, readiness, deployments and every price (per second too) from a real proxy
    in front of simulated vLLM servers; the exporter's scrapes reach no model."""
    with vllm("llama-8b") as llama_a, vllm("llama-8b") as llama_b, vllm("qwen-7b") as qwen:
        model_list = [hosted_vllm("llama", llama_a, "d-llama-a", input_cost_per_token=2e-7, output_cost_per_token=6e-7),
                      hosted_vllm("llama", llama_b, "d-llama-b", input_cost_per_token=2e-7, output_cost_per_token=6e-7),
                      hosted_vllm("qwen", qwen, "d-qwen", input_cost_per_second=0.0011, output_cost_per_second=0.0022)]
        with LitellmProxy(tmp_path, model_list, version=version) as proxy:
            print(f"\nLiteLLM {version} answered after {proxy.start_seconds:.1f} s")
            servers = (llama_a, llama_b, qwen)
            before = [len(server.requests) for server in servers]
            with contextlib.closing(make_exporter(proxy.url, key=proxy.master_key, metadata_seconds=0)) as scraper:
                text = render(scraper)
                text = render(scraper)  # details and /model/info asked again: still no model called
            upstream = [r for server, n in zip(servers, before) for r in server.requests[n:]]
            real_model_info = httpx.get(f"{proxy.url}/model/info", headers=proxy.headers(), timeout=10).json()
            outbound = list(proxy.outbound)
    assert not upstream, f"the exporter's scrapes made the proxy ask its models: {upstream}"
    assert not outbound, f"the proxy reached outside loopback: {outbound}"
    assert value(text, "llmwatch_litellm_up") == 1
    assert value(text, "llmwatch_litellm_alive") == 1 and value(text, "llmwatch_litellm_ready") == 1
    assert "llmwatch_litellm_db_connected" not in text  # no database configured: nothing lost
    assert value(text, "llmwatch_litellm_info", version=version, cache="none") == 1
    callbacks = {dict(ls)["callback"] for (n, ls), _ in samples(text).items() if n == "llmwatch_litellm_success_callback_info"}
    assert "sync_deployment_callback_on_success" in callbacks  # LiteLLM's own names, not "prometheus"
    deployments = {dict(ls)["model_id"]: dict(ls) for (n, ls), _ in samples(text).items()
                   if n == "llmwatch_litellm_deployment_info"}
    assert set(deployments) == {"d-llama-a", "d-llama-b", "d-qwen"}
    assert deployments["d-qwen"] | {} == deployments["d-qwen"] and deployments["d-qwen"]["model_group"] == "qwen"
    assert deployments["d-llama-a"]["api_provider"] == "hosted_vllm"
    assert deployments["d-llama-b"]["api_base"].endswith("/v1") and deployments["d-llama-b"]["model_group"] == "llama"
    price = lambda model_id, name: value(text, "llmwatch_litellm_deployment_price_usd", model_id=model_id, price=name)  # noqa: E731
    assert price("d-qwen", "input_cost_per_second") == 0.0011
    assert price("d-qwen", "output_cost_per_second") == 0.0022
    assert price("d-llama-a", "input_cost_per_token") == 2e-7
    assert value(text, "llmwatch_litellm_deployment_cost_per_token_usd", model_id="d-llama-b", direction="output") == 6e-7
    # the simulated proxy answers /model/info with the same fields as this real one
    real = real_model_info["data"][0]
    simulated = model_info_entry({"model_name": "g", "model": "hosted_vllm/x", "api_base": "http://x/v1", "id": "i",
                                  "provider": "hosted_vllm", "mode": None, "prices": {}}, version)
    assert set(simulated["model_info"]) == set(real["model_info"])
    assert set(simulated) == set(real)
