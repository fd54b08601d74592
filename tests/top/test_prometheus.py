"""``llmwatch top`` against the real Prometheus (the pinned build) with the repository's rules,
over the small known node of tests/top/node.py: ``--once --json`` equals PromQL's answers field
by field, the text and live views show it, and a wrong password or no Prometheus is one line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from tests.conftest import require_binary
from tests.procs import REPO, dead_url, wait_until
from tests.top.compare import assert_equals_promql, firing
from tests.top.node import NodePrometheus

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    require_binary("prometheus")
    with NodePrometheus(tmp_path_factory.mktemp("top-prometheus")) as prom:
        # ready when the last rules in each chain have data two seconds back (where the tests look)
        # and the instant alerts fire
        chains = ("model_name:llmwatch_cost_dollars_per_million_tokens:allocation",
                  "model_name:vllm_time_to_first_token_seconds:p95_5m", "container:vllm_http_errors:ratio_rate5m",
                  "cluster:llmwatch_heartbeat_bpm", 'ALERTS{alertname="GpuRowRemapFailure", alertstate="firing"}',
                  'ALERTS{alertname="GpuXidHardwareError", alertstate="firing"}')
        wait_until(lambda: all(prom.query(q, time.time() - 2.0) for q in chains), 300,
                   "recorded series and firing alerts")
        yield prom


def top(prom: NodePrometheus, *args: str, password_file=None, timeout: float = 60) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "llmwatch", "top", "--url", prom.url,
               "--password-file", str(password_file or prom.password_file), *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def test_once_json_equals_promql_field_by_field(prometheus):
    prom = prometheus
    at = time.time() - 2.0  # every scrape and rule evaluation stamped before this has been stored
    for _ in range(3):  # an alert may start firing while top runs: compare on a stable set
        before = firing(prom.get)
        result = top(prom, "--once", "--json", "--time", f"{at:.3f}")
        after = firing(prom.get)
        if before == after:
            break
    assert result.returncode == 0, result.stderr
    snap = json.loads(result.stdout)
    assert snap["time"] == pytest.approx(at, abs=1e-3) and snap["prometheus"] == prom.url and snap["problems"] == []

    assert_equals_promql(snap, prom.query, at, after)
    models = {m["model"]: m for m in snap["models"]}
    assert sorted(models) == ["llama-3.1-70b", "qwen3-32b"]
    llama, qwen = models["llama-3.1-70b"], models["qwen3-32b"]
    # the known node: two llama replicas, one down and starting; qwen idle, so no latency or cost per token
    assert (llama["replicas_up"], llama["replicas_total"], llama["replicas_starting"], llama["replicas_exited"]) == \
        (1, 2, 1, 0)
    assert llama["error_ratio"] == pytest.approx(0.02, rel=1e-6)
    assert qwen["requests_per_second"] == 0 and qwen["ttft_p95_seconds"] is None and qwen["error_ratio"] is None
    assert qwen["dollars_per_million_tokens"] is None and qwen["dollars_per_hour"] == 3.5
    # SLOs: the default for llama, qwen's own override
    assert (llama["ttft_slo_seconds"], qwen["ttft_slo_seconds"]) == (1.0, 2.5)
    assert (llama["advice"], llama["advice_reason"], qwen["advice"]) == ("scale_up", "queue", "none")

    gpus = {g["gpu"]: g for g in snap["gpus"]}
    assert list(gpus) == ["0", "1", "2", "3"]
    assert gpus["3"]["temperature_celsius"] is None  # no series: null, not 0
    assert gpus["1"]["xid_recent"] == ["79"] and gpus["0"]["xid_recent"] == []
    assert gpus["0"]["containers"] == ["vllm-llama-a"] and gpus["3"]["containers"] == []
    assert {"GpuRowRemapFailure", "GpuXidHardwareError"} <= {a["alertname"] for a in snap["alerts"]}


def test_once_text_shows_the_tables(prometheus):
    result = top(prometheus, "--once", "--width", "200")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for needle in ("Models", "llama-3.1-70b", "1/2 (1 starting)", "scale_up (queue)", "GPUs", "xid 79 ecc 1",
                   "Firing alerts", "GpuRowRemapFailure", "heartbeat"):
        assert needle in text, (needle, text)
    qwen = next(line for line in text.splitlines() if "qwen3-32b" in line)
    assert "–" in qwen  # no traffic: no latency, shown as a dash


def test_a_wrong_password_is_one_line(prometheus, tmp_path):
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password")
    result = top(prometheus, "--once", password_file=wrong)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"llmwatch top: Prometheus refused the password (HTTP 401) at {prometheus.url}")


def test_no_prometheus_is_one_line():
    url = dead_url()
    result = subprocess.run([sys.executable, "-m", "llmwatch", "top", "--once", "--url", url],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"llmwatch top: cannot reach Prometheus at {url}")


class Tmux:
    """A private tmux server (its own socket, no user config) with one fixed-size session."""

    def __init__(self, command: list[str]):
        self.socket = f"llmwatch-top-{uuid.uuid4().hex[:8]}"
        self.tmux(["new-session", "-d", "-s", "top", "-x", "180", "-y", "50", *command])

    def tmux(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args], capture_output=True,
                              text=True, timeout=10, check=check)

    def pane(self) -> str:
        result = self.tmux(["capture-pane", "-p", "-t", "top"], check=False)
        return result.stdout if result.returncode == 0 else ""

    def keys(self, *keys: str) -> None:
        self.tmux(["send-keys", "-t", "top", *keys])

    def showing(self, *needles: str) -> str:
        """The pane's text if it shows every needle, else "" (for wait_until)."""
        text = self.pane()
        return text if all(n in text for n in needles) else ""

    def alive(self) -> bool:
        return self.tmux(["has-session", "-t", "top"], check=False).returncode == 0

    def close(self) -> None:
        self.tmux(["kill-server"], check=False)


def test_live_view_in_a_real_terminal(prometheus):
    if shutil.which("tmux") is None:
        message = "tmux not installed (scripts/test installs it as root)"
        pytest.fail(message) if os.environ.get("CI") == "true" else pytest.skip(message)
    command = [sys.executable, "-m", "llmwatch", "top", "--url", prometheus.url,
               "--password-file", str(prometheus.password_file), "--interval", "1"]
    # the pane's size, not a COLUMNS/LINES inherited from the test's environment, sizes the view
    term = Tmux(["env", "-C", str(REPO), "-u", "COLUMNS", "-u", "LINES", "TERM=xterm-256color", *command])
    try:
        try:
            first = wait_until(lambda: term.showing("llama-3.1-70b", "GpuRowRemapFailure"), 60,
                               "the model table and the alerts in the pane")
        except AssertionError as e:
            raise AssertionError(f"{e}; session alive: {term.alive()}; the pane:\n{term.pane()}") from None
        assert "Models (sort: model)" in first and "GPUs (sort: gpu)" in first and "[all]" in first

        term.keys("Tab")  # the models pane alone
        models = wait_until(lambda: term.showing("[models]"), 20, "the models pane")
        assert "GPUs (sort" not in models and "llama-3.1-70b" in models

        term.keys("s")  # next sort of the models pane
        wait_until(lambda: "Models (sort: requests/s)" in term.pane(), 20, "the models sorted by request rate")

        term.keys("Tab")  # GPUs
        gpus = wait_until(lambda: term.showing("[gpus]"), 20, "the GPUs pane")
        assert "xid 79" in gpus and "Models (sort" not in gpus

        term.keys("/", "q", "w", "e", "n", "Enter")  # filter: 'q' typed into the filter does not quit
        filtered = wait_until(lambda: term.showing("filter: qwen"), 20, "the filter shown")
        assert "vllm-qwen" in filtered and "vllm-llama-a" not in filtered and term.alive()

        term.keys("q")
        wait_until(lambda: not term.alive(), 20, "top to exit on q")
    finally:
        term.close()
