"""Named Langfuse situations, shared by the golden tests and the metric-catalog test.

v2 reads a real PostgreSQL (Debian's binaries) holding Langfuse v2's schema; v3 and v4 read the
simulated public API. Both serve the same generated dataset at a fixed wall-clock time.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timezone
from pathlib import Path

from llmwatch.core.fetch import Fetcher
from llmwatch.exporters.langfuse.api import basic_auth
from llmwatch.exporters.langfuse.collector import LangfuseExporter
from llmwatch.simulation.langfuse import Dataset, FakeLangfuseServer, generate
from llmwatch.exporters.langfuse.totals import Totals
from tests.fakes.postgres import shared
from tests.langfuse.database import create_schema, load
from tests.procs import dead_url, render

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)


def dataset(traces: int = 200, seed: int = 7) -> Dataset:
    return generate(NOW.replace(tzinfo=None), traces=traces, seed=seed)


def v2_database(name: str, data: Dataset | None = None) -> str:
    """A fresh database with Langfuse v2's schema and ``data`` (the standard dataset by default)."""
    dsn = shared().create_database(name)
    create_schema(dsn)
    load(dsn, data or dataset())
    return dsn


def make_exporter(url: str, *, keys: tuple[str, str] | None = ("pk-lf-test", "sk-lf-test"), wall=lambda: NOW,
                  limits: dict | None = None, **kwargs) -> LangfuseExporter:
    headers = {"Accept": "application/json"} | (basic_auth(*keys) if keys else {})
    return LangfuseExporter(url=url, fetcher=Fetcher("langfuse", headers), budget=kwargs.pop("budget", 5.0),
                            wall=wall, totals=Totals(**(limits or {})), **kwargs)


def scrape(url: str, **kwargs) -> str:
    with contextlib.closing(make_exporter(url, **kwargs)) as exporter:
        return render(exporter)


def v2_postgres(tmp_path: Path) -> str:
    dsn = v2_database("golden_v2")
    with FakeLangfuseServer("2.95.12") as server:
        return scrape(server.url, database_url=dsn)


def v3_api(tmp_path: Path) -> str:
    with FakeLangfuseServer("3.225.4", dataset()) as server:
        return scrape(server.url)


def v4_api(tmp_path: Path) -> str:
    with FakeLangfuseServer("4.16.0", dataset()) as server:
        return scrape(server.url)


def v2_without_database(tmp_path: Path) -> str:
    with FakeLangfuseServer("2.95.12") as server:
        return scrape(server.url)


def langfuse_down(tmp_path: Path) -> str:
    return scrape(dead_url(), budget=1.0)


SCENARIOS = {"v2_postgres": v2_postgres, "v3_api": v3_api, "v4_api": v4_api,
             "v2_without_database": v2_without_database, "langfuse_down": langfuse_down}
