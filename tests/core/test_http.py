"""The shared HTTP server: /metrics, /health, /, content types, and no 500 when a scrape breaks."""

from __future__ import annotations

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
