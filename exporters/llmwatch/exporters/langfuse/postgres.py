"""Langfuse v2's Postgres, read with psycopg: the v2 exporter's I/O source.

Every query reads a time range of ``observations``, ``traces`` or ``scores`` through the
``start_time``/``timestamp`` indexes Langfuse creates, never the whole table, under a statement
timeout, in a read-only session. The connection is opened lazily and dropped on any error, so
the next refresh reconnects by itself.

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

from datetime import datetime

import psycopg

from llmwatch.exporters.langfuse.totals import (DEFAULT_ENVIRONMENT, QUANTILES, Aggregate, LatencyRow, ObservationRow,
                                                Reading, ScoreRow, SourceError, TraceRow)

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


# db_connect: cannot reach or log in; db_timeout: statement_timeout hit; db_query: any other failure.
ERRORS = ("db_connect", "db_timeout", "db_query")


def _percentiles(values) -> dict[str, float]:
    return {} if values is None else {q: float(v) for q, v in zip(QUANTILES, values) if v is not None}


class PostgresSource:
    name = "postgres"

    def __init__(self, dsn: str, statement_timeout: float, connect_timeout: float = 5.0):
        self.dsn = dsn
        self.statement_timeout_ms = max(int(statement_timeout * 1000), 1)
        self.connect_timeout = max(int(connect_timeout), 1)
        self._conn: psycopg.Connection | None = None

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(
                    self.dsn, autocommit=True, connect_timeout=self.connect_timeout, application_name="llmwatch",
                    options=f"-c statement_timeout={self.statement_timeout_ms} -c default_transaction_read_only=on")
            except psycopg.Error as e:
                raise SourceError("db_connect", _first_line(e)) from None
        return self._conn

    def identify(self, timeout: float) -> str:
        """Which database this is (server and database name, never the password): the ledger's owner."""
        info = self._connection().info
        return f"postgres {info.host}:{info.port}/{info.dbname}"

    def read(self, settle: list[tuple[datetime, datetime]], window: tuple[datetime, datetime] | None,
             latency: tuple[datetime, datetime], timeout: float) -> Reading:
        """Each statement is bounded by the statement timeout, not ``timeout`` (one per query)."""
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
            self.close()  # a lost server, a failover: start afresh next time
            raise SourceError("db_query", _first_line(e)) from None

    @staticmethod
    def _aggregate(cur, name, start: datetime, end: datetime, end_operator: str) -> Aggregate:
        params = {"start": start, "end": end}
        out = Aggregate()
        for project, model, type_, level, count, tin, tout, cost in cur.execute(
                OBSERVATIONS.format(end=end_operator), params):
            out.observations.append(ObservationRow(name(project), DEFAULT_ENVIRONMENT, model, type_, level, int(count),
                                                   float(tin), float(tout), float(cost)))
        out.traces = [TraceRow(name(project), DEFAULT_ENVIRONMENT, int(count))
                      for project, count in cur.execute(TRACES.format(end=end_operator), params)]
        out.scores = [ScoreRow(name(p), DEFAULT_ENVIRONMENT, n, int(c), float(s))
                      for p, n, c, s in cur.execute(SCORES.format(end=end_operator), params)]
        return out

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
            self._conn = None


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
