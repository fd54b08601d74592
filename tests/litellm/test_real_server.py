"""The LiteLLM exporter as a real process: key from the environment, linted by promtool, key never shown."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from llmwatch.simulation.litellm import FakeLitellmServer
from tests.conftest import require_binary
from tests.procs import REPO, exporter, free_port

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
    assert 'llmwatch_litellm_info{cache="none",version="1.81.3"} 1.0' in text
    assert "llmwatch_litellm_global_spend_usd 510.75" in text
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
