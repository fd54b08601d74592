"""The monitoring stack on loopback: the real Prometheus and Alertmanager with the repository's own
configuration, the exporters as processes against simulated upstreams, node-exporter, and a
webhook receiver standing in for the maintainer's pager.

What differs from docker-compose.yml, and only this: addresses become 127.0.0.1 ports; the global
scrape and evaluation intervals become 1 s (so an alert with ``for: 1m`` fires in about a minute,
not three); cAdvisor is a simulated /metrics (tests/fakes/cadvisor.py); and the jobs of Loki, Alloy
and Grafana are dropped, because those programs cannot run on the test machine (no Docker engine,
no Grafana).

LiteLLM is the real proxy (tests/litellm/real_proxy.py, the pinned version) in front of the
simulated vLLM servers: Prometheus scrapes its own /metrics (job ``litellm``) and the probe goes
through it. It runs without a database, so the LiteLLM exporter reads the simulated proxy, whose
answers follow LiteLLM's response models, for keys, teams, users, spend and budgets.
"""

from __future__ import annotations

import contextlib
import json
import queue
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import yaml

from llmwatch.simulation.langfuse import FakeLangfuseServer, generate
from llmwatch.simulation.litellm import FakeLitellmServer
from llmwatch.simulation.demo.engine import LiveEngine
from llmwatch.simulation.demo.servers import DemoVllmServer, litellm_router
from llmwatch.queueing.config import MonoCluster
from llmwatch.simulation.vllm import busy_engine
from tests.binaries import binary
from tests.fakes.cadvisor import FakeCadvisor
from tests.litellm.real_proxy import LitellmProxy, hosted_vllm
from tests.procs import REPO, SIMULATED_GPU, Process, exporter, free_port, wait_until

NOT_RUNNABLE_HERE = {"loki", "alloy", "grafana"}
PASSWORD = "stack-test-password-42"
# Prometheus' address as a browser would use it: alerts' runbook_url is built on it
EXTERNAL_URL = "http://prometheus.example:23001"
MASTER_KEY = "sk-master"


class WebhookReceiver:
    """Collects what Alertmanager posts (its webhook JSON), by path."""

    def __init__(self):
        self.posts: queue.Queue[tuple[str, dict]] = queue.Queue()
        received = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.put((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, path: str, match, timeout: float) -> dict:
        """The first post to ``path`` for which ``match(post)`` holds; others are set aside."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                got_path, post = self.posts.get(timeout=left)
            except queue.Empty:
                break
            if got_path == path and match(post):
                return post
        raise AssertionError(f"no post to {path} matching within {timeout}s")

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def render_stack_config(out: Path, env: dict[str, str]) -> None:
    """Run the stack-config step exactly as the compose service does."""
    result = subprocess.run([sys.executable, "-m", "llmwatch", "stack-config", "--out", str(out)], cwd=REPO,
                            capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", **env})
    assert result.returncode == 0, result.stderr


def loopback(text: str, addresses: dict[str, str]) -> str:
    """Compose addresses (``service:port``) mapped to loopback ports."""
    for compose_address, local in addresses.items():
        text = text.replace(compose_address, local)
    return text


def loopback_prometheus_config(text: str, addresses: dict[str, str]) -> str:
    """The repository's prometheus.yml as the stack test runs it (see the module doc)."""
    config = yaml.safe_load(text)
    config["global"].update(scrape_interval="1s", evaluation_interval="1s", scrape_timeout="1s")
    config["scrape_configs"] = [job for job in config["scrape_configs"] if job["job_name"] not in NOT_RUNNABLE_HERE]
    return loopback(yaml.safe_dump(config, sort_keys=False), addresses)


class Stack:
    """Everything started; ``close()`` stops it all."""

    def __init__(self, tmp: Path, langfuse_version: str = "4.16.0", langfuse_env: dict[str, str] | None = None):
        self.tmp = tmp
        self.langfuse_version, self.langfuse_env = langfuse_version, langfuse_env or {}
        self.stack = contextlib.ExitStack()
        self.webhook = WebhookReceiver()
        self.stack.callback(self.webhook.close)

    def start(self) -> "Stack":
        enter = self.stack.enter_context
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        # simulated vLLM servers that also stream completions (for the probe), their figures kept
        fast = MonoCluster(gpus=8, prefill_tokens_per_s=100000.0, decode_tokens_per_s=500.0)
        # llama runs speculative decoding and serves two LoRA adapters: families a server sends only then
        features = {"vllm-llama-3.1-70b": {"speculative_tokens": 3, "lora_adapters": ("sql-lora", "chat-lora")}}
        self.vllm = {name: enter(DemoVllmServer(LiveEngine(busy_engine(**features.get(name, {})), fast, gauges=False),
                                                version))
                     for name, version in (("vllm-llama-3.1-70b", "0.11.0"), ("vllm-qwen3-32b", "0.6.4"))}
        router = litellm_router({"llama-3.1-70b": self.vllm["vllm-llama-3.1-70b"],
                                 "qwen3-32b": self.vllm["vllm-qwen3-32b"], "embed": self.vllm["vllm-qwen3-32b"]}, 0)
        self.litellm = enter(FakeLitellmServer(master_key=MASTER_KEY, router=router))  # the admin API
        # The real proxy: two groups over the simulated vLLM servers (priced per token and per second)
        # and one whose only deployment is down, falling back to another group.
        dead = type("Dead", (), {"url": f"http://127.0.0.1:{free_port()}",
                                 "live": self.vllm["vllm-qwen3-32b"].live})()
        self.proxy = enter(LitellmProxy(self.tmp, [
            hosted_vllm("llama-3.1-70b", self.vllm["vllm-llama-3.1-70b"], "d-llama",
                        input_cost_per_token=2e-7, output_cost_per_token=6e-7),
            hosted_vllm("qwen3-32b", self.vllm["vllm-qwen3-32b"], "d-qwen", input_cost_per_second=0.0011),
            hosted_vllm("broken", dead, "d-broken", input_cost_per_token=1e-7)],
            master_key=MASTER_KEY, router_settings={"fallbacks": [{"broken": ["qwen3-32b"]}], "num_retries": 0}))
        self.langfuse = enter(FakeLangfuseServer(self.langfuse_version, generate(now, traces=50)))
        self.cadvisor = enter(FakeCadvisor())

        ports = {name: free_port() for name in
                 ("gpu", "vllm", "litellm", "langfuse", "insights", "probe", "node", "prometheus", "alertmanager")}
        self.ports = ports
        log = lambda name: self.tmp / f"{name}.log"  # noqa: E731
        targets = [{"name": name, "url": server.url} for name, server in self.vllm.items()]
        enter(exporter("gpu", ports["gpu"], log("gpu"), command=SIMULATED_GPU))
        enter(exporter("vllm", ports["vllm"], log("vllm"),
                       {"LLMWATCH_VLLM__DISCOVERY": "false", "LLMWATCH_VLLM__TARGETS": json.dumps(targets)}))
        enter(exporter("litellm", ports["litellm"], log("litellm"),
                       {"LLMWATCH_LITELLM__URL": self.litellm.url, "LLMWATCH_LITELLM__MASTER_KEY": MASTER_KEY}))
        enter(exporter("langfuse", ports["langfuse"], log("langfuse"),
                       {"LLMWATCH_LANGFUSE__URL": self.langfuse.url, "LLMWATCH_LANGFUSE__PUBLIC_KEY": "pk-lf-test",
                        "LLMWATCH_LANGFUSE__SECRET_KEY": "sk-lf-test", **self.langfuse_env}))
        enter(exporter("probe", ports["probe"], log("probe"),
                       {"LLMWATCH_VLLM__DISCOVERY": "false", "LLMWATCH_VLLM__TARGETS": json.dumps(targets),
                        "LLMWATCH_LITELLM__URL": self.proxy.url, "LLMWATCH_LITELLM__MASTER_KEY": MASTER_KEY,
                        "LLMWATCH_PROBE__INTERVAL_SECONDS": "2"}))
        # Windows shortened to the stack test's minutes: advice over 1 minute, forecast over 5.
        enter(exporter("insights", ports["insights"], log("insights"),
                       {"LLMWATCH_INSIGHTS__PROMETHEUS_URL": f"http://127.0.0.1:{ports['prometheus']}",
                        "LLMWATCH_INSIGHTS__PROMETHEUS_PASSWORD": PASSWORD, "LLMWATCH_INSIGHTS__CACHE_SECONDS": "1",
                        "LLMWATCH_INSIGHTS__ADVICE_WINDOW_SECONDS": "60",
                        "LLMWATCH_INSIGHTS__FORECAST_WINDOW_SECONDS": "300",
                        "LLMWATCH_INSIGHTS__FORECAST_INTERVAL_SECONDS": "10",
                        "LLMWATCH_INSIGHTS__FORECAST_REQUESTS": "500"}))
        enter(Process([binary("node_exporter"), f"--web.listen-address=127.0.0.1:{ports['node']}"],
                      log("node-exporter")))

        rendered = self.tmp / "stack-config"
        render_stack_config(rendered, {
            "COMPOSE_PROFILES": "gpu,vllm,litellm,langfuse,probe", "PROMETHEUS_PASSWORD": PASSWORD,
            "LITELLM_URL": self.proxy.url, "LITELLM_MASTER_KEY": MASTER_KEY,
            "ALERT_WEBHOOK_URL": f"{self.webhook.url}/alerts", "WATCHDOG_URL": f"{self.webhook.url}/watchdog"})

        addresses = {"localhost:23001": f"127.0.0.1:{ports['prometheus']}",
                     "alertmanager:23003": f"127.0.0.1:{ports['alertmanager']}",
                     "host.docker.internal:9100": f"127.0.0.1:{ports['node']}",
                     "cadvisor:8080": self.cadvisor.url.removeprefix("http://"),
                     "gpu-exporter:9445": f"127.0.0.1:{ports['gpu']}",
                     "vllm-exporter:9902": f"127.0.0.1:{ports['vllm']}",
                     "litellm-exporter:9901": f"127.0.0.1:{ports['litellm']}",
                     "langfuse-exporter:9903": f"127.0.0.1:{ports['langfuse']}",
                     "insights-exporter:9904": f"127.0.0.1:{ports['insights']}",
                     "probe-exporter:9905": f"127.0.0.1:{ports['probe']}"}
        prometheus_dir = self.tmp / "prometheus"
        shutil.copytree(REPO / "config" / "prometheus" / "rules", prometheus_dir / "rules")
        shutil.copytree(rendered / "prometheus", prometheus_dir / "stack")
        for target_file in (prometheus_dir / "stack" / "targets").glob("*.json"):
            target_file.write_text(loopback(target_file.read_text(), addresses))
        (prometheus_dir / "prometheus.yml").write_text(
            loopback_prometheus_config((REPO / "config" / "prometheus" / "prometheus.yml").read_text(), addresses))

        self.alertmanager = enter(Process([
            binary("alertmanager"),
            f"--config.file={rendered / 'alertmanager' / 'alertmanager.yml'}",
            f"--storage.path={self.tmp / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{ports['alertmanager']}", "--cluster.listen-address="],
            log("alertmanager")))
        self.prometheus = enter(Process([
            binary("prometheus"), f"--config.file={prometheus_dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.tmp / 'prometheus-data'}", "--storage.tsdb.retention.time=30d",
            f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
            f"--web.config.file={prometheus_dir / 'stack' / 'web.yml'}",
            f"--web.console.templates={REPO / 'config' / 'prometheus' / 'consoles'}",
            f"--web.external-url={EXTERNAL_URL}"],
            log("prometheus")))
        self.prometheus_url = f"http://127.0.0.1:{ports['prometheus']}"
        self.alertmanager_url = f"http://127.0.0.1:{ports['alertmanager']}"
        wait_until(lambda: self.get("/-/ready").status_code == 200, 60, "Prometheus ready")
        wait_until(lambda: httpx.get(f"{self.alertmanager_url}/-/ready", timeout=2).status_code == 200, 60,
                   "Alertmanager ready")
        return self

    def get(self, path: str, **params) -> httpx.Response:
        return httpx.get(self.prometheus_url + path, params=params, auth=("llmwatch", PASSWORD), timeout=5)

    def api(self, path: str, **params):
        answer = self.get(f"/api/v1/{path}", **params)
        answer.raise_for_status()
        return answer.json()["data"]

    def query(self, expr: str) -> list[dict]:
        return self.api("query", query=expr)["result"]

    def chat(self, group: str, stream: bool = False, max_tokens: int = 8) -> int:
        """One chat completion through the real proxy; its HTTP status."""
        body = {"model": group, "messages": [{"role": "user", "content": "stack test traffic"}],
                "max_tokens": max_tokens, "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}
        with httpx.stream("POST", f"{self.proxy.url}/v1/chat/completions", json=body, timeout=30,
                          headers=self.proxy.headers()) as answer:
            answer.read()
            return answer.status_code

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(self.tmp.glob("*.log")))

    def close(self):
        self.stack.close()

