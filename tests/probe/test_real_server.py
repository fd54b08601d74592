"""The probe exporter as a real process against the demo's simulated engines and proxy."""

from __future__ import annotations

import contextlib
import subprocess

import httpx
import pytest

from llmwatch.simulation.demo import ENGINES, MASTER_KEY, Demo
from tests.conftest import require_binary
from tests.procs import exporter, free_port, samples, wait_until

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
                return text if len(seen) == 6 and all(seen) else None
            text = wait_until(probed, 30, "every engine and every LiteLLM group probed successfully")
    for spec in ENGINES:
        assert f'llmwatch_probe_up{{target="{spec.container}"}} 1.0' in text
        assert f'llmwatch_probe_success{{model="{spec.group}",target="litellm"}} 1.0' in text
    assert MASTER_KEY not in proc.log()
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
