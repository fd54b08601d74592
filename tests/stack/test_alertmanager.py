"""Alertmanager's configuration and the stack-config step that completes it from .env, checked with
amtool (the version docker-compose.yml pins, or Debian's 0.25 without Go): the committed file, every
receiver combination, the routing tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import bcrypt
import httpx
import pytest
import yaml
from hypothesis import given, settings, strategies as st

from llmwatch.tools.stack_config import render
from tests.conftest import require_binary
from tests.procs import Process, free_port, wait_until

pytestmark = pytest.mark.integration  # promtool / amtool, real binaries

REPO = Path(__file__).resolve().parents[2]
ALERTMANAGER = REPO / "config" / "alertmanager"
BASE = {"PROMETHEUS_PASSWORD": "a-long-password-123", "COMPOSE_PROFILES": "gpu,vllm"}
ALL_RECEIVERS = BASE | {
    "ALERT_WEBHOOK_URL": "https://hooks.example.com/llmwatch", "ALERT_SLACK_API_URL": "https://hooks.slack.com/services/T/B/x",
    "ALERT_SLACK_CHANNEL": "#llm-alerts", "ALERT_PAGERDUTY_ROUTING_KEY": "R0UT1NGKEY",
    "ALERT_EMAIL_TO": "oncall@example.com", "ALERT_SMTP_SMARTHOST": "smtp.example.com:587",
    "ALERT_SMTP_FROM": "llmwatch@example.com", "ALERT_SMTP_USERNAME": "llmwatch", "ALERT_SMTP_PASSWORD": "smtp-secret",
    "WATCHDOG_URL": "https://hc-ping.com/0000"}


def amtool(*args: str, cwd: Path = ALERTMANAGER) -> subprocess.CompletedProcess:
    return subprocess.run([require_binary("amtool"), *args], cwd=cwd, capture_output=True, text=True)


def stack_config(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``llmwatch stack-config`` in a clean environment, importing the same llmwatch as the tests."""
    python_path = {"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}
    return subprocess.run([sys.executable, "-m", "llmwatch", "stack-config", "--out", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", **python_path, **env})


def integrations(config_path: Path) -> dict[str, set[str]]:
    config = yaml.safe_load(config_path.read_text())
    return {r["name"]: {k for k in r if k.endswith("_configs")} for r in config["receivers"]}


def test_committed_config_passes_amtool_and_sends_nothing():
    result = amtool("check-config", "alertmanager.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert not any(integrations(ALERTMANAGER / "alertmanager.yml").values())


@pytest.mark.parametrize(("labels", "receiver"), [
    ({"alertname": "Watchdog", "severity": "none"}, "watchdog"),
    ({"alertname": "VllmInstanceDown", "severity": "critical", "container": "vllm-a"}, "critical"),
    ({"alertname": "GpuThermalSlowdown", "severity": "warning", "gpu": "3"}, "warning"),
    ({"alertname": "LitellmKeyExpiringSoon", "severity": "info"}, "default"),
    ({"alertname": "SomethingNew"}, "default"),
    # the demo's alerts (simulated="true" on every demo target) notify no one, whatever their severity
    ({"alertname": "VllmTtftP95High", "severity": "critical", "simulated": "true", "model_name": "demo"}, "simulated"),
    ({"alertname": "GpuLost", "severity": "critical", "simulated": "true", "gpu": "0"}, "simulated"),
    ({"alertname": "LitellmDeploymentUnhealthy", "severity": "warning", "simulated": "true"}, "simulated"),
    ({"alertname": "GpuLost", "severity": "critical", "simulated": "false", "gpu": "0"}, "critical"),
])
def test_routes(labels, receiver):
    result = amtool("config", "routes", "test", "--config.file=alertmanager.yml", f"--verify.receivers={receiver}",
                    *[f"{k}={v}" for k, v in labels.items()])
    assert result.returncode == 0, result.stdout + result.stderr


def test_route_test_can_fail():
    result = amtool("config", "routes", "test", "--config.file=alertmanager.yml", "--verify.receivers=critical",
                    "alertname=Watchdog", "severity=none")
    assert result.returncode != 0


def test_templates_render():
    result = amtool("template", "render", "--template.glob=templates/*.tmpl",
                    '--template.text={{ template "llmwatch.title" . }}|{{ template "llmwatch.text" . }}')
    assert result.returncode == 0, result.stderr
    assert "Runbook:" not in result.stdout or "(in the llmwatch repository)" in result.stdout


def test_every_receiver_configured_passes_amtool(tmp_path):
    result = stack_config(tmp_path, ALL_RECEIVERS)
    assert result.returncode == 0, result.stderr
    config = tmp_path / "alertmanager" / "alertmanager.yml"
    assert integrations(config) == {
        "default": set(),
        "critical": {"webhook_configs", "slack_configs", "email_configs", "pagerduty_configs"},
        "warning": {"webhook_configs", "slack_configs", "email_configs"},
        "watchdog": {"webhook_configs"},
        "simulated": set()}
    check = amtool("check-config", str(config), cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "receiver critical: email_configs, pagerduty_configs, slack_configs, webhook_configs" in result.stdout
    watchdog = yaml.safe_load(config.read_text())["receivers"][3]
    assert watchdog["webhook_configs"] == [{"url": "https://hc-ping.com/0000", "send_resolved": False}]


def test_a_receiver_without_its_secret_stays_off(tmp_path):
    result = stack_config(tmp_path, BASE | {"ALERT_SLACK_CHANNEL": "#x", "ALERT_SMTP_SMARTHOST": "smtp.example.com:25"})
    assert result.returncode == 0, result.stderr
    config = tmp_path / "alertmanager" / "alertmanager.yml"
    assert not any(integrations(config).values())
    assert "receiver critical: off (nothing configured)" in result.stdout
    assert amtool("check-config", str(config), cwd=tmp_path).returncode == 0


def test_bad_values_are_named_and_nothing_is_written(tmp_path):
    result = stack_config(tmp_path, {"COMPOSE_PROFILES": "gpu,gpus", "ALERT_WEBHOOK_URL": "hooks.example.com",
                                     "ALERT_EMAIL_TO": "a@b.c", "ALERT_SMTP_SMARTHOST": "smtp.example.com",
                                     "PROMETHEUS_PASSWORD": "short"})
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines == [
        "llmwatch stack-config: COMPOSE_PROFILES has unknown profiles gpus (known: gpu, langfuse, litellm, probe, vllm, demo)",
        "llmwatch stack-config: PROMETHEUS_PASSWORD must be at least 12 characters of A-Z a-z 0-9 . _ ~ -",
        "llmwatch stack-config: ALERT_WEBHOOK_URL: 'hooks.example.com' is not an http(s) URL such as https://hooks.example.com/alerts",
        "llmwatch stack-config: ALERT_SMTP_FROM is needed to send e-mail to ALERT_EMAIL_TO",
        "llmwatch stack-config: ALERT_SMTP_SMARTHOST must be host:port, got 'smtp.example.com'"]
    assert not any(tmp_path.iterdir())
    missing = stack_config(tmp_path, {})
    assert "PROMETHEUS_PASSWORD is empty: run ./scripts/up" in missing.stderr


def test_prometheus_files_follow_the_profiles_and_the_password(tmp_path):
    env = BASE | {"COMPOSE_PROFILES": "vllm,litellm", "LITELLM_URL": "https://gateway.internal/litellm/",
                  "LITELLM_MASTER_KEY": "sk-1234"}
    assert stack_config(tmp_path, env).returncode == 0
    prometheus = tmp_path / "prometheus"
    targets = {p.name: json.loads(p.read_text()) for p in (prometheus / "targets").glob("*.json")}
    assert targets == {
        "llmwatch-gpu.json": [], "llmwatch-langfuse.json": [], "llmwatch-probe.json": [],
        "llmwatch-vllm.json": [{"targets": ["vllm-exporter:9902"]}],
        "llmwatch-litellm.json": [{"targets": ["litellm-exporter:9901"]}],
        "litellm.json": [{"targets": ["gateway.internal:443"],
                          "labels": {"__scheme__": "https", "__metrics_path__": "/litellm/metrics"}}]}
    web = yaml.safe_load((prometheus / "web.yml").read_text())
    assert bcrypt.checkpw(b"a-long-password-123", web["basic_auth_users"]["llmwatch"].encode())
    assert (prometheus / "prometheus_password").read_text() == "a-long-password-123"
    assert (prometheus / "litellm_scrape_key").read_text() == "sk-1234"
    assert oct((prometheus / "web.yml").stat().st_mode & 0o777) == "0o600"
    # running it again (every `docker compose up`) replaces the files, no leftovers
    env["COMPOSE_PROFILES"] = "vllm"
    assert stack_config(tmp_path, env).returncode == 0
    assert json.loads((prometheus / "targets" / "litellm.json").read_text()) == []
    assert not list(prometheus.rglob(".*.tmp"))


def test_litellm_profile_needs_its_url():
    with pytest.raises(render.StackConfigError, match="LITELLM_URL is empty but COMPOSE_PROFILES has litellm"):
        render.load_env(BASE | {"COMPOSE_PROFILES": "litellm"})


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(set(ALL_RECEIVERS) - set(BASE)) + ["LITELLM_URL", "ALERT_SMTP_REQUIRE_TLS"]),
                       st.one_of(st.text(max_size=40), st.sampled_from(list(ALL_RECEIVERS.values())))))
def test_any_environment_gives_a_config_or_named_problems(env):
    """Whatever .env holds: either a configuration that survives a YAML round trip, or problems."""
    base = yaml.safe_load((ALERTMANAGER / "alertmanager.yml").read_text())
    try:
        loaded = render.load_env(BASE | env)
    except render.StackConfigError as e:
        assert e.problems and all(isinstance(p, str) and p for p in e.problems)
        return
    config = render.alertmanager_config(base, loaded)
    assert yaml.safe_load(yaml.safe_dump(config)) == config
    render.prometheus_targets(loaded)


RUNBOOK_DATA = {"receiver": "critical", "status": "firing", "alerts": [
    {"status": "firing", "labels": {"alertname": "GpuLost", "severity": "critical"},
     "annotations": {"summary": "a GPU fell off the bus", "description": "...",
                     "runbook_url": "docs/runbooks.md#gpulost"},
     "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z"}],
    "groupLabels": {"alertname": "GpuLost"}, "commonLabels": {"alertname": "GpuLost", "severity": "critical"},
    "commonAnnotations": {}, "externalURL": "http://gpu-host:23003"}


SERVED = "http://gpu-host:23001/consoles/runbooks.html#gpulost"  # as Prometheus expands a rule's runbook_url


@pytest.mark.parametrize("runbook_url, annotation, link", [
    ("https://git.example.com/acme/llmwatch/blob/main/docs/runbooks.md", "docs/runbooks.md#gpulost",
     "Runbook: https://git.example.com/acme/llmwatch/blob/main/docs/runbooks.md#gpulost\n"),
    ("https://git.example.com/acme/llmwatch/blob/main/docs/runbooks.md", SERVED,
     "Runbook: https://git.example.com/acme/llmwatch/blob/main/docs/runbooks.md#gpulost\n"),
    # without it: the page Prometheus serves, as its alerts carry it, and for Loki's alerts too
    ("", SERVED, f"Runbook: {SERVED}\n"),
    ("", "docs/runbooks.md#gpulost", "Runbook: http://gpu-host:23001/consoles/runbooks.html#gpulost\n"),
])
def test_notifications_link_the_runbook_at_llmwatch_runbook_url(tmp_path, runbook_url, annotation, link):
    result = stack_config(tmp_path, BASE | {"LLMWATCH_RUNBOOK_URL": runbook_url, "LLMWATCH_EXTERNAL_HOST": "gpu-host"})
    assert result.returncode == 0, result.stderr
    data = tmp_path / "data.json"
    alert = {**RUNBOOK_DATA["alerts"][0], "annotations": {**RUNBOOK_DATA["alerts"][0]["annotations"],
                                                          "runbook_url": annotation}}
    data.write_text(json.dumps({**RUNBOOK_DATA, "alerts": [alert]}))
    rendered = amtool("template", "render", f"--template.glob={tmp_path}/alertmanager/templates/*.tmpl",
                      f"--template.data={data}", '--template.text={{ template "llmwatch.text" . }}')
    assert rendered.returncode == 0, rendered.stderr
    assert link in rendered.stdout


CONTAINER_DATA = {**RUNBOOK_DATA, "alerts": [{
    **RUNBOOK_DATA["alerts"][0], "labels": {"alertname": "VllmEngineUnhealthy", "severity": "critical",
                                            "container": "vllm-llama 70b"}}]}


@pytest.mark.parametrize("env, board, logs", [
    ({"LLMWATCH_EXTERNAL_HOST": "gpu-host", "GRAFANA_PORT": "3000"}, "Board: http://gpu-host:3000/d/llmwatch-vllm\n",
     "Logs: http://gpu-host:3000/d/llmwatch-logs?var-container=vllm-llama+70b\n"),
    ({"GRAFANA_EXTERNAL_URL": "https://grafana.example.com/", "LLMWATCH_EXTERNAL_HOST": "gpu-host"},
     "Board: https://grafana.example.com/d/llmwatch-vllm\n",
     "Logs: https://grafana.example.com/d/llmwatch-logs?var-container=vllm-llama+70b\n"),
])
def test_notifications_link_the_alerts_board_and_its_containers_logs_in_grafana(tmp_path, env, board, logs):
    result = stack_config(tmp_path, BASE | env)
    assert result.returncode == 0, result.stderr
    texts = {}
    for name, data in (("container", CONTAINER_DATA), ("gpu", RUNBOOK_DATA)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(data))
        rendered = amtool("template", "render", f"--template.glob={tmp_path}/alertmanager/templates/*.tmpl",
                          f"--template.data={path}", '--template.text={{ template "llmwatch.text" . }}')
        assert rendered.returncode == 0, rendered.stderr
        texts[name] = rendered.stdout
    assert board in texts["container"] and logs in texts["container"]
    assert board.replace("llmwatch-vllm", "llmwatch-gpu") in texts["gpu"] and "Logs:" not in texts["gpu"]


def test_the_committed_templates_render_without_grafanas_address():
    data = ALERTMANAGER / "templates"
    rendered = amtool("template", "render", f"--template.glob={data}/*.tmpl", '--template.text={{ template "llmwatch.board" . }}')
    assert rendered.returncode == 0 and rendered.stdout.strip() == "", rendered.stdout + rendered.stderr


def test_alertmanager_gets_the_same_basic_auth_as_prometheus(tmp_path):
    result = stack_config(tmp_path, BASE)
    assert result.returncode == 0, result.stderr
    web = yaml.safe_load((tmp_path / "alertmanager" / "web.yml").read_text())
    assert bcrypt.checkpw(BASE["PROMETHEUS_PASSWORD"].encode(), web["basic_auth_users"]["llmwatch"].encode())
    # its healthcheck's request, with the password (0600), and no leftover password file
    request = (tmp_path / "alertmanager" / "healthcheck.http").read_bytes()
    assert request == (tmp_path / "prometheus" / "healthcheck.http").read_bytes()
    assert request.startswith(b"GET /-/ready HTTP/1.0\r\n") and request.endswith(b"\r\n\r\n")
    assert not (tmp_path / "alertmanager" / "password").exists()


def test_a_runbook_url_with_an_anchor_is_refused(tmp_path):
    result = stack_config(tmp_path, BASE | {"LLMWATCH_RUNBOOK_URL": "https://x.example/runbooks.md#top"})
    assert result.returncode == 2 and "LLMWATCH_RUNBOOK_URL" in result.stderr


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory):
    """The Alertmanager docker-compose.yml pins (or Debian's) with the committed configuration."""
    tmp = tmp_path_factory.mktemp("alertmanager")
    url = f"http://127.0.0.1:{free_port()}"
    process = Process([require_binary("alertmanager"), f"--config.file={ALERTMANAGER / 'alertmanager.yml'}",
                       f"--storage.path={tmp / 'data'}", f"--web.listen-address={url.removeprefix('http://')}",
                       "--cluster.listen-address="], tmp / "alertmanager.log")
    try:
        wait_until(lambda: httpx.get(f"{url}/-/ready", timeout=2).status_code == 200, 60, "Alertmanager ready")
        yield url
    except AssertionError as e:
        raise AssertionError(f"{e}\n{process.log()}") from None
    finally:
        process.stop()


# (alerts that fire together: labels, and the state each target must reach; None for the sources)
INHIBITIONS = {
    "fast TTFT burn silences the TTFT p95 alert of its model": [
        ({"alertname": "TtftSloFastBurn", "severity": "critical", "model_name": "llama"}, None),
        ({"alertname": "VllmTtftP95High", "severity": "critical", "model_name": "llama"}, "suppressed"),
        ({"alertname": "VllmTtftP95High", "severity": "critical", "model_name": "qwen"}, "active")],
    "LiteLLM down silences the probe's failures through it": [
        ({"alertname": "LitellmProxyDown", "severity": "critical", "job": "llmwatch-litellm", "instance": "litellm-exporter:9901"}, None),
        ({"alertname": "ProbeThroughLitellmFailing", "severity": "critical", "job": "llmwatch-probe", "target": "litellm",
          "model": "llama"}, "suppressed"),
        ({"alertname": "ProbeEngineFailing", "severity": "warning", "job": "llmwatch-probe", "target": "vllm-a", "model": "llama"},
         "active")],
    "a lost GPU silences its XID alerts, not another GPU's": [
        ({"alertname": "GpuLost", "severity": "critical", "instance": "gpu-exporter:9445", "gpu": "3"}, None),
        ({"alertname": "GpuXidHardwareError", "severity": "critical", "instance": "gpu-exporter:9445", "gpu": "3", "xid": "79"},
         "suppressed"),
        ({"alertname": "GpuXidContainedEccError", "severity": "warning", "instance": "gpu-exporter:9445", "gpu": "3", "xid": "94"},
         "suppressed"),
        ({"alertname": "GpuXidHardwareError", "severity": "critical", "instance": "gpu-exporter:9445", "gpu": "4", "xid": "79"},
         "active")],
    "a vLLM on a lost GPU: its engine alerts are silenced, another container's are not": [
        ({"alertname": "VllmOnLostGpu", "severity": "info", "container": "vllm-a"}, None),
        ({"alertname": "VllmEngineUnhealthy", "severity": "critical", "container": "vllm-a"}, "suppressed"),
        ({"alertname": "VllmInstanceDown", "severity": "critical", "container": "vllm-a"}, "suppressed"),
        ({"alertname": "VllmEngineUnhealthy", "severity": "critical", "container": "vllm-b"}, "active")],
    "the vLLM exporter down silences what is derived from vLLM's series": [
        ({"alertname": "ExporterDown", "severity": "critical", "job": "llmwatch-vllm", "instance": "vllm-exporter:9902"}, None),
        ({"alertname": "VllmQueueGrowing", "severity": "warning", "container": "vllm-a", "model_name": "llama"}, "suppressed"),
        ({"alertname": "TtftSloFastBurn", "severity": "critical", "model_name": "llama"}, "suppressed"),
        ({"alertname": "GpuLost", "severity": "critical", "instance": "gpu-exporter:9445", "gpu": "0"}, "active")],
    "LiteLLM's /metrics down silences the rates read from it": [
        ({"alertname": "LitellmMetricsDown", "severity": "warning", "job": "litellm", "instance": "litellm:4000"}, None),
        ({"alertname": "LitellmErrorRate", "severity": "critical", "job": "litellm"}, "suppressed"),
        ({"alertname": "LitellmBudgetNearlySpent", "severity": "warning", "job": "llmwatch-litellm"}, "active")],
    "a demo exporter down silences the demo's alerts, never the real ones": [
        ({"alertname": "ExporterDown", "severity": "critical", "job": "llmwatch-gpu", "simulated": "true"}, None),
        ({"alertname": "GpuThermalSlowdown", "severity": "warning", "gpu": "1", "simulated": "true"}, "suppressed"),
        ({"alertname": "GpuThermalSlowdown", "severity": "warning", "gpu": "1"}, "active")],
}


@pytest.mark.parametrize("case", list(INHIBITIONS))
def test_one_fault_pages_once(alertmanager, case):
    """Inhibition, which amtool cannot test offline, in the real Alertmanager: each group of alerts
    is posted, its targets read back, then resolved so that it cannot silence the next group."""
    alerts = [{"labels": labels | {"case": case}, "annotations": {"summary": "test"}} for labels, _ in INHIBITIONS[case]]
    httpx.post(f"{alertmanager}/api/v2/alerts", json=alerts, timeout=5).raise_for_status()
    expected = {(labels["alertname"], tuple(sorted(labels.items()))): state
                for labels, state in INHIBITIONS[case] if state}

    def states():
        got = httpx.get(f"{alertmanager}/api/v2/alerts", params={"filter": f'case="{case}"'}, timeout=5).json()
        found = {(a["labels"]["alertname"], tuple(sorted((k, v) for k, v in a["labels"].items() if k != "case"))):
                 a["status"]["state"] for a in got}
        found = {key: state for key, state in found.items() if key in expected}
        return found if len(found) == len(expected) and "unprocessed" not in found.values() else None

    try:
        assert wait_until(states, 30, f"the alerts of {case!r} in Alertmanager") == expected
    finally:
        resolved = [a | {"endsAt": "2000-01-01T00:00:00Z"} for a in alerts]
        httpx.post(f"{alertmanager}/api/v2/alerts", json=resolved, timeout=5).raise_for_status()
