"""A real LiteLLM proxy on loopback, for integration tests: the pinned release and the last before
1.84 (tests/litellm/proxy_versions.txt), each from its own virtual environment made by
scripts/test (.venv-litellm-VERSION: LiteLLM's dependency pins clash with llmwatch's).

It runs without a database (LiteLLM's Prisma client needs to download its engine, which a test
machine cannot), so keys, teams, users, spend and budgets stay with the simulated proxy; what it
does serve for real is readiness, deployments and prices, chat completions (streamed too) through
``hosted_vllm/...`` deployments in front of simulated vLLM servers, and its own /metrics (the
prometheus callback). Nothing in it may leave loopback: the cost map and every other file LiteLLM
would download are read from the package, telemetry is off, and HTTP(S)_PROXY point at a loopback
trap that records any attempt (:attr:`LitellmProxy.outbound`).
"""

from __future__ import annotations

import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

from tests.procs import REPO, Process, free_port, wait_until

VERSIONS = [line.strip() for line in (Path(__file__).parent / "proxy_versions.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
PINNED = VERSIONS[0]
# Everything LiteLLM would otherwise fetch at start or on first use, read from the package instead.
OFFLINE = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
           "LITELLM_LOCAL_AUTOROUTER_PRESETS": "True", "LITELLM_LOCAL_BLOG_POSTS": "True",
           "LITELLM_LOCAL_POLICY_TEMPLATES": "True", "LITELLM_TELEMETRY": "False", "LITELLM_MODE": "PRODUCTION",
           # a model named like a Hugging Face repo makes LiteLLM fetch its tokenizer to count tokens
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def litellm_binary(version: str = PINNED) -> str:
    """The ``litellm`` command of that version; skipped (failed under CI=true) when scripts/test has not made it."""
    binary = REPO / f".venv-litellm-{version}" / "bin" / "litellm"
    if binary.exists():
        return str(binary)
    message = f"LiteLLM {version} not installed in .venv-litellm-{version} (scripts/test makes it)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def hosted_vllm(group: str, server, model_id: str, **prices) -> dict:
    """A model_list entry: ``group`` served by a simulated vLLM server, priced with LiteLLM's fields."""
    return {"model_name": group,
            "litellm_params": {"model": f"hosted_vllm/{server.live.engine.model_name}", "api_base": f"{server.url}/v1",
                               "api_key": "none", **prices},
            "model_info": {"id": model_id}}


class OutboundTrap:
    """Stands in for the internet: the proxy's HTTP(S)_PROXY; every request reaching it is recorded."""

    def __init__(self):
        self.requests: list[str] = []
        seen = self.requests

        class Handler(BaseHTTPRequestHandler):
            def _record(self):
                seen.append(f"{self.command} {self.path}")
                self.send_response(403)
                self.end_headers()

            do_GET = do_POST = do_CONNECT = do_PUT = do_HEAD = _record

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class LitellmProxy:
    """``litellm --config`` on a free loopback port; ``start_seconds`` is how long it took to answer."""

    def __init__(self, tmp: Path, model_list: list[dict], *, version: str = PINNED, master_key: str = "sk-master",
                 router_settings: dict | None = None, litellm_settings: dict | None = None):
        self.tmp, self.version, self.master_key = tmp, version, master_key
        self.binary = litellm_binary(version)
        self.config = {"model_list": model_list,
                       "litellm_settings": {"callbacks": ["prometheus"], "telemetry": False,
                                            **(litellm_settings or {})},
                       "general_settings": {"master_key": master_key}}
        if router_settings:
            self.config["router_settings"] = router_settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.trap = OutboundTrap()
        self.process: Process | None = None
        self.start_seconds = 0.0

    @property
    def outbound(self) -> list[str]:
        return self.trap.requests

    def start(self, timeout: float = 240) -> "LitellmProxy":
        config = self.tmp / f"litellm-{self.version}.yaml"
        config.write_text(yaml.safe_dump(self.config, sort_keys=False))
        env = {**OFFLINE, "HTTP_PROXY": self.trap.url, "HTTPS_PROXY": self.trap.url, "ALL_PROXY": self.trap.url,
               "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
               "HOME": str(self.tmp), "PYTHONUNBUFFERED": "1"}
        started = time.monotonic()
        self.process = Process([self.binary, "--config", str(config), "--host", "127.0.0.1", "--port", str(self.port),
                                "--num_workers", "1"], self.tmp / f"litellm-{self.version}.log", env, cwd=self.tmp)
        try:
            wait_until(lambda: self.process.proc.poll() is not None
                       or httpx.get(f"{self.url}/health/liveliness", timeout=2).status_code == 200,
                       timeout, f"LiteLLM {self.version} answering", interval=0.25)
        except AssertionError:
            self.close()
            raise AssertionError(f"LiteLLM {self.version} did not start:\n{self.process.log()[-4000:]}") from None
        if self.process.proc.poll() is not None:
            raise AssertionError(f"LiteLLM {self.version} exited:\n{self.process.log()[-4000:]}")
        self.start_seconds = time.monotonic() - started
        return self

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.master_key}"}

    def metrics(self) -> str:
        answer = httpx.get(f"{self.url}/metrics/", headers=self.headers(), timeout=10)
        answer.raise_for_status()
        return answer.text

    def log(self) -> str:
        return self.process.log() if self.process else ""

    def close(self):
        if self.process:
            self.process.stop()
        self.trap.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
