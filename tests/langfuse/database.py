"""Langfuse v2's Postgres for tests: the schema (schema_v2.sql) and a dataset loaded with COPY."""

from __future__ import annotations

from pathlib import Path

import psycopg

from llmwatch.simulation.langfuse import Dataset

SCHEMA = Path(__file__).with_name("schema_v2.sql")


def create_schema(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA.read_text())


def v2_records(data: Dataset) -> Dataset:
    """What Langfuse v2 would hold: it has no environments, so no traces of Langfuse's own either."""
    internal = lambda r: r.environment.startswith("langfuse-")  # noqa: E731
    return Dataset(projects=data.projects, traces=[t for t in data.traces if not internal(t)],
                   observations=[o for o in data.observations if not internal(o)],
                   scores=[s for s in data.scores if not internal(s)], models=data.models)


def load(dsn: str, data: Dataset) -> None:
    """Insert projects (if new), prices, traces, observations and scores; then ANALYZE, as a live database would be."""
    data = v2_records(data)
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.cursor() as cur:
            for project_id, name in data.projects.items():
                cur.execute("INSERT INTO projects (id, name) VALUES (%s, %s) ON CONFLICT (id) DO NOTHING",
                            (project_id, name))
            for m in data.models:
                cur.execute("INSERT INTO models (id, project_id, model_name, match_pattern, start_date, input_price, "
                            "output_price, total_price, unit) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                            "ON CONFLICT (id) DO NOTHING",
                            (m.id, m.project_id, m.model_name, m.match_pattern, m.start_date, m.input_price,
                             m.output_price, m.total_price, m.unit))
            with cur.copy('COPY traces (id, project_id, name, release, "timestamp") FROM STDIN') as copy:
                for t in data.traces:
                    copy.write_row((t.id, t.project_id, t.name, t.release, t.timestamp))
            with cur.copy("COPY observations (id, trace_id, project_id, type, level, name, model, start_time, "
                          "end_time, completion_start_time, prompt_tokens, completion_tokens, total_tokens, unit, "
                          "internal_model, parent_observation_id, total_cost, calculated_total_cost) FROM STDIN") as copy:
                for o in data.observations:
                    copy.write_row((o.id, o.trace_id, o.project_id, o.type, o.level, o.name, o.model, o.start_time,
                                    o.end_time, o.completion_start_time, o.prompt_tokens, o.completion_tokens,
                                    o.prompt_tokens + o.completion_tokens, o.unit, o.internal_model,
                                    o.parent_observation_id, o.total_cost, o.calculated_total_cost))
            with cur.copy('COPY scores (id, project_id, trace_id, name, value, data_type, string_value, source, '
                          '"timestamp") FROM STDIN') as copy:
                for s in data.scores:
                    copy.write_row((s.id, s.project_id, s.trace_id, s.name, s.value, s.data_type, s.string_value,
                                    "API", s.timestamp))
        conn.execute("ANALYZE")
