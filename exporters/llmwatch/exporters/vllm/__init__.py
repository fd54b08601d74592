"""vLLM exporter (``llmwatch vllm``, port 9902): every vLLM server, under the newest names."""

from __future__ import annotations

from dataclasses import dataclass

from llmwatch.core.exporter import ExporterSpec
from llmwatch.core.settings import Settings, setting
from llmwatch.upstreams.vllm_discovery import DiscoverySettings

DESCRIPTION = ("vLLM servers found through Docker or listed in settings, scraped concurrently and "
               "re-exposed under vLLM's newest metric names with a container label.")


def _prefixes(value) -> None:
    if not value or not all(isinstance(p, str) and p for p in value):
        raise ValueError(f"must be a non-empty list of metric-name prefixes such as \"vllm:\", got {value!r}")


@dataclass(frozen=True)
class VllmSettings(DiscoverySettings):
    port: int = setting(min=1, max=65535)
    metric_prefixes: list = setting(check=_prefixes, help="upstream families re-exposed")
    metadata_cache_seconds: float = setting(min=0, max=3600, help="/v1/models and /version cached this long")
    health_cache_seconds: float = setting(min=0, max=3600, help="/health cached this long")
    max_body_bytes: int = setting(min=1024, max=1 << 30)
    lora_adapters_limit: int = setting(min=0, max=10000, help="LoRA adapters listed per server at most")
    start_grace_seconds: float = setting(min=0, max=86400, help="a container started this recently that does "
                                         "not answer yet is starting, not down")


def build(settings: Settings[VllmSettings]):
    from llmwatch.exporters.vllm.collector import VllmExporter, vllm_fetcher
    from llmwatch.upstreams.vllm_discovery import discovery_from, parse_static_targets

    vllm = settings.exporter
    return VllmExporter(
        static_targets=parse_static_targets(vllm.targets), discovery=discovery_from(vllm, settings.docker),
        fetcher=vllm_fetcher(vllm.max_body_bytes), budget=settings.common.scrape_budget_seconds,
        prefixes=tuple(vllm.metric_prefixes), metadata_seconds=vllm.metadata_cache_seconds,
        health_seconds=vllm.health_cache_seconds, lora_limit=vllm.lora_adapters_limit,
        start_grace=vllm.start_grace_seconds)


SPEC = ExporterSpec(name="vllm", summary="every vLLM server, under vLLM's newest metric names",
                    settings=VllmSettings, description=DESCRIPTION, build=build, text_only=True)
