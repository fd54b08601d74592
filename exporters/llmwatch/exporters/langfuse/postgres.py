"""Langfuse v2's Postgres, read with psycopg: the v2 exporter's I/O source.

Every query reads a time range of ``observations``, ``traces`` or ``scores`` through the
``start_time``/``timestamp`` indexes Langfuse creates, never the whole table, under a statement
timeout, in a read-only session. The connection is opened lazily and dropped on any error, so
the next refresh reconnects by itself.

Langfuse stores times as ``timestamp(3) without time zone`` holding UTC, so the bounds passed
in are naive UTC datetimes.
"""

from __future__ import annotations

from datetime import datetime

import psycopg

from llmwatch.exporters.langfuse.totals import QUANTILES, Batch, LatencyRow, ObservationRow, SourceError

OBSERVATIONS = """
SELECT project_id, coalesce(model, ''), type::text, level::text, count(*),
       coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0),
       coalesce(sum(coalesce(total_cost, calculated_total_cost)), 0)
FROM observations
WHERE start_time > %(since)s AND start_time <= %(until)s
GROUP BY 1, 2, 3, 4
"""
TRACES = """
SELECT project_id, count(*) FROM traces
WHERE timestamp > %(since)s AND timestamp <= %(until)s
GROUP BY 1
"""
SCORES = """
SELECT project_id, name, count(value), coalesce(sum(value), 0) FROM scores
WHERE timestamp > %(since)s AND timestamp <= %(until)s AND value IS NOT NULL
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
WHERE type = 'GENERATION' AND start_time > %(window_from)s AND start_time <= %(now)s
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

    def read(self, since: datetime, until: datetime, window_from: datetime, now: datetime, timeout: float) -> Batch:
        """Each statement is bounded by the statement timeout, not ``timeout`` (one per query)."""
        params = {"since": since, "until": until, "window_from": window_from, "now": now}
        conn = self._connection()
        try:
            with conn.cursor() as cur:
                projects = dict(cur.execute(PROJECTS).fetchall())
                name = lambda project_id: projects.get(project_id, project_id)
                batch = Batch()
                for project, model, type_, level, count, tin, tout, cost in cur.execute(OBSERVATIONS, params):
                    batch.observations.append(ObservationRow(name(project), model, type_, level, int(count),
                                                             float(tin), float(tout), float(cost)))
                batch.traces = {name(project): int(count) for project, count in cur.execute(TRACES, params)}
                batch.scores = [(name(p), n, int(c), float(s)) for p, n, c, s in cur.execute(SCORES, params)]
                for project, model, latency, ttft in cur.execute(LATENCY, params):
                    batch.latency.append(LatencyRow(name(project), model, _percentiles(latency), _percentiles(ttft)))
                return batch
        except psycopg.errors.QueryCanceled as e:
            raise SourceError("db_timeout", _first_line(e)) from None
        except psycopg.Error as e:
            self.close()  # a lost server, a failover: start afresh next time
            raise SourceError("db_query", _first_line(e)) from None

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
