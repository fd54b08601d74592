"""A vLLM container's life, through the real Prometheus and Alertmanager with the repository's
vLLM rules and Alertmanager configuration: the vLLM exporter (a process) finds the container
through a fake Docker Engine and scrapes a simulated vLLM server behind it.

A restart whose model load outlasts ``VllmInstanceDown``'s hold time (1 minute) pages nothing:
the container is ``starting`` for its grace. An exit with code 1 pages, with the exit code, within
2 minutes. Scrape and evaluation intervals are 1 s (as in stack.py); the hold times are the real ones.
"""

from __future__ import annotations

import shutil
import time

import httpx
import pytest
import yaml

from llmwatch.simulation.vllm import FakeVllmServer
from tests.binaries import binary
from tests.conftest import require_binary
from tests.fakes.docker_engine import FakeDockerEngine, container, docker_time, exit_container, start_container
from tests.procs import REPO, Process, exporter, free_port, wait_until
from tests.stack.stack import PASSWORD, WebhookReceiver, render_stack_config

pytestmark = pytest.mark.integration

LOADING_SECONDS = 80  # longer than VllmInstanceDown's `for: 1m` plus a scrape and an evaluation


def prometheus_config(vllm_port: int, alertmanager_port: int) -> dict:
    """The repository's vLLM rules, the vLLM exporter as its compose job name, 1 s intervals."""
    return {"global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "rule_files": ["rules/vllm.yml"],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]},
            "scrape_configs": [{"job_name": "llmwatch-vllm",
                                "static_configs": [{"targets": [f"127.0.0.1:{vllm_port}"]}]}]}


def test_a_restart_pages_nothing_during_its_grace_and_an_exit_with_code_1_pages_with_its_code(tmp_path):
    for name in ("prometheus", "alertmanager"):
        require_binary(name)
    ports = {name: free_port() for name in ("vllm", "prometheus", "alertmanager")}
    webhook = WebhookReceiver()
    server = FakeVllmServer().__enter__()
    c = container("a" * 64, "vllm-llama", labels={"llmwatch.vllm": "true"}, ports={8000: server.port},
                  started_at=docker_time(time.time() - 3600))
    processes: list[Process] = []
    try:
        rendered = tmp_path / "stack-config"
        render_stack_config(rendered, {"COMPOSE_PROFILES": "vllm", "PROMETHEUS_PASSWORD": PASSWORD,
                                       "ALERT_WEBHOOK_URL": f"{webhook.url}/alerts",
                                       "WATCHDOG_URL": f"{webhook.url}/watchdog"})
        prometheus_dir = tmp_path / "prometheus"
        shutil.copytree(REPO / "config" / "prometheus" / "rules", prometheus_dir / "rules")
        (prometheus_dir / "prometheus.yml").write_text(
            yaml.safe_dump(prometheus_config(ports["vllm"], ports["alertmanager"])))
        with FakeDockerEngine(tmp_path / "docker.sock", [c]) as engine:
            processes.append(exporter("vllm", ports["vllm"], tmp_path / "vllm.log", {
                "LLMWATCH_DOCKER__HOST": engine.url, "LLMWATCH_VLLM__HOST_ADDRESS": "127.0.0.1",
                "LLMWATCH_VLLM__HEALTH_CACHE_SECONDS": "1"}))  # the default start grace, 900 s
            processes.append(Process([
                binary("alertmanager"), f"--config.file={rendered / 'alertmanager' / 'alertmanager.yml'}",
                f"--storage.path={tmp_path / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{ports['alertmanager']}", "--cluster.listen-address="],
                tmp_path / "alertmanager.log"))
            processes.append(Process([
                binary("prometheus"), f"--config.file={prometheus_dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{ports['prometheus']}"], tmp_path / "prometheus.log"))
            prometheus = f"http://127.0.0.1:{ports['prometheus']}"

            def query(expr: str) -> list[dict]:
                answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=5)
                answer.raise_for_status()
                return answer.json()["data"]["result"]

            def state() -> str | None:
                found = query('llmwatch_vllm_container_state{container="vllm-llama"} == 1')
                return found[0]["metric"]["state"] if found else None

            def firing(alert: str) -> list[dict]:
                return query(f'ALERTS{{alertname="{alert}"}}')

            wait_until(lambda: query('llmwatch_vllm_up{container="vllm-llama"} == 1'), 60, "the server scraped")

            # `docker restart`: SIGTERM ends it (143), it starts again and loads its model, port closed
            server.mode = "error"
            exit_container(c, 143, at=time.time())
            start_container(c, at=time.time())
            restarted = time.monotonic()
            # until Prometheus has seen it down for longer than VllmInstanceDown's hold time
            window = f"[{LOADING_SECONDS}s]"
            wait_until(lambda: query(f'max_over_time(llmwatch_vllm_up{{container="vllm-llama"}}{window}) == 0'),
                       LOADING_SECONDS + 60, "the server down for the whole window", interval=1)
            loading = time.monotonic() - restarted
            pending_or_firing = query(f"max_over_time(ALERTS{window})")
            assert pending_or_firing == [], f"alerts while the model loads within its grace: {pending_or_firing}"
            assert not [post for _, post in list(webhook.posts.queue)], "a notification while loading"
            assert query(f'min_over_time(llmwatch_vllm_container_state{{container="vllm-llama", state="starting"}}{window}) == 1')
            server.mode = "ok"  # loaded
            wait_until(lambda: state() == "running" and query('llmwatch_vllm_up{container="vllm-llama"} == 1'),
                       30, "the server back")

            # a crash: exit code 1, no restart policy
            exit_container(c, 1, at=time.time())
            exited = time.monotonic()
            post = webhook.wait_for("/alerts", lambda p: any(
                a["labels"]["alertname"] == "VllmContainerExited" and a["status"] == "firing" for a in p["alerts"]), 120)
            paged_after = time.monotonic() - exited
            alert = next(a for a in post["alerts"] if a["labels"]["alertname"] == "VllmContainerExited")
            assert alert["labels"]["container"] == "vllm-llama" and alert["labels"]["severity"] == "critical"
            assert "exited with code 1 " in alert["annotations"]["description"], alert["annotations"]
            assert alert["annotations"]["logs_url"].endswith("var-container=vllm-llama&from=now-1h&to=now")
            assert not firing("VllmInstanceDown"), "an exited container is not also down"
            assert paged_after < 120
            print(f"loading {loading:.0f} s without an alert; VllmContainerExited at the webhook "
                  f"{paged_after:.0f} s after the exit")
    except AssertionError as e:
        logs = "\n".join(f"--- {p.log_path.name}\n{p.log()[-3000:]}" for p in processes)
        raise AssertionError(f"{e}\n{logs}") from None
    finally:
        for process in reversed(processes):
            process.stop()
        server.__exit__(None, None, None)
        webhook.close()
