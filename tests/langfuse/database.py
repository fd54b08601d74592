"""Langfuse v2's Postgres for tests: the schema (schema_v2.sql) and a dataset loaded with COPY."""

from __future__ import annotations

from pathlib import Path

import psycopg

from llmwatch.simulation.langfuse import Dataset

SCHEMA = Path(__file__).with_name("schema_v2.sql")


def create_schema(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA.read_text())


def load(dsn: str, data: Dataset) -> None:
    """Insert projects (if new), traces, observations and scores; then ANALYZE, as a live database would be."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.cursor() as cur:
            for project_id, name in data.projects.items():
                cur.execute("INSERT INTO projects (id, name) VALUES (%s, %s) ON CONFLICT (id) DO NOTHING",
                            (project_id, name))
            with cur.copy('COPY traces (id, project_id, name, "timestamp") FROM STDIN') as copy:
                for t in data.traces:
                    copy.write_row((t.id, t.project_id, t.name, t.timestamp))
            with cur.copy("COPY observations (id, trace_id, project_id, type, level, name, model, start_time, "
                          "end_time, completion_start_time, prompt_tokens, completion_tokens, total_tokens, "
                          "total_cost, calculated_total_cost) FROM STDIN") as copy:
                for o in data.observations:
                    copy.write_row((o.id, o.trace_id, o.project_id, o.type, o.level, o.name, o.model, o.start_time,
                                    o.end_time, o.completion_start_time, o.prompt_tokens, o.completion_tokens,
                                    o.prompt_tokens + o.completion_tokens, o.total_cost, o.calculated_total_cost))
            with cur.copy('COPY scores (id, project_id, trace_id, name, value, data_type, "timestamp") FROM STDIN') as copy:
                for s in data.scores:
                    copy.write_row((s.id, s.project_id, s.trace_id, s.name, s.value, s.data_type, s.timestamp))
        conn.execute("ANALYZE")
