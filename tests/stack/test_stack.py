"""The stack end to end: the real Prometheus and Alertmanager docker-compose.yml pins (or Debian's
2.42 and 0.25 without Go; see tests/binaries.py) and node-exporter with the
repository's configuration, every llmwatch exporter as a process, simulated upstreams.
See tests/stack/stack.py for what differs from docker-compose.yml."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import pytest
import yaml

from tests.conftest import require_binary
from tests.procs import REPO, wait_until
from tests.stack.stack import EXTERNAL_URL, NOT_RUNNABLE_HERE, PASSWORD, Stack
from tests.top.compare import assert_equals_promql, firing

pytestmark = pytest.mark.integration

EXPECTED_JOBS = {"prometheus", "alertmanager", "node", "cadvisor", "llmwatch-gpu", "llmwatch-vllm", "llmwatch-insights",
                 "llmwatch-litellm", "llmwatch-langfuse", "llmwatch-probe", "litellm"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    for binary in ("prometheus", "alertmanager", "node_exporter"):
        require_binary(binary)
    running = Stack(tmp_path_factory.mktemp("stack"))
    try:
        yield running.start()
    except AssertionError as e:
        raise AssertionError(f"{e}\n{running.logs()}") from None
    finally:
        running.close()


def test_only_compose_jobs_that_cannot_run_here_are_left_out(stack):
    config = yaml.safe_load((REPO / "config" / "prometheus" / "prometheus.yml").read_text())
    assert {job["job_name"] for job in config["scrape_configs"]} == EXPECTED_JOBS | NOT_RUNNABLE_HERE


def test_prometheus_asks_for_its_password(stack):
    assert httpx.get(f"{stack.prometheus_url}/api/v1/targets", timeout=5).status_code == 401
    assert httpx.get(f"{stack.prometheus_url}/-/ready", auth=("llmwatch", "wrong"), timeout=5).status_code == 401
    assert stack.get("/-/ready").status_code == 200


def test_every_target_is_up(stack):
    def all_up():
        targets = stack.api("targets")["activeTargets"]
        return {t["labels"]["job"] for t in targets} == EXPECTED_JOBS and all(t["health"] == "up" for t in targets)

    try:
        wait_until(all_up, 60, "every target up")
    except AssertionError:
        states = [(t["labels"]["job"], t["health"], t["lastError"]) for t in stack.api("targets")["activeTargets"]]
        raise AssertionError(f"targets: {states}\n{stack.logs()}") from None
    # LiteLLM's own /metrics (the real proxy's: 401 without the key) was read with the master key
    assert not stack.proxy.outbound
    up = {r["metric"]["job"]: r["value"][1] for r in stack.query("up")}
    assert set(up.values()) == {"1"}, up


def test_every_rule_evaluates_without_error(stack):
    def all_evaluated():
        groups = stack.api("rules")["groups"]
        return groups if all(g["lastEvaluation"] > "2000" for g in groups) else None

    groups = wait_until(all_evaluated, 60, "every rule group evaluated")
    rules = [r for g in groups for r in g["rules"]]
    broken = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not broken, broken
    committed = [yaml.safe_load(f.read_text())["groups"] for f in (REPO / "config" / "prometheus" / "rules").glob("*.yml")]
    assert len(groups) == sum(len(g) for g in committed)
    assert len(rules) == sum(len(group["rules"]) for g in committed for group in g)
    failures = stack.query("sum(prometheus_rule_evaluation_failures_total)")
    assert failures[0]["value"][1] == "0"

    # Traffic on one simulated server (first tokens at 0.3 s) gives the recording rules real values.
    engine = stack.vllm["vllm-llama-3.1-70b"].engines[0]

    def ttft_p95():
        engine.finish(prompt=500, generated=100, ttft=0.3, itl=0.02, queue=0.01)
        found = {r["metric"]["model_name"]: float(r["value"][1])
                 for r in stack.query("model_name:vllm_time_to_first_token_seconds:p95_5m")}
        # once the 0.3 s requests dominate the 5-minute window, the p95 lies in the bucket holding
        # 0.3 s in either bucket layout (earlier evaluations may still see the start-up traffic and the probe's fast requests)
        return found if 0.25 <= found.get(engine.model_name, 0) <= 0.5 else None

    p95 = wait_until(ttft_p95, 60, "a TTFT p95 of the 0.3 s traffic recorded for its model", interval=0.2)
    assert 0.25 <= p95[engine.model_name] <= 0.5
    tokens = {r["metric"]["model_name"]: float(r["value"][1]) for r in stack.query("model_name:vllm_generation_tokens:rate5m")}
    assert tokens[engine.model_name] > 0
    series = stack.query("prometheus_tsdb_head_series")[0]["value"][1]
    print(f"\nstack test: {len(rules)} rules in {len(groups)} groups; active series in the head: {series}")


def test_watchdog_reaches_its_receiver(stack):
    post = stack.webhook.wait_for("/watchdog", lambda p: p["commonLabels"].get("alertname") == "Watchdog", 90)
    assert post["status"] == "firing"
    assert post["commonLabels"]["severity"] == "none"


def test_alertmanager_silences_a_warning_under_its_critical(stack):
    """Inhibition, which amtool cannot test offline: TTFT critical and warning for one model."""
    base = {"alertname": "VllmTtftP95High", "model_name": "inhibition-test"}
    alerts = [{"labels": base | {"severity": severity}, "annotations": {"summary": "test"}}
              for severity in ("critical", "warning")]
    alerts.append({"labels": {"alertname": "VllmTtftP95High", "model_name": "other", "severity": "warning"},
                   "annotations": {"summary": "test"}})
    httpx.post(f"{stack.alertmanager_url}/api/v2/alerts", json=alerts, timeout=5).raise_for_status()

    def states():
        got = httpx.get(f"{stack.alertmanager_url}/api/v2/alerts",
                        params={"filter": 'alertname="VllmTtftP95High"'}, timeout=5).json()
        found = {(a["labels"]["model_name"], a["labels"]["severity"]): a["status"]["state"] for a in got}
        return found if len(found) == 3 else None

    found = wait_until(states, 30, "the three test alerts in Alertmanager")
    assert found == {("inhibition-test", "critical"): "active", ("inhibition-test", "warning"): "suppressed",
                     ("other", "warning"): "active"}


def test_llmwatch_top_shows_what_prometheus_answers(stack, tmp_path):
    """``llmwatch top --once --json`` equals PromQL's answers at the same instant, field by field."""
    def at_time(expr: str, t: float) -> list[dict]:
        return stack.api("query", query=expr, time=f"{t:.3f}")["result"]

    # data where the test looks, two seconds back: models, GPUs, request rates, the insights exporter's advice
    ready = ("llmwatch_vllm_instance_info", "llmwatch_gpu_up", "model_name:vllm_requests:rate5m",
             "llmwatch_insights_advice_info")
    wait_until(lambda: all(at_time(q, time.time() - 2.0) for q in ready), 60, "models, GPUs, rates and advice")
    password = tmp_path / "password"
    password.write_text(PASSWORD)
    at = time.time() - 2.0  # every scrape and rule evaluation stamped before this has been stored
    for _ in range(3):  # an alert may start firing while top runs: compare on a stable set
        before = firing(stack.get)
        result = subprocess.run([sys.executable, "-m", "llmwatch", "top", "--once", "--json", "--time", f"{at:.3f}",
                                 "--url", stack.prometheus_url, "--password-file", str(password)],
                                cwd=REPO, capture_output=True, text=True, timeout=60)
        after = firing(stack.get)
        if before == after:
            break
    assert result.returncode == 0, result.stderr
    snap = json.loads(result.stdout)
    assert_equals_promql(snap, at_time, at, after)
    assert snap["models"] and len(snap["gpus"]) == 8  # the simulated node's GPUs


def test_a_killed_vllm_instance_pages_through_alertmanager(stack):
    stack.vllm["vllm-qwen3-32b"].close()

    def is_down(post):
        return post["status"] == "firing" and any(
            a["labels"].get("alertname") == "VllmInstanceDown" and a["labels"].get("container") == "vllm-qwen3-32b"
            for a in post["alerts"])

    post = stack.webhook.wait_for("/alerts", is_down, 150)
    alert = next(a for a in post["alerts"] if a["labels"]["alertname"] == "VllmInstanceDown")
    assert alert["labels"]["severity"] == "critical"
    assert alert["annotations"]["runbook_url"] == f"{EXTERNAL_URL}/consoles/runbooks.html#vllminstancedown"
    # the other server is still up, and its series are still there
    up = {r["metric"]["container"]: r["value"][1] for r in stack.query("llmwatch_vllm_up")}
    assert up == {"vllm-llama-3.1-70b": "1", "vllm-qwen3-32b": "0"}
