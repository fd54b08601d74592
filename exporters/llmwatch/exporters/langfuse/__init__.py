"""Langfuse exporter (``llmwatch langfuse``, port 9903): trace analytics for Langfuse v2, v3 and v4."""

from __future__ import annotations

from dataclasses import dataclass

from llmwatch.core.checks import url_setting
from llmwatch.core.exporter import ExporterSpec
from llmwatch.core.settings import Settings, setting

DESCRIPTION = ("Langfuse observations, tokens, cost, errors, scores and generation latency per project and model: "
               "from Postgres for Langfuse v2, from the public metrics API for v3 and v4.")



def _dsn(value) -> None:
    if value and not str(value).startswith(("postgresql://", "postgres://", "host=", "dbname=")):
        raise ValueError("must be a PostgreSQL URL such as postgresql://user:password@host:5432/langfuse")


@dataclass(frozen=True)
class LangfuseSettings:
    port: int = setting(min=1, max=65535)
    url: str = setting(check=url_setting("http://langfuse-web:3000"), help="Langfuse web (health and public API)")
    source: str = setting(choices=("auto", "postgres", "api"), help="auto: postgres for v2, the API for v3/v4")
    public_key: str = setting(secret=True, help="project public key pk-lf-... (v3/v4)")
    secret_key: str = setting(secret=True, help="project secret key sk-lf-... (v3/v4)")
    database_url: str = setting(secret=True, check=_dsn, help="Langfuse v2's Postgres, read-only user advised")
    cache_seconds: float = setting(min=1, max=3600, help="the source is read at most this often")
    lag_seconds: float = setting(min=0, max=3600, help="rows are counted once this old")
    window_seconds: float = setting(min=10, max=86400, help="latency percentiles cover this trailing window")
    backfill_seconds: float = setting(min=0, max=7 * 86400, help="counted back at start; most caught up after an outage")
    statement_timeout_seconds: float = setting(min=0.1, max=120)
    projects_limit: int = setting(min=1, max=1000)
    models_limit: int = setting(min=1, max=1000)
    score_names_limit: int = setting(min=1, max=1000)



def build(settings: Settings[LangfuseSettings]):
    from llmwatch.core.fetch import Fetcher
    from llmwatch.exporters.langfuse.api import basic_auth
    from llmwatch.exporters.langfuse.collector import LangfuseExporter
    from llmwatch.exporters.langfuse.totals import Totals

    lf: LangfuseSettings = settings.exporter
    headers = {"Accept": "application/json"}
    if lf.public_key and lf.secret_key:
        headers |= basic_auth(lf.public_key, lf.secret_key)
    return LangfuseExporter(
        url=lf.url, fetcher=Fetcher("langfuse", headers), budget=settings.common.scrape_budget_seconds,
        source=lf.source, database_url=lf.database_url, statement_timeout=lf.statement_timeout_seconds,
        cache_seconds=lf.cache_seconds, lag_seconds=lf.lag_seconds, window_seconds=lf.window_seconds,
        backfill_seconds=lf.backfill_seconds,
        totals=Totals(projects=lf.projects_limit, models=lf.models_limit, score_names=lf.score_names_limit))


SPEC = ExporterSpec(name="langfuse", summary="Langfuse traces: counts, tokens, cost, errors, scores, latency",
                    settings=LangfuseSettings, description=DESCRIPTION, build=build)
