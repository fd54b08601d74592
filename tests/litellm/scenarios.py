"""Named LiteLLM situations, shared by the golden tests and the metric-catalog test.

Each runs the exporter against a simulated proxy (llmwatch.simulation.litellm) and returns the
/metrics text of its last scrape. The day is fixed, so "today's" 429s are repeatable.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timezone
from pathlib import Path

from llmwatch.core.fetch import Fetcher
from llmwatch.exporters.litellm import MAX_BODY_BYTES
from llmwatch.exporters.litellm.collector import LitellmExporter
from llmwatch.simulation.litellm import FakeLitellmServer
from tests.procs import dead_url, render

TODAY = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)


def make_exporter(url: str, *, key: str | None = "sk-master", budget: float = 5.0, **kwargs) -> LitellmExporter:
    headers = {"Accept": "application/json"} | ({"Authorization": f"Bearer {key}"} if key else {})
    return LitellmExporter(url=url, fetcher=Fetcher("litellm", headers, MAX_BODY_BYTES), budget=budget,
                           today=lambda: TODAY, **kwargs)


def scrape(server_or_url, **kwargs) -> str:
    url = getattr(server_or_url, "url", server_or_url)
    with contextlib.closing(make_exporter(url, **kwargs)) as exporter:
        return render(exporter)


def gateway(tmp_path: Path) -> str:
    """The pinned proxy (1.108.7) with a database, background health checks read, the top 5 spenders
    by name: version and callbacks from the keyed readiness details, prices of every kind, budget
    windows, a team's soft budget, a zero budget, the proxy-wide budget row."""
    with FakeLitellmServer("1.108.7") as server:
        return scrape(server, top_n=5, deployment_health=True)


def gateway_old(tmp_path: Path) -> str:
    """The last proxy before 1.84 (1.83.14): version and callbacks in the public readiness, no
    details endpoint, per-second prices only in litellm_params; health not read."""
    with FakeLitellmServer("1.83.14") as server:
        return scrape(server, top_n=3)


def database_down(tmp_path: Path) -> str:
    """The pinned proxy with its database down: readiness 503 {"db": "disconnected"}, no spend."""
    with FakeLitellmServer("1.108.7", mode="db_down") as server:
        return scrape(server)


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


SCENARIOS = {"gateway": gateway, "gateway_old": gateway_old, "no_database": no_database,
             "database_down": database_down, "wrong_key": wrong_key, "proxy_down": proxy_down}
