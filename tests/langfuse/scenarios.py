"""Named Langfuse situations, shared by the golden tests and the metric-catalog test.

v2 reads a real PostgreSQL (Debian's binaries) holding Langfuse v2's schema; v3 and v4 read the
simulated public API. Both serve the same generated dataset. Each situation reads twice, as a
running exporter does: at ``NOW`` (counting starts there: every counter 0) and ``LATER``, after
new traces arrived, so the counters hold what happened in between.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

from llmwatch.core.fetch import Fetcher
from llmwatch.exporters.langfuse import MAX_BODY_BYTES
from llmwatch.exporters.langfuse.api import basic_auth
from llmwatch.exporters.langfuse.collector import LangfuseExporter
from llmwatch.exporters.langfuse.totals import EnvironmentFilter, Labeler
from llmwatch.simulation.langfuse import Dataset, FakeLangfuseServer, generate
from tests.fakes.postgres import shared
from tests.langfuse.database import create_schema, load
from tests.procs import dead_url, render

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
LATER = NOW + timedelta(minutes=10)


def naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None)


def dataset(traces: int = 200, seed: int = 7) -> Dataset:
    return generate(naive(NOW), traces=traces, seed=seed)


def arrivals(seed: int = 99, traces: int = 60) -> Dataset:
    """Traces of the ten minutes between NOW and LATER, as the application sends them."""
    return generate(naive(LATER), traces=traces, seed=seed, span=timedelta(minutes=9, seconds=59), prefix=f"a{seed}-")


def v2_database(name: str, data: Dataset | None = None) -> str:
    """A fresh database with Langfuse v2's schema and ``data`` (the standard dataset by default)."""
    dsn = shared().create_database(name)
    create_schema(dsn)
    load(dsn, data or dataset())
    return dsn


def make_exporter(url: str, *, keys: tuple[str, str] | None = ("pk-lf-test", "sk-lf-test"), wall=lambda: NOW,
                  limits: dict | None = None, environments: EnvironmentFilter = EnvironmentFilter(),
                  environment_label: bool = False, **kwargs) -> LangfuseExporter:
    headers = {"Accept": "application/json"} | (basic_auth(*keys) if keys else {})
    labeler = Labeler(**(limits or {}), environment_filter=environments, environment_label=environment_label)
    return LangfuseExporter(url=url, fetcher=Fetcher("langfuse", headers, MAX_BODY_BYTES), budget=kwargs.pop("budget", 5.0),
                            wall=wall, labeler=labeler, **kwargs)


def read_twice(url: str, data: Dataset | None = None, more: Dataset | None = None,
               load_more=None, **kwargs) -> str:
    """Read at NOW, let ``more`` arrive (into ``data``, or by ``load_more``), read at LATER, twice: as
    Prometheus would see it on its second scrape (a series new at LATER shows 0 on the first)."""
    clock = {"now": NOW}
    with contextlib.closing(make_exporter(url, wall=lambda: clock["now"], cache_seconds=0, **kwargs)) as exporter:
        render(exporter)
        if more is not None:
            data.extend(more) if load_more is None else load_more(more)
        clock["now"] = LATER
        render(exporter)
        return render(exporter)


def scrape(url: str, **kwargs) -> str:
    with contextlib.closing(make_exporter(url, **kwargs)) as exporter:
        return render(exporter)


def v2_postgres(tmp_path: Path) -> str:
    dsn = v2_database("golden_v2")
    with FakeLangfuseServer("2.95.12") as server:
        return read_twice(server.url, more=arrivals(), load_more=lambda more: load(dsn, more), database_url=dsn)


def v3_api(tmp_path: Path) -> str:
    data = dataset()
    with FakeLangfuseServer("3.225.4", data) as server:
        return read_twice(server.url, data, arrivals())


def v4_api(tmp_path: Path) -> str:
    data = dataset()
    with FakeLangfuseServer("4.16.0", data) as server:
        return read_twice(server.url, data, arrivals())


def v4_legacy_write_mode(tmp_path: Path) -> str:
    data = dataset()
    with FakeLangfuseServer("4.16.0", data, write_mode="legacy") as server:
        return read_twice(server.url, data, arrivals())


def v4_environment_label(tmp_path: Path) -> str:
    data = dataset()
    with FakeLangfuseServer("4.16.0", data) as server:
        return read_twice(server.url, data, arrivals(), environment_label=True,
                          environments=EnvironmentFilter(exclude=()))


def v3_before_3_61(tmp_path: Path) -> str:
    with FakeLangfuseServer("3.59.1", dataset()) as server:
        return scrape(server.url)


def v2_without_database(tmp_path: Path) -> str:
    with FakeLangfuseServer("2.95.12") as server:
        return scrape(server.url)


def langfuse_down(tmp_path: Path) -> str:
    return scrape(dead_url(), budget=1.0)


SCENARIOS = {"v2_postgres": v2_postgres, "v3_api": v3_api, "v4_api": v4_api,
             "v4_legacy_write_mode": v4_legacy_write_mode, "v4_environment_label": v4_environment_label,
             "v3_before_3_61": v3_before_3_61, "v2_without_database": v2_without_database,
             "langfuse_down": langfuse_down}
