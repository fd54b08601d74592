"""LiteLLM exporter (``llmwatch litellm``, port 9901): what LiteLLM's own /metrics lacks."""

from __future__ import annotations

from dataclasses import dataclass

from llmwatch.core.checks import url_setting
from llmwatch.core.exporter import ExporterSpec
from llmwatch.core.settings import Settings, setting

# The largest admin-API answer read (reason too_large beyond, the read stopped there): lists are
# paged and capped by max_rows, so a real answer stays far below; each concurrent read may hold this much.
MAX_BODY_BYTES = 4 << 20

DESCRIPTION = ("The LiteLLM proxy's liveness, readiness, database and version, its deployments and prices, "
               "spend and budgets per key, team and user (top N), and 429s per deployment, from its admin API. "
               "LiteLLM's own litellm_* metrics are scraped by Prometheus directly.")



@dataclass(frozen=True)
class LitellmSettings:
    port: int = setting(min=1, max=65535)
    url: str = setting(check=url_setting("http://litellm:4000"), help="the proxy's base URL")
    master_key: str = setting(secret=True, help="LiteLLM master key (admin API); environment only")
    top_n: int = setting(min=1, max=1000, help="keys, teams and users shown by name; the rest summed as \"other\"")
    max_rows: int = setting(min=100, max=1_000_000, help="keys/users read per refresh at most")
    metadata_cache_seconds: float = setting(min=0, max=3600, help="/model/info read again after this long")
    admin_cache_seconds: float = setting(min=0, max=86400, help="spend, budgets and 429s read again after this long")
    deployment_health: bool = setting(help="read /health; only with LiteLLM's background_health_checks: true")
    health_cache_seconds: float = setting(min=0, max=3600)



def build(settings: Settings[LitellmSettings]):
    from llmwatch.core.fetch import Fetcher
    from llmwatch.exporters.litellm.collector import LitellmExporter

    litellm: LitellmSettings = settings.exporter
    headers = {"Accept": "application/json"}
    if litellm.master_key:
        headers["Authorization"] = f"Bearer {litellm.master_key}"
    return LitellmExporter(
        url=litellm.url, fetcher=Fetcher("litellm", headers, MAX_BODY_BYTES), budget=settings.common.scrape_budget_seconds,
        top_n=litellm.top_n, max_rows=litellm.max_rows, metadata_seconds=litellm.metadata_cache_seconds,
        admin_seconds=litellm.admin_cache_seconds, deployment_health=litellm.deployment_health,
        health_seconds=litellm.health_cache_seconds)


SPEC = ExporterSpec(name="litellm", summary="the LiteLLM proxy's health, deployments, prices, spend and budgets",
                    settings=LitellmSettings, description=DESCRIPTION, build=build)
