"""The shared HTTP server: /metrics, /health, /, content types, and no 500 when a scrape breaks."""

from __future__ import annotations

import socket
import threading

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from llmwatch.core.http import start_server
from llmwatch.core.scrape import ExporterCollector


@pytest.fixture
def server():
    calls = {"n": 0}

    def scrape(errors):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("upstream parser bug")
        yield GaugeMetricFamily("llmwatch_demo_up", "demo", value=1)

    registry = CollectorRegistry()
    registry.register(ExporterCollector("demo", scrape))
    srv = start_server("demo", registry, "127.0.0.1", 0, "a test exporter")
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    srv.server_close()


def test_metrics_health_and_landing_page(server):
    with httpx.Client(trust_env=False) as client:
        metrics = client.get(f"{server}/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert "llmwatch_demo_up 1.0" in metrics.text
        assert "process_cpu_seconds_total" not in metrics.text  # own registry: no default collectors
        broken = client.get(f"{server}/metrics")
        assert broken.status_code == 200  # a scrape that raises is an error count, never a 500
        assert 'llmwatch_demo_scrape_errors_total{reason="exception"} 1.0' in broken.text
        assert "llmwatch_demo_up" not in broken.text
        om = client.get(f"{server}/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        assert om.headers["content-type"].startswith("application/openmetrics-text") and om.text.endswith("# EOF\n")
        assert client.get(f"{server}/health").json() == {"status": "ok"}
        assert 'href="metrics"' in client.get(f"{server}/").text
        assert client.get(f"{server}/nope").status_code == 404


def test_container_healthcheck_probe(server):
    from llmwatch.core.health import main
    from tests.procs import free_port

    assert main(["health", server.rsplit(":", 1)[1]]) == 0
    assert main(["health", str(free_port())]) == 1  # nothing listening


def _handler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if "process_request_thread" in t.name]


def test_half_sent_requests_hold_bounded_threads_released_after_the_read_timeout():
    registry = CollectorRegistry()
    srv = start_server("demo", registry, "127.0.0.1", 0, read_timeout=0.5, max_connections=8)
    address = ("127.0.0.1", srv.server_port)
    before = len(_handler_threads())
    sockets = []
    try:
        for _ in range(20):
            sock = socket.create_connection(address, timeout=5)
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: exporter\r\n")  # never finished
            sockets.append(sock)
        answers = [sock.recv(4096) for sock in sockets]  # 503 at once, or closed after the read timeout
        refused = [a for a in answers if a.startswith(b"HTTP/1.1 503")]
        closed = [a for a in answers if a == b""]
        assert (len(refused), len(closed)) == (12, 8)
        assert len(_handler_threads()) - before <= 8
        for thread in _handler_threads():
            thread.join(timeout=5)
        assert len(_handler_threads()) == before
        with httpx.Client(trust_env=False) as client:  # the slots are free again
            assert client.get(f"http://127.0.0.1:{srv.server_port}/health").status_code == 200
    finally:
        for sock in sockets:
            sock.close()
        srv.shutdown()
        srv.server_close()
