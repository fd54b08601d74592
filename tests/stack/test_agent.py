"""A second GPU host (README, "A second GPU host"): the host label stack-config renders into the
central's scrape jobs, the agent host's files (`stack-config --agent`: its Prometheus in agent mode
and Alloy sending to the central), docker-compose.agent.yml running only what belongs on a GPU
host, and a round trip between the pinned Prometheus in agent mode and a central one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from llmwatch.tools.stack_config import cli as stack_main
from llmwatch.tools.stack_config import render
from tests.conftest import require_binary
from tests.procs import Process, free_port, wait_until
from tests.stack.test_remote_write import CA_PEM

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "central-password-1234"
AGENT = {"LLMWATCH_HOST": "gpu-2", "LLMWATCH_CENTRAL_URL": "https://monitor-host:23001/",
         "LLMWATCH_CENTRAL_PASSWORD": PASSWORD}
BASE = yaml.safe_load((REPO / "config" / "prometheus" / "prometheus.yml").read_text())
ALLOY = (REPO / "config" / "alloy" / "config.alloy").read_text()
CENTRAL = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]


class ComposeLoader(yaml.SafeLoader):
    """Compose's merge tags (!override, !reset) read as the plain value they carry."""


def _untagged(loader, suffix, node):
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


ComposeLoader.add_multi_constructor("!", _untagged)
AGENT_COMPOSE = yaml.load((REPO / "docker-compose.agent.yml").read_text(), Loader=ComposeLoader)  # noqa: S506


def host_rules(job: dict) -> list[dict]:
    return [r for r in job.get("relabel_configs", []) if r.get("target_label") == "host"]


# --- the central ----------------------------------------------------------------------------------

def test_every_central_job_labels_its_series_with_llmwatch_host():
    env = render.load_env({"PROMETHEUS_PASSWORD": PASSWORD, "LLMWATCH_HOST": "monitor-1"})
    config = render.prometheus_config(BASE, env)
    assert [job["job_name"] for job in config["scrape_configs"]] == [job["job_name"] for job in BASE["scrape_configs"]]
    for job in config["scrape_configs"]:
        assert host_rules(job) == [{"target_label": "host", "replacement": "monitor-1", "action": "replace"}], job
        # after the job's own rules, so that nothing a target says overrides it
        assert job["relabel_configs"][-1]["target_label"] == "host"


def test_without_llmwatch_host_the_series_have_no_host_label_as_before():
    config = render.prometheus_config(BASE, render.load_env({"PROMETHEUS_PASSWORD": PASSWORD}))
    assert not any(host_rules(job) for job in config["scrape_configs"])


@pytest.mark.parametrize("host", ["gpu 2", "gpu/2", "-x", "a" * 64, 'a"b'])
def test_a_host_name_that_cannot_be_a_label_is_refused(host):
    with pytest.raises(render.StackConfigError) as e:
        render.load_env({"PROMETHEUS_PASSWORD": PASSWORD, "LLMWATCH_HOST": host})
    assert e.value.problems[0].startswith("LLMWATCH_HOST must be a short host name")


def test_the_central_takes_remote_writes_behind_its_basic_auth_and_passes_llmwatch_host():
    command = CENTRAL["prometheus"]["command"]
    assert "--web.enable-remote-write-receiver" in command
    assert "--web.config.file=/etc/prometheus/stack/web.yml" in command  # the receiver is behind the password
    assert CENTRAL["stack-config"]["environment"]["LLMWATCH_HOST"] == "${LLMWATCH_HOST:-}"


# --- the agent's files ----------------------------------------------------------------------------

def test_the_agent_scrapes_the_gpu_hosts_jobs_labelled_with_its_host_and_writes_to_the_central():
    config = render.agent_prometheus_config(BASE, render.load_agent_env(AGENT))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"prometheus-agent", "node", "cadvisor", "alloy", "llmwatch-gpu", "llmwatch-vllm",
                         "llmwatch-probe"}
    central_jobs = {job["job_name"]: job for job in render.prometheus_config(
        BASE, render.load_env({"PROMETHEUS_PASSWORD": PASSWORD}))["scrape_configs"]}
    for name, job in jobs.items():
        assert host_rules(job) == [{"target_label": "host", "replacement": "gpu-2", "action": "replace"}], name
        if name != "prometheus-agent":  # the central's job, its targets and labels as they are
            assert {k: v for k, v in job.items() if k != "relabel_configs"} == central_jobs[name], name
    assert set(config) == {"global", "scrape_configs", "remote_write"}  # agent mode: no rules, no alerting
    assert config["remote_write"] == [{
        "name": "central", "url": "https://monitor-host:23001/api/v1/write", "send_exemplars": False,
        "basic_auth": {"username": "llmwatch", "password_file": "central_password"},
        "queue_config": render.REMOTE_WRITE_QUEUE}]


def test_the_agents_alloy_is_the_centrals_pipeline_sending_to_the_central_loki_with_the_host():
    alloy = render.agent_alloy_config(ALLOY, render.load_agent_env(AGENT))
    head = ALLOY[:ALLOY.index('loki.write "local"')]
    assert alloy.startswith(head)  # the same containers, labels and level pipeline
    block = alloy[len(head):]
    assert 'url = "https://monitor-host:23002/loki/api/v1/push"' in block
    assert 'password_file = "/etc/alloy/stack/central_password"' in block and 'username      = "llmwatch"' in block
    assert 'external_labels = { host = "gpu-2" }' in block
    assert PASSWORD not in alloy and "tls_config" not in alloy
    # a Loki behind a reverse proxy of its own, and a private CA
    env = render.load_agent_env({**AGENT, "LLMWATCH_CENTRAL_LOKI_URL": "https://logs.example.com/",
                                 "LLMWATCH_CENTRAL_CA_FILE": "central-ca.pem"})
    alloy = render.agent_alloy_config(ALLOY, env)
    assert 'url = "https://logs.example.com/loki/api/v1/push"' in alloy
    assert 'ca_file = "/etc/alloy/stack/central_ca.pem"' in alloy
    assert render.agent_prometheus_config(BASE, env)["remote_write"][0]["tls_config"] == {"ca_file": "central_ca.pem"}


@pytest.mark.parametrize("change, problem", [
    ({"LLMWATCH_HOST": ""}, "LLMWATCH_HOST must be this host's short name"),
    ({"LLMWATCH_CENTRAL_URL": ""}, "LLMWATCH_CENTRAL_URL is empty"),
    ({"LLMWATCH_CENTRAL_URL": "https://llmwatch:pw@monitor-host:23001"}, "must not carry credentials"),
    ({"LLMWATCH_CENTRAL_URL": "monitor-host:23001"}, "LLMWATCH_CENTRAL_URL: "),
    ({"LLMWATCH_CENTRAL_PASSWORD": ""}, "LLMWATCH_CENTRAL_PASSWORD must be the central's PROMETHEUS_PASSWORD"),
    ({"LLMWATCH_CENTRAL_CA_FILE": "../ca.pem"}, "LLMWATCH_CENTRAL_CA_FILE is the name of a file"),
    ({"COMPOSE_PROFILES": "gpu,litellm"}, "COMPOSE_PROFILES has litellm, which an agent host does not run"),
])
def test_bad_agent_values_are_named(change, problem):
    with pytest.raises(render.StackConfigError) as e:
        render.load_agent_env({**AGENT, **change})
    assert any(problem in p for p in e.value.problems), e.value.problems


def agent_stack_config(tmp_path: Path, monkeypatch, env: dict[str, str], prometheus_dir: Path | None = None) -> int:
    for key in list(os.environ):
        if key.startswith(("LLMWATCH_", "COMPOSE_PROFILES")):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(stack_main.os, "geteuid", lambda: 1000)
    args = ["--agent", "--out", str(tmp_path / "out")]
    if prometheus_dir is not None:
        args += ["--prometheus-dir", str(prometheus_dir)]
    return stack_main.main(args)


def test_stack_config_agent_writes_the_agents_files_and_the_password_as_private_files(tmp_path, monkeypatch, capsys):
    assert agent_stack_config(tmp_path, monkeypatch, {**AGENT, "COMPOSE_PROFILES": "vllm"}) == 0
    out = tmp_path / "out"
    for secret in (out / "prometheus" / "central_password", out / "alloy" / "central_password"):
        assert secret.read_text() == PASSWORD and secret.stat().st_mode & 0o777 == 0o600
    config = yaml.safe_load((out / "prometheus" / "prometheus.yml").read_text())
    assert PASSWORD not in (out / "prometheus" / "prometheus.yml").read_text()
    assert config["remote_write"][0]["url"] == "https://monitor-host:23001/api/v1/write"
    assert 'host = "gpu-2"' in (out / "alloy" / "config.alloy").read_text()
    targets = {p.name: p.read_text() for p in (out / "prometheus" / "targets").iterdir()}
    assert '"vllm-exporter:9902"' in targets["llmwatch-vllm.json"] and targets["llmwatch-gpu.json"] == "[]\n"
    assert "agent gpu-2: sending to https://monitor-host:23001 and logs to https://monitor-host:23002" in \
        capsys.readouterr().out

    assert agent_stack_config(tmp_path, monkeypatch, {**AGENT, "LLMWATCH_CENTRAL_CA_FILE": "central-ca.pem"}) == 2
    assert "LLMWATCH_CENTRAL_CA_FILE: cannot read config/prometheus/central-ca.pem" in capsys.readouterr().err


# --- docker-compose.agent.yml ---------------------------------------------------------------------

def test_the_agent_compose_file_runs_only_what_belongs_on_a_gpu_host():
    services = AGENT_COMPOSE["services"]
    assert set(services) == {"stack-config", "prometheus", "alloy", "node-exporter", "cadvisor", "docker-proxy",
                             "gpu-exporter", "vllm-exporter", "probe-exporter", "demo", "demo-gpu-exporter",
                             "demo-vllm-exporter"}
    # the central's own definitions, where they are the same
    for name in ("node-exporter", "cadvisor", "docker-proxy", "gpu-exporter", "vllm-exporter", "probe-exporter"):
        assert services[name]["extends"] == {"file": "docker-compose.yml", "service": name}, name
    assert not any(service.get("ports") for service in services.values())  # nothing published
    prometheus = services["prometheus"]
    assert prometheus["image"] == CENTRAL["prometheus"]["image"]  # the pinned Prometheus
    assert "--agent" in prometheus["command"] and "--config.file=/etc/prometheus/stack/prometheus.yml" in prometheus["command"]
    assert services["alloy"]["command"][-1] == "/etc/alloy/stack/config.alloy"
    assert services["probe-exporter"]["environment"]["LLMWATCH_PROBE__LITELLM"] == "false"
    # every variable the agent's stack-config reads is passed through from .env
    source = Path(render.__file__).read_text()
    read = set(re.findall(r'agent_value\("([A-Z_]+)"\)', source))
    assert read and read <= set(services["stack-config"]["environment"]), read
    template = (REPO / "config" / "env.example").read_text()
    for name in read:
        assert f"\n{name}=" in template, name


def test_compose_accepts_the_agent_file():
    compose = shutil.which("docker-compose") or next(
        iter(sorted((Path.home() / ".cache" / "llmwatch-e2e" / "bin").glob("docker-compose-*"))), None)
    if compose is None:
        pytest.skip("no docker compose here (the end-to-end test builds one)")
    env = {"PATH": os.environ["PATH"], "HOME": str(Path.home()), **AGENT, "PROMETHEUS_PASSWORD": PASSWORD,
           "GRAFANA_ADMIN_PASSWORD": PASSWORD}
    result = subprocess.run([str(compose), "-f", str(REPO / "docker-compose.agent.yml"), "--profile", "*",
                             "config", "--format", "json"], capture_output=True, text=True, env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr
    import json
    services = json.loads(result.stdout)["services"]
    assert services["cadvisor"]["image"] == CENTRAL["cadvisor"]["image"]
    assert "LLMWATCH_PROBE__LITELLM_KEY_FILE" not in services["probe-exporter"]["environment"]


# --- the pinned Prometheus in agent mode ----------------------------------------------------------

def test_promtool_accepts_the_agents_configuration(tmp_path, monkeypatch):
    promtool = require_binary("promtool")
    prometheus_dir = tmp_path / "prometheus"
    shutil.copytree(REPO / "config" / "prometheus", prometheus_dir)
    (prometheus_dir / "central-ca.pem").write_text(CA_PEM)
    env = {**AGENT, "LLMWATCH_CENTRAL_CA_FILE": "central-ca.pem", "COMPOSE_PROFILES": "gpu,vllm"}
    assert agent_stack_config(tmp_path, monkeypatch, env, prometheus_dir) == 0
    result = subprocess.run([promtool, "check", "config", "--agent", "prometheus.yml"], capture_output=True,
                            text=True, cwd=tmp_path / "out" / "prometheus")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.integration
def test_the_agents_series_reach_the_central_with_its_host_label(tmp_path, monkeypatch):
    """The pinned Prometheus in agent mode, with the configuration stack-config renders, sends what
    it scrapes to a central Prometheus (receiver on, basic auth): its series land there labelled
    with the agent's host."""
    prometheus = require_binary("prometheus")
    central_port, agent_port = free_port(), free_port()
    central_dir = tmp_path / "central"
    central_dir.mkdir()
    (central_dir / "prometheus.yml").write_text("global: {}\n")
    (central_dir / "web.yml").write_text(render.prometheus_web_config(
        render.load_env({"PROMETHEUS_PASSWORD": PASSWORD}), rounds=4))
    central = f"http://127.0.0.1:{central_port}"
    assert agent_stack_config(tmp_path, monkeypatch, {**AGENT, "LLMWATCH_CENTRAL_URL": central}) == 0
    stack = tmp_path / "out" / "prometheus"
    config = yaml.safe_load((stack / "prometheus.yml").read_text())
    own = next(job for job in config["scrape_configs"] if job["job_name"] == "prometheus-agent")
    own["static_configs"] = [{"targets": [f"127.0.0.1:{agent_port}"]}]  # only itself: nothing else runs here
    config["scrape_configs"] = [own]
    config["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s"}
    (stack / "prometheus.yml").write_text(yaml.safe_dump(config))
    with Process([prometheus, f"--config.file={central_dir / 'prometheus.yml'}", "--web.enable-remote-write-receiver",
                  f"--storage.tsdb.path={central_dir / 'data'}", f"--web.listen-address=127.0.0.1:{central_port}",
                  f"--web.config.file={central_dir / 'web.yml'}"], tmp_path / "central.log"), \
         Process([prometheus, "--agent", f"--config.file={stack / 'prometheus.yml'}",
                  f"--storage.agent.path={tmp_path / 'wal'}", f"--web.listen-address=127.0.0.1:{agent_port}"],
                 tmp_path / "agent.log") as agent:
        def landed():
            answer = httpx.get(f"{central}/api/v1/query", params={"query": 'up{job="prometheus-agent"} == 1'},
                               auth=("llmwatch", PASSWORD), timeout=5)
            return answer.json()["data"]["result"]
        found = wait_until(landed, 120, "the agent's up at the central")
        assert found[0]["metric"] == {"__name__": "up", "job": "prometheus-agent", "host": "gpu-2",
                                      "instance": f"127.0.0.1:{agent_port}"}, agent.log()[-2000:]
