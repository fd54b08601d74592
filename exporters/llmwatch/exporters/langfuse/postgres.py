"""Langfuse v2's Postgres, read with psycopg: the v2 exporter's I/O source.

Every query reads a time range of ``observations``, ``traces`` or ``scores`` through the
``start_time``/``timestamp`` indexes Langfuse creates, never the whole table, under a statement
timeout, in a read-only session. The connection is opened lazily and dropped on any error, so
the next refresh reconnects by itself.

The statement timeout runs on the server, so it cannot end a wait on a server (or a network) that
has stalled. Every call therefore runs in a worker thread and the scrape waits for it at most its
budget: past that the read is ``db_timeout`` (up 0) and the worker is left to end on its own
(libpq's TCP keepalives end it on a dead peer). Until it has ended, later reads fail at once with
``db_timeout``: one read in flight, never a pile of threads waiting on the same stalled server.

What is read follows Langfuse v2's own definitions: costs are ``observations_view``'s
``calculated_total_cost`` (the cost computed at ingestion, else the user's, else, for rows from
before Langfuse computed costs, usage times the price row that applied); token counters take
usage measured in tokens only (``unit`` TOKENS, or none: usage sent without a unit), not
characters, images or seconds; scores are those of data type NUMERIC or BOOLEAN. v2 has no
environments: every row reads as environment ``default``.

Langfuse stores times as ``timestamp(3) without time zone`` holding UTC, so the bounds passed
in are naive UTC datetimes.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import psycopg

from llmwatch.exporters.langfuse.totals import (DEFAULT_ENVIRONMENT, QUANTILES, Aggregate, LatencyRow, ObservationRow,
                                                Reading, ScoreRow, SourceError, TraceGroupRow, TraceRow)

TOKEN_UNITS = "(unit IS NULL OR unit = 'TOKENS')"
# {end} is "<" (a settling range, half-open) or "<=" (the open window, up to now).
OBSERVATIONS = f"""
SELECT project_id, coalesce(model, ''), type::text, level::text, count(*),
       coalesce(sum(prompt_tokens) FILTER (WHERE {TOKEN_UNITS}), 0),
       coalesce(sum(completion_tokens) FILTER (WHERE {TOKEN_UNITS}), 0),
       coalesce(sum(calculated_total_cost), 0)
FROM observations_view
WHERE start_time >= %(start)s AND start_time {{end}} %(end)s
GROUP BY 1, 2, 3, 4
"""
TRACES = """
SELECT project_id, count(*) FROM traces
WHERE "timestamp" >= %(start)s AND "timestamp" {end} %(end)s
GROUP BY 1
"""
# Traces per trace name, then per release (both nullable text in v2; NULL reads as "").
TRACE_GROUPS = """
SELECT project_id, coalesce({column}, ''), count(*) FROM traces
WHERE "timestamp" >= %(start)s AND "timestamp" {end} %(end)s
GROUP BY 1, 2
"""
SCORES = """
SELECT project_id, name, count(*), sum(value) FROM scores
WHERE "timestamp" >= %(start)s AND "timestamp" {end} %(end)s
  AND data_type IN ('NUMERIC', 'BOOLEAN') AND value IS NOT NULL
GROUP BY 1, 2
"""
LATENCY = """
SELECT project_id, coalesce(model, ''),
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (
           ORDER BY extract(epoch FROM end_time - start_time)) FILTER (WHERE end_time IS NOT NULL),
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (
           ORDER BY extract(epoch FROM completion_start_time - start_time))
           FILTER (WHERE completion_start_time IS NOT NULL)
FROM observations
WHERE type = 'GENERATION' AND start_time >= %(start)s AND start_time <= %(end)s
GROUP BY 1, 2
"""
PROJECTS = "SELECT id, name FROM projects"


# db_connect: cannot reach or log in; db_timeout: statement_timeout hit, or no answer within the
# scrape's budget; db_query: any other failure.
ERRORS = ("db_connect", "db_timeout", "db_query")
# libpq's TCP keepalives: a peer that vanished without a word ends the read within about 30 s
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 15, "keepalives_interval": 5, "keepalives_count": 3}
T = TypeVar("T")


def _percentiles(values) -> dict[str, float]:
    return {} if values is None else {q: float(v) for q, v in zip(QUANTILES, values) if v is not None}


class PostgresSource:
    name = "postgres"

    def __init__(self, dsn: str, statement_timeout: float, connect_timeout: float = 5.0, trace_groups: bool = True):
        self.dsn = dsn
        self.trace_groups = trace_groups
        self.statement_timeout_ms = max(int(statement_timeout * 1000), 1)
        self.connect_timeout = max(int(connect_timeout), 1)
        self._conn: psycopg.Connection | None = None
        self._in_flight: concurrent.futures.Future | None = None
        self._closed = False

    def _bounded(self, work: Callable[[], T], timeout: float) -> T:
        """``work()`` in a worker thread, waited for at most ``timeout`` seconds; one at a time.

        A daemon thread, not an executor's: the interpreter joins executor threads at exit, and a
        worker stuck on a stalled server would then hold the process up.
        """
        if self._in_flight is not None and not self._in_flight.done():
            raise SourceError("db_timeout", "the previous read of the database has not ended yet")
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._in_flight = future

        def run() -> None:
            try:
                future.set_result(work())
            except BaseException as e:  # handed to the waiting scrape, or dropped if it gave up
                future.set_exception(e)
            finally:
                if self._closed:  # closed while this waited: nobody else may touch the connection
                    self._drop()

        threading.Thread(target=run, name="langfuse-postgres", daemon=True).start()
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise SourceError("db_timeout", f"no answer from the database within {timeout:.1f}s") from None

    def wait(self, timeout: float) -> bool:
        """Wait for the read in flight, if any, to end; False if it is still running."""
        future = self._in_flight
        if future is not None:
            concurrent.futures.wait([future], timeout)
        return future is None or future.done()

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(
                    self.dsn, autocommit=True, connect_timeout=self.connect_timeout, application_name="llmwatch",
                    **KEEPALIVES,
                    options=f"-c statement_timeout={self.statement_timeout_ms} -c default_transaction_read_only=on")
            except psycopg.Error as e:
                raise SourceError("db_connect", _first_line(e)) from None
        return self._conn

    def identify(self, timeout: float) -> str:
        """Which database this is (server and database name, never the password): the ledger's owner."""
        info = self._bounded(self._connection, timeout).info
        return f"postgres {info.host}:{info.port}/{info.dbname}"

    def read(self, settle: list[tuple[datetime, datetime]], window: tuple[datetime, datetime] | None,
             latency: tuple[datetime, datetime], timeout: float) -> Reading:
        """All of it within ``timeout``; each statement also within the statement timeout."""
        return self._bounded(lambda: self._read(settle, window, latency), timeout)

    def _read(self, settle: list[tuple[datetime, datetime]], window: tuple[datetime, datetime] | None,
              latency: tuple[datetime, datetime]) -> Reading:
        conn = self._connection()
        try:
            with conn.cursor() as cur:
                projects = dict(cur.execute(PROJECTS).fetchall())
                name = lambda project_id: projects.get(project_id, project_id)  # noqa: E731
                reading = Reading(settled=[self._aggregate(cur, name, start, end, "<") for start, end in settle])
                if window is not None:
                    reading.window = self._aggregate(cur, name, *window, "<=")
                for project, model, lat, ttft in cur.execute(LATENCY, {"start": latency[0], "end": latency[1]}):
                    reading.latency.append(LatencyRow(name(project), None, model, _percentiles(lat), _percentiles(ttft)))
                return reading
        except psycopg.errors.QueryCanceled as e:
            raise SourceError("db_timeout", _first_line(e)) from None
        except psycopg.Error as e:
            self._drop()  # a lost server, a failover: start afresh next time
            raise SourceError("db_query", _first_line(e)) from None

    def _aggregate(self, cur, name, start: datetime, end: datetime, end_operator: str) -> Aggregate:
        params = {"start": start, "end": end}
        out = Aggregate()
        for project, model, type_, level, count, tin, tout, cost in cur.execute(
                OBSERVATIONS.format(end=end_operator), params):
            out.observations.append(ObservationRow(name(project), DEFAULT_ENVIRONMENT, model, type_, level, int(count),
                                                   float(tin), float(tout), float(cost)))
        out.traces = [TraceRow(name(project), DEFAULT_ENVIRONMENT, int(count))
                      for project, count in cur.execute(TRACES.format(end=end_operator), params)]
        for column, rows in (("name", out.trace_names), ("release", out.trace_releases))[:2 if self.trace_groups else 0]:
            rows += [TraceGroupRow(name(project), DEFAULT_ENVIRONMENT, value, int(count)) for project, value, count
                     in cur.execute(TRACE_GROUPS.format(column=column, end=end_operator), params)]
        out.scores = [ScoreRow(name(p), DEFAULT_ENVIRONMENT, n, int(c), float(s))
                      for p, n, c, s in cur.execute(SCORES.format(end=end_operator), params)]
        return out

    def close(self) -> None:
        self._closed = True
        if self._in_flight is None or self._in_flight.done():
            self._drop()
        # else the worker still uses the connection: it drops it when it ends

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
            self._conn = None


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
