"""Named LiteLLM situations, shared by the golden tests and the metric-catalog test.

Each runs the exporter against a simulated proxy (llmwatch.simulation.litellm) and returns the
/metrics text of its last scrape. The day is fixed, so "today's" 429s are repeatable.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timezone
from pathlib import Path

from llmwatch.core.fetch import Fetcher
from llmwatch.exporters.litellm.collector import LitellmExporter
from llmwatch.simulation.litellm import FakeLitellmServer
from tests.procs import dead_url, render

TODAY = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)


def make_exporter(url: str, *, key: str | None = "sk-master", budget: float = 5.0, **kwargs) -> LitellmExporter:
    headers = {"Accept": "application/json"} | ({"Authorization": f"Bearer {key}"} if key else {})
    return LitellmExporter(url=url, fetcher=Fetcher("litellm", headers), budget=budget,
                           today=lambda: TODAY, **kwargs)


def scrape(server_or_url, **kwargs) -> str:
    url = getattr(server_or_url, "url", server_or_url)
    with contextlib.closing(make_exporter(url, **kwargs)) as exporter:
        return render(exporter)


def gateway(tmp_path: Path) -> str:
    """The newest proxy with a database, background health checks read, the top 5 spenders by name."""
    with FakeLitellmServer("1.81.3") as server:
        return scrape(server, top_n=5, deployment_health=True)


def gateway_old(tmp_path: Path) -> str:
    """A December 2024 proxy: bare-list /user/list, no DB status in readiness; health not read."""
    with FakeLitellmServer("1.55.8") as server:
        return scrape(server, top_n=3)


def no_database(tmp_path: Path) -> str:
    """A proxy without a database: health and deployments only, no spend families."""
    with FakeLitellmServer(mode="no_db") as server:
        return scrape(server)


def wrong_key(tmp_path: Path) -> str:
    """The master key is wrong: readiness still answers, everything keyed is an auth error."""
    with FakeLitellmServer() as server:
        return scrape(server, key="sk-wrong")


def proxy_down(tmp_path: Path) -> str:
    return scrape(dead_url(), budget=1.0)


SCENARIOS = {"gateway": gateway, "gateway_old": gateway_old, "no_database": no_database, "wrong_key": wrong_key,
             "proxy_down": proxy_down}
