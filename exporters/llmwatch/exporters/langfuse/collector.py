"""The Langfuse exporter's scrape: detect the version, read the right source, keep the ledger of counters.

Every scrape asks ``/api/public/health`` (no auth; it names the version). Every
``cache_seconds`` the chosen source is read: the ranges that settle since the last refresh
(``[settled_until, now - settle_seconds)``, cut into hours, at most six per refresh while
catching up after an outage), the open window ``[now - settle_seconds, now]`` and the trailing
``window_seconds`` of generations for percentiles. The :class:`~.totals.Ledger` turns that into
counters (see totals.py for why they stay right across restarts, late updates and outages) and is
saved to ``state_file`` after each good refresh, so a restarted exporter continues where it
stopped. Percentiles vanish when a refresh fails; the counters stay, with
``llmwatch_langfuse_counted_until_timestamp_seconds`` telling how far they reach.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily

from llmwatch.core.fetch import ERRORS as FETCH_ERRORS, Fetcher
from llmwatch.core.cache import Expiring
from llmwatch.core.logs import WarnOnce
from llmwatch.core.scrape import ExporterCollector, ScrapeErrors, one_in_flight
from llmwatch.exporters.langfuse.api import ApiSource
from llmwatch.exporters.langfuse.postgres import ERRORS as DB_ERRORS, PostgresSource
from llmwatch.exporters.langfuse.totals import Labeler, LatencyRow, Ledger, SourceError, latency_families

log = logging.getLogger(__name__)

# no_database: a v2 server but no langfuse.database_url; unsupported_version: a v3 older than 3.61
# (no metrics API before 3.57, no input/output token measures before 3.61); version_unknown: the
# health endpoint did not name a version; truncated: an answer was cut at the API's row limit and
# could not be split into complete ones.
ERROR_REASONS = (*FETCH_ERRORS, "auth", "invalid_answer", "truncated", *DB_ERRORS, "no_database",
                 "unsupported_version", "version_unknown")
UNKNOWN = "unknown"
API_FROM = (3, 61)
SETTLE_CHUNK = timedelta(hours=1)  # one settling range at most; catching up reads several
SETTLE_RANGES_PER_REFRESH = 6


def version_tuple(version: str) -> tuple[int, ...]:
    """"3.225.4" -> (3, 225, 4); "4.0.0-rc1" -> (4, 0, 0); anything else -> ()."""
    match = re.match(r"v?([0-9]+(?:\.[0-9]+)*)", version)
    return tuple(int(p) for p in match.group(1).split(".")) if match else ()


def _ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


class LangfuseExporter:
    def __init__(self, *, url: str, fetcher: Fetcher, budget: float, source: str = "auto", database_url: str = "",
                 statement_timeout: float = 5.0, cache_seconds: float = 60.0, settle_seconds: float = 3600.0,
                 window_seconds: float = 300.0, state_file: str = "", labeler: Labeler | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.url = url.rstrip("/")
        self.fetcher = fetcher
        self.budget = budget
        self.source_setting = source
        self.database_url = database_url
        self.statement_timeout = statement_timeout
        self.cache_seconds = cache_seconds
        self.settle = timedelta(seconds=settle_seconds)
        self.window = timedelta(seconds=window_seconds)
        self.state_file = Path(state_file) if state_file else None
        self.labeler = labeler or Labeler()
        self.clock, self.wall = clock, wall
        self.version = UNKNOWN
        self.source: PostgresSource | ApiSource | None = None
        self.ledger: Ledger | None = None
        self.latency: list[LatencyRow] = []
        self.counted_until: datetime | None = None
        self.refreshed = Expiring(cache_seconds, clock)
        self.refresh_ok = False
        self.refresh_seconds: float | None = None
        self.warn = WarnOnce(log)
        # two Prometheus servers take turns; the ledger is updated by one at a time
        self.collector = ExporterCollector("langfuse", one_in_flight(self.scrape), reasons=ERROR_REASONS)

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
                self._replace(PostgresSource(self.database_url, self.statement_timeout,
                                             trace_groups=self.labeler.trace_groups))
            return self.source
        if version and version[0] == 3 and version < API_FROM:
            raise SourceError("unsupported_version", f"Langfuse {self.version}: the metrics API counts input and "
                                                     f"output tokens from 3.61 (and exists from 3.57); upgrade")
        version = version if version and version[0] >= 3 else (4,)
        if not isinstance(self.source, ApiSource) or self.source.version != version:
            self._replace(ApiSource(self.url, self.fetcher, version, self.labeler.counted,
                                    self.labeler.environment_label, clock=self.clock,
                                    trace_groups=self.labeler.trace_groups))
        return self.source

    def _replace(self, source) -> None:
        if self.source is not None:
            self.source.close()
        self.source = source

    def _ledger_for(self, identity: str) -> Ledger:
        """The ledger of this Langfuse: in memory, else the saved one, else a new one."""
        if self.ledger is not None and self.ledger.identity == identity:
            return self.ledger
        ledger = None
        if self.state_file is not None and self.state_file.exists():
            try:
                ledger = Ledger.from_json(self.state_file.read_text())
            except (OSError, ValueError) as e:
                log.warning("Langfuse exporter state not read; counting starts afresh",
                            extra={"file": str(self.state_file), "detail": str(e)})
            if ledger is not None and ledger.identity != identity:
                log.warning("Langfuse exporter state belongs to another Langfuse or configuration; counting "
                            "starts afresh", extra={"file": str(self.state_file), "saved": ledger.identity,
                                                   "now": identity})
                ledger = None
        if ledger is not None:
            self.labeler.admit(ledger.exposed)
        self.ledger = ledger or Ledger(identity)
        return self.ledger

    def _save(self, ledger: Ledger) -> None:
        if self.state_file is None:
            return
        try:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            partial = self.state_file.with_name(self.state_file.name + ".partial")
            partial.write_text(ledger.to_json())
            os.replace(partial, self.state_file)
            self.warn.clear("state")
        except OSError as e:
            self.warn("state", "Langfuse exporter state not saved; a restart will count from zero again",
                      file=str(self.state_file), detail=str(e))

    def _refresh(self, deadline: float) -> None:
        source = self._choose_source()
        started = self.clock()
        identity = f"{source.identify(max(deadline - started, 0.1))} labels {self.labeler.describe()}"
        ledger = self._ledger_for(identity)
        now = _ms(self.wall().astimezone(timezone.utc).replace(tzinfo=None))  # Langfuse stores naive UTC
        settle_to = now - self.settle
        settle: list[tuple[datetime, datetime]] = []
        start = ledger.settled_until if ledger.started else settle_to
        while ledger.started and start < settle_to and len(settle) < SETTLE_RANGES_PER_REFRESH:
            settle.append((start, min(start + SETTLE_CHUNK, settle_to)))
            start = settle[-1][1]
        caught_up = start >= settle_to
        window = (start, now) if caught_up and start < now else None  # empty ranges are never asked for
        reading = source.read(settle, window, (now - self.window, now), max(deadline - self.clock(), 0.1))
        self.refresh_seconds = self.clock() - started

        traces = ledger.traces
        for (_, end), aggregate in zip(settle, reading.settled):
            values, traces = self.labeler.values(aggregate)
            ledger.settle(end, values)
        window_values = None
        if reading.window is not None:
            window_values, traces = self.labeler.values(reading.window)
        if not ledger.started:
            ledger.start(start, window_values or {})
        ledger.observe(window_values if caught_up else None, traces)
        self.latency = self.labeler.latency(reading.latency)
        self.counted_until = max(now, self.counted_until or now)
        self._save(ledger)

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
        if self.ledger is not None and self.ledger.started and self.counted_until is not None:
            out.append(GaugeMetricFamily("llmwatch_langfuse_counted_until_timestamp_seconds", "Rows up to this "
                                         "time (Unix) are in the counters.",
                                         value=self.counted_until.replace(tzinfo=timezone.utc).timestamp()))
            out += self.ledger.families(self.labeler.environment_label)
            if self.refresh_ok:  # percentiles are a snapshot: dropped rather than served stale
                out += latency_families(self.latency, self.labeler.environment_label)
        return out
