"""Start real processes (exporters, prometheus...) on loopback for integration tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from llmwatch.core.http import render_text

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dead_url() -> str:
    """A loopback URL nobody listens on (bound, then closed)."""
    return f"http://127.0.0.1:{free_port()}"


def render(exporter) -> str:
    """An exporter's /metrics text after one scrape, exactly as its HTTP server writes it."""
    registry = CollectorRegistry()
    registry.register(exporter.collector)
    return render_text(registry).decode()


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def value(text: str, name: str, **labels) -> float:
    found = [v for (n, ls), v in samples(text).items() if n == name and set(labels.items()) <= ls]
    assert len(found) == 1, f"{name}{labels}: {len(found)} series"
    return found[0]


def wait_until(check, timeout: float, what: str, interval: float = 0.1):
    """Poll ``check()`` until it returns something truthy; the event, not a fixed sleep, ends the wait."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (httpx.HTTPError, OSError) as e:
            last_error = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_error})")


class Process:
    """A background process whose output goes to a log file, shown when a test fails."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path = REPO):
        self.args, self.log_path = args, log
        self._log = open(log, "wb")
        base = {k: v for k, v in os.environ.items() if not k.startswith("LLMWATCH_")}
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=base | (env or {}), cwd=cwd)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# The GPU exporter over the simulated 8xH200 node, as the demo runs it.
SIMULATED_GPU = ("demo", "--role", "gpu")


def exporter(name: str, port: int, log: Path, env: dict[str, str] | None = None,
             command: tuple[str, ...] = ()) -> Process:
    """``llmwatch <name>`` (or ``llmwatch <command...>``) with ``[name]``'s port set, once /health answers."""
    env = {"LLMWATCH_COMMON__LISTEN_ADDRESS": "127.0.0.1", f"LLMWATCH_{name.upper()}__PORT": str(port),
           "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = Process([sys.executable, "-m", "llmwatch", *(command or (name,))], log, env)
    try:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
                   or proc.proc.poll() is not None, 30, f"{name} exporter /health")
    except AssertionError:
        proc.stop()
        raise AssertionError(f"{name} exporter did not start:\n{proc.log()}")
    if proc.proc.poll() is not None:
        raise AssertionError(f"{name} exporter exited with {proc.proc.returncode}:\n{proc.log()}")
    return proc


def seconds_to_exit(process: Process, limit: float = 30.0) -> float:
    """SIGTERM ``process`` and measure how long it takes to exit; killed (and ``limit`` returned) past ``limit``."""
    started = time.monotonic()
    process.proc.terminate()
    try:
        process.proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        process.proc.kill()
        process.proc.wait()
        return limit
    return time.monotonic() - started
