"""The probe exporter as a real process against the demo's simulated engines and proxy."""

from __future__ import annotations

import contextlib
import subprocess

import httpx
import pytest

from llmwatch.simulation.demo import ENGINES, MASTER_KEY, Demo
from tests.conftest import require_binary
from tests.litellm.real_proxy import VERSIONS, LitellmProxy, hosted_vllm
from tests.procs import exporter, free_port, samples, value, wait_until

pytestmark = pytest.mark.integration


def test_exporter_process_probes_engines_and_the_proxy_and_passes_promtool_lint(tmp_path):
    promtool = require_binary("promtool")
    with contextlib.closing(Demo(fixed_ports=False).start()) as demo:
        urls = demo.urls()
        targets = ", ".join(f'{{name = "{s.container}", url = "{urls[s.container]}"}}' for s in ENGINES)
        env = {"LLMWATCH_VLLM__DISCOVERY": "false", "LLMWATCH_VLLM__TARGETS": f"[{targets}]",
               "LLMWATCH_LITELLM__URL": urls["litellm"], "LLMWATCH_LITELLM__MASTER_KEY": MASTER_KEY,
               "LLMWATCH_PROBE__INTERVAL_SECONDS": "1", "LLMWATCH_PROBE__MAX_TOKENS": "4"}
        port = free_port()
        with exporter("probe", port, tmp_path / "probe.log", env) as proc:
            def probed():
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
                seen = [v for (name, _), v in samples(text).items() if name == "llmwatch_probe_success"]
                return text if len(seen) == 5 and all(seen) else None
            text = wait_until(probed, 30, "every engine and every LiteLLM chat group probed successfully")
    for spec in ENGINES:
        assert f'llmwatch_probe_up{{target="{spec.container}"}} 1.0' in text
        if spec.group == "embed":  # the simulated proxy's model_info says mode: embedding
            assert value(text, "llmwatch_probe_skipped_info", target="litellm", model="embed",
                         reason="mode_embedding") == 1
        else:
            assert f'llmwatch_probe_success{{model="{spec.group}",target="litellm"}} 1.0' in text
    assert MASTER_KEY not in proc.log()
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def through_proxy(proxy) -> dict[str, str]:
    """The probe's settings to probe only through this proxy, every second, four tokens at a time."""
    return {"LLMWATCH_VLLM__DISCOVERY": "false", "LLMWATCH_VLLM__TARGETS": "[]",
            "LLMWATCH_LITELLM__URL": proxy.url, "LLMWATCH_LITELLM__MASTER_KEY": MASTER_KEY,
            "LLMWATCH_PROBE__INTERVAL_SECONDS": "1", "LLMWATCH_PROBE__MAX_TOKENS": "4"}


@pytest.mark.parametrize("version", VERSIONS)
def test_probe_streams_through_a_real_litellm_proxy(version, tmp_path):
    """The "through LiteLLM" path with real streaming: the real proxy in front of the demo's engines."""
    with contextlib.closing(Demo(role="vllm", fixed_ports=False).start()) as demo:
        model_list = [hosted_vllm(spec.group, demo.engines[spec.container], f"d-{spec.group}") for spec in ENGINES]
        with LitellmProxy(tmp_path, model_list, version=version, master_key=MASTER_KEY) as proxy:
            port = free_port()
            with exporter("probe", port, tmp_path / "probe.log", through_proxy(proxy)):
                def probed():
                    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
                    seen = {dict(ls).get("model"): v for (name, ls), v in samples(text).items()
                            if name == "llmwatch_probe_success" and dict(ls).get("target") == "litellm"}
                    return text if len(seen) == len(ENGINES) and all(seen.values()) else None
                text = wait_until(probed, 60, f"every model group probed through LiteLLM {version}")
            served = {spec.container: [r for r in demo.engines[spec.container].requests if "completions" in r]
                      for spec in ENGINES}
            outbound = list(proxy.outbound)
    assert all(served.values()), served  # the probes really reached the engines through the proxy
    assert not outbound
    for spec in ENGINES:
        assert value(text, "llmwatch_probe_ttft_seconds_count", target="litellm", model=spec.group) >= 1


@pytest.mark.parametrize("version", VERSIONS)
def test_a_real_proxy_gets_probes_of_its_chat_group_only_and_labels_them_as_the_probe(version, tmp_path):
    """LiteLLM's own /model/info says which group embeds; its own metrics carry the probe's User-Agent,
    which the LiteLLM board filters on."""
    chat_spec, embed_spec = ENGINES[0], ENGINES[1]
    with contextlib.closing(Demo(role="vllm", fixed_ports=False).start()) as demo:
        embed = hosted_vllm("embed", demo.engines[embed_spec.container], "d-embed")
        embed["model_info"]["mode"] = "embedding"
        model_list = [hosted_vllm(chat_spec.group, demo.engines[chat_spec.container], "d-chat"), embed]
        with LitellmProxy(tmp_path, model_list, version=version, master_key=MASTER_KEY) as proxy:
            port = free_port()
            with exporter("probe", port, tmp_path / "probe.log", through_proxy(proxy)):
                def probed():
                    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
                    ok = samples(text).get(("llmwatch_probe_success",
                                            frozenset({("target", "litellm"), ("model", chat_spec.group)})))
                    return text if ok else None
                text = wait_until(probed, 60, f"the chat group probed through LiteLLM {version}")
            litellm_metrics = proxy.metrics()
            embedded = [r for r in demo.engines[embed_spec.container].requests if "completions" in r]
    assert value(text, "llmwatch_probe_skipped_info", target="litellm", model="embed", reason="mode_embedding") == 1
    assert not [ls for (name, ls) in samples(text) if name == "llmwatch_probe_requests_total"
                and ("model", "embed") in ls]
    assert not embedded
    probe_requests = [(dict(ls), v) for (name, ls), v in samples(litellm_metrics).items()
                      if name == "litellm_proxy_total_requests_metric_total"
                      and dict(ls).get("user_agent", "").startswith("llmwatch-probe/")]
    assert probe_requests and all(ls["requested_model"] == chat_spec.group for ls, _ in probe_requests)
