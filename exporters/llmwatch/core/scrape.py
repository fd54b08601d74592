"""Scrape timing and error accounting shared by every exporter.

An exporter supplies ``scrape(errors)``: a function that talks to its upstreams and returns fresh
metric families. :class:`ExporterCollector` times it, adds
``llmwatch_<exporter>_scrape_duration_seconds`` and ``llmwatch_<exporter>_scrape_errors_total{reason}``,
and turns any exception escaping it into a counted error plus a log line, so /metrics never fails.
After the scrape, when it read a large upstream body, the memory that body cost is given back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from llmwatch.core import memory

log = logging.getLogger(__name__)


class ScrapeErrors:
    """Errors by reason, counted across scrapes (the one piece of state an exporter keeps).

    Known reasons are pre-initialised to 0 so that ``increase()`` sees the first error.
    """

    def __init__(self, reasons: Iterable[str] = ()):
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {r: 0 for r in reasons}

    def add(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self._counts[reason] = self._counts.get(reason, 0) + n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def up_family(exporter: str, label: str, states: dict[str, bool], help_text: str) -> GaugeMetricFamily:
    """``llmwatch_<exporter>_up{<label>}``: 1 when that upstream answered this scrape, else 0."""
    fam = GaugeMetricFamily(f"llmwatch_{exporter}_up", help_text, labels=[label])
    for key in sorted(states, key=natural_key):
        fam.add_metric([key], 1.0 if states[key] else 0.0)
    return fam


def natural_key(key: str):
    """Sort label values "2" before "10"; other strings after numbers, alphabetically."""
    return (0, int(key), "") if key.isdigit() else (1, 0, key)


class ExporterCollector(Collector):
    """Wraps an exporter's scrape function with timing and error accounting."""

    def __init__(self, exporter: str, scrape: Callable[[ScrapeErrors], Iterable[Metric]],
                 reasons: Iterable[str] = (), clock: Callable[[], float] = time.perf_counter):
        self.exporter = exporter
        self.scrape = scrape
        self.errors = ScrapeErrors(("exception", *reasons))
        self.clock = clock

    def collect(self) -> Iterable[Metric]:
        start = self.clock()
        try:
            families = list(self.scrape(self.errors))
        except Exception:
            log.exception("scrape failed", extra={"exporter": self.exporter})
            self.errors.add("exception")
            families = []
        memory.give_back()  # the scrape's bodies are garbage now
        duration = self.clock() - start
        yield from families
        yield GaugeMetricFamily(f"llmwatch_{self.exporter}_scrape_duration_seconds",
                                "Time this exporter spent on the last scrape.", value=duration)
        errors = CounterMetricFamily(f"llmwatch_{self.exporter}_scrape_errors",
                                     "Errors met while scraping, by reason, since the exporter started.",
                                     labels=["reason"])
        for reason, count in sorted(self.errors.snapshot().items()):
            errors.add_metric([reason], count)
        yield errors

    def describe(self) -> list:
        # Registering must not trigger a scrape (an upstream call at start-up).
        return []


class _Flight:
    """One scrape in progress and, once it ends, its families or its exception."""

    def __init__(self):
        self.done = threading.Event()
        self.families: list[Metric] = []
        self.error: BaseException | None = None


def one_in_flight(scrape: Callable[[ScrapeErrors], Iterable[Metric]]) -> Callable[[ScrapeErrors], list[Metric]]:
    """``scrape`` run at most once at a time, its answer shared by every request that arrives while it
    runs: the state an exporter keeps between scrapes (caches, counted rows, up/down) stays consistent,
    upstreams are not asked more often when several Prometheus servers scrape, and requests never
    queue behind each other (taking turns made each of 20 waiting scrapers of a hanging upstream wait
    20 deadlines)."""
    lock = threading.Lock()
    current: _Flight | None = None

    def shared(errors: ScrapeErrors) -> list[Metric]:
        nonlocal current
        with lock:
            flight, leader = (current, False) if current is not None else (_Flight(), True)
            if leader:
                current = flight
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return flight.families
        try:
            flight.families = list(scrape(errors))
            return flight.families
        except BaseException as e:
            flight.error = e
            raise
        finally:
            with lock:
                current = None
            flight.done.set()

    shared.__wrapped__ = scrape  # type: ignore[attr-defined]
    return shared
