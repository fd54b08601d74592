"""The Langfuse exporter's scrape: detect the version, read the right source, keep running totals.

Every scrape asks ``/api/public/health`` (no auth; it names the version). Every
``cache_seconds`` the chosen source is read for the range ``(counted until, now - lag]``: rows
are counted once they are ``lag`` old (SDKs send in batches), each exactly once, and the counters
grow by what the range holds. The first refresh counts back ``backfill_seconds``; after an outage
at most that much is caught up (older rows are skipped with a warning). Latency percentiles cover
the trailing ``window_seconds`` and vanish when a refresh fails; the counters stay, with
``llmwatch_langfuse_counted_until_timestamp_seconds`` telling how far they reach.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from prometheus_client.core import GaugeMetricFamily

from llmwatch.core.fetch import ERRORS as FETCH_ERRORS, Fetcher
from llmwatch.core.cache import Expiring
from llmwatch.core.logs import WarnOnce
from llmwatch.core.scrape import ExporterCollector, ScrapeErrors, one_at_a_time
from llmwatch.exporters.langfuse.api import ApiSource
from llmwatch.exporters.langfuse.postgres import ERRORS as DB_ERRORS, PostgresSource
from llmwatch.exporters.langfuse.totals import SourceError, Totals

log = logging.getLogger(__name__)

# no_database: a v2 server but no langfuse.database_url; unsupported_version: a v3 older than 3.57
# (no metrics API); version_unknown: the health endpoint did not name a version.
ERROR_REASONS = (*FETCH_ERRORS, "auth", "invalid_answer", *DB_ERRORS, "no_database", "unsupported_version",
                 "version_unknown")
UNKNOWN = "unknown"


def version_tuple(version: str) -> tuple[int, ...]:
    """"3.225.4" -> (3, 225, 4); "4.0.0-rc1" -> (4, 0, 0); anything else -> ()."""
    match = re.match(r"v?([0-9]+(?:\.[0-9]+)*)", version)
    return tuple(int(p) for p in match.group(1).split(".")) if match else ()


class LangfuseExporter:
    def __init__(self, *, url: str, fetcher: Fetcher, budget: float, source: str = "auto", database_url: str = "",
                 statement_timeout: float = 5.0, cache_seconds: float = 60.0, lag_seconds: float = 60.0,
                 window_seconds: float = 300.0, backfill_seconds: float = 3600.0, totals: Totals | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.url = url.rstrip("/")
        self.fetcher = fetcher
        self.budget = budget
        self.source_setting = source
        self.database_url = database_url
        self.statement_timeout = statement_timeout
        self.cache_seconds = cache_seconds
        self.lag = timedelta(seconds=lag_seconds)
        self.window = timedelta(seconds=window_seconds)
        self.backfill = timedelta(seconds=backfill_seconds)
        self.totals = totals or Totals()
        self.clock, self.wall = clock, wall
        self.version = UNKNOWN
        self.source: PostgresSource | ApiSource | None = None
        self.counted_until: datetime | None = None
        self.refreshed = Expiring(cache_seconds, clock)
        self.refresh_ok = False
        self.refresh_seconds: float | None = None
        self.counting = False  # totals are exposed once a first refresh succeeded
        self.warn = WarnOnce(log)
        # two Prometheus servers take turns; every row is still counted once
        self.collector = ExporterCollector("langfuse", one_at_a_time(self.scrape), reasons=ERROR_REASONS)

    def close(self) -> None:
        if self.source is not None:
            self.source.close()
        self.fetcher.close()

    def scrape(self, errors: ScrapeErrors) -> list:
        start = self.clock()
        health = self.fetcher.get_all([f"{self.url}/api/public/health"], self.budget)[0]
        try:
            body = json.loads(health.body) if health.body else None
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("version"), str) and body["version"]:
            self.version = body["version"].lstrip("v")
        if health.error not in ("", "http_status"):
            self._warn(health.error, f"health: {health.detail}")
            errors.add(health.error)

        if self.refreshed.due():
            self.refreshed.set()
            try:
                self._refresh(start + self.budget)
                self.refresh_ok = True
                self.warn.clear()
            except SourceError as e:
                self.refresh_ok = False
                errors.add(e.reason)
                self._warn(e.reason, str(e))
        return self._families(health)

    def _warn(self, reason: str, detail: str) -> None:
        # once per reason until the next good refresh
        self.warn(reason, "Langfuse not read", url=self.url, reason=reason, detail=detail, version=self.version)

    def _choose_source(self) -> PostgresSource | ApiSource:
        version = version_tuple(self.version)
        kind = self.source_setting
        if kind == "auto":
            if not version:
                raise SourceError("version_unknown", "/api/public/health named no version; set langfuse.source")
            kind = "postgres" if version[0] <= 2 else "api"
        if kind == "postgres":
            if not self.database_url:
                raise SourceError("no_database", "Langfuse v2 keeps traces in Postgres: set "
                                                 "LLMWATCH_LANGFUSE__DATABASE_URL")
            if not isinstance(self.source, PostgresSource):
                self._replace(PostgresSource(self.database_url, self.statement_timeout))
            return self.source
        major = version[0] if version else 4
        if major == 3 and version < (3, 57):
            raise SourceError("unsupported_version", f"Langfuse {self.version} has no metrics API (3.57 and newer)")
        if not isinstance(self.source, ApiSource) or self.source.major != max(major, 3):
            self._replace(ApiSource(self.url, self.fetcher, max(major, 3)))
        return self.source

    def _replace(self, source) -> None:
        if self.source is not None:
            self.source.close()
        self.source = source

    def _refresh(self, deadline: float) -> None:
        source = self._choose_source()
        now = self.wall().astimezone(timezone.utc).replace(tzinfo=None)  # Langfuse stores naive UTC
        until = now - self.lag
        since = self.counted_until or until - self.backfill
        if since < until - self.backfill:
            log.warning("Langfuse rows older than backfill_seconds were not counted (the source was unreadable)",
                        extra={"from": since.isoformat(), "to": (until - self.backfill).isoformat()})
            since = until - self.backfill
        since = min(since, until)  # the clock went back: count nothing, still read the window
        started = self.clock()
        batch = source.read(since, until, now - self.window, now, max(deadline - started, 0.1))
        self.refresh_seconds = self.clock() - started
        self.totals.add(batch)
        self.counted_until = max(until, self.counted_until or until)  # never back: rows are counted once
        self.counting = True

    def _families(self, health) -> list:
        up = self.refresh_ok and health.error in ("", "http_status")
        out = [GaugeMetricFamily("llmwatch_langfuse_up", "1 when Langfuse's health endpoint answered and the last "
                                 "read of its data succeeded.", value=float(up))]
        if health.error in ("", "http_status"):
            out.append(GaugeMetricFamily("llmwatch_langfuse_healthy", "1 when /api/public/health answered 200.",
                                         value=float(health.status == 200)))
        info = GaugeMetricFamily("llmwatch_langfuse_info", "Langfuse version and where its data is read from "
                                 "(postgres for v2, api for v3/v4); always 1.", labels=["version", "source"])
        info.add_metric([self.version, self.source.name if self.source else "none"], 1.0)
        out.append(info)
        if self.refresh_seconds is not None:
            out.append(GaugeMetricFamily("llmwatch_langfuse_read_duration_seconds", "Time the last read of the "
                                         "source took (database or metrics API).", value=self.refresh_seconds))
        if self.counting:
            out.append(GaugeMetricFamily("llmwatch_langfuse_counted_until_timestamp_seconds", "Rows up to this "
                                         "time (Unix) are in the counters.",
                                         value=self.counted_until.replace(tzinfo=timezone.utc).timestamp()))
            families = self.totals.families()
            if not self.refresh_ok:  # percentiles are a snapshot: drop them rather than serve them stale
                families = [f for f in families if f.type != "gauge"]
            out += families
        return out
