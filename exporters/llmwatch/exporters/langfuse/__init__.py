"""Langfuse exporter (``llmwatch langfuse``, port 9903): trace analytics for Langfuse v2, v3 and v4."""

from __future__ import annotations

from dataclasses import dataclass

from llmwatch.core.checks import url_setting
from llmwatch.core.exporter import ExporterSpec
from llmwatch.core.settings import Settings, setting

# The largest public-API answer read (reason too_large beyond, the read stopped there): metrics
# answers are aggregated per project, model and environment (limited), so a real one stays far below.
MAX_BODY_BYTES = 8 << 20

DESCRIPTION = ("Langfuse observations, tokens, cost, errors, scores and generation latency per project and model, "
               "traces per trace name and release: from Postgres for Langfuse v2, from the public metrics API for v3 "
               "and v4.")



def _dsn(value) -> None:
    if value and not str(value).startswith(("postgresql://", "postgres://", "host=", "dbname=")):
        raise ValueError("must be a PostgreSQL URL such as postgresql://user:password@host:5432/langfuse")


def _patterns(value) -> None:
    if not value or not all(isinstance(p, str) and p for p in value):
        raise ValueError(f"must be a list of environment names or patterns such as \"langfuse-*\", got {value!r}")


@dataclass(frozen=True)
class LangfuseSettings:
    port: int = setting(min=1, max=65535)
    url: str = setting(check=url_setting("http://langfuse-web:3000"), help="Langfuse web (health and public API)")
    source: str = setting(choices=("auto", "postgres", "api"), help="auto: postgres for v2, the API for v3/v4")
    public_key: str = setting(secret=True, help="project public key pk-lf-... (v3/v4)")
    secret_key: str = setting(secret=True, help="project secret key sk-lf-... (v3/v4)")
    database_url: str = setting(secret=True, check=_dsn, help="Langfuse v2's Postgres, read-only user advised")
    cache_seconds: float = setting(min=1, max=3600, help="the source is read at most this often")
    settle_seconds: float = setting(min=0, max=86400, help="rows are counted with their values as of this long "
                                                           "after their time; later changes are not")
    window_seconds: float = setting(min=10, max=86400, help="latency percentiles cover this trailing window")
    state_file: str = setting(help="where the counters are saved so a restart continues them; empty: not saved")
    environments: list[str] = setting(check=_patterns, help="environments counted (fnmatch patterns)")
    exclude_environments: list[str] = setting(check=lambda v: _patterns(v) if v else None,
                                              help="environments left out; default: Langfuse's own langfuse-*")
    environment_label: bool = setting(help="an environment label on every series")
    statement_timeout_seconds: float = setting(min=0.1, max=120)
    projects_limit: int = setting(min=1, max=1000)
    models_limit: int = setting(min=1, max=1000)
    score_names_limit: int = setting(min=1, max=1000)
    environments_limit: int = setting(min=1, max=1000)
    trace_groups: bool = setting(help="count traces per trace name and release (off when names carry ids)")
    trace_names_limit: int = setting(min=1, max=1000)
    releases_limit: int = setting(min=1, max=1000)


def build(settings: Settings[LangfuseSettings]):
    from llmwatch.core.fetch import Fetcher
    from llmwatch.exporters.langfuse.api import basic_auth
    from llmwatch.exporters.langfuse.collector import LangfuseExporter
    from llmwatch.exporters.langfuse.totals import EnvironmentFilter, Labeler

    lf: LangfuseSettings = settings.exporter
    headers = {"Accept": "application/json"}
    if lf.public_key and lf.secret_key:
        headers |= basic_auth(lf.public_key, lf.secret_key)
    labeler = Labeler(projects=lf.projects_limit, models=lf.models_limit, score_names=lf.score_names_limit,
                      environments=lf.environments_limit, trace_names=lf.trace_names_limit,
                      releases=lf.releases_limit, environment_label=lf.environment_label, trace_groups=lf.trace_groups,
                      environment_filter=EnvironmentFilter(tuple(lf.environments), tuple(lf.exclude_environments)))
    return LangfuseExporter(
        url=lf.url, fetcher=Fetcher("langfuse", headers, MAX_BODY_BYTES), budget=settings.common.scrape_budget_seconds,
        source=lf.source, database_url=lf.database_url, statement_timeout=lf.statement_timeout_seconds,
        cache_seconds=lf.cache_seconds, settle_seconds=lf.settle_seconds, window_seconds=lf.window_seconds,
        state_file=lf.state_file, labeler=labeler)


SPEC = ExporterSpec(name="langfuse", summary="Langfuse traces: counts, tokens, cost, errors, scores, latency",
                    settings=LangfuseSettings, description=DESCRIPTION, build=build)
