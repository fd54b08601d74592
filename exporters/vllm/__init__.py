"""vLLM exporter (``python -m exporters vllm``, port 9902): every vLLM server, under the newest names."""

from __future__ import annotations

from dataclasses import dataclass

from exporters.core.settings import Settings, setting
from exporters.vllm.discovery import parse_static_targets

SECTION = "vllm"
DESCRIPTION = ("vLLM servers found through Docker or listed in settings, scraped concurrently and "
               "re-exposed under vLLM's newest metric names with a container label.")


def _prefixes(value) -> None:
    if not value or not all(isinstance(p, str) and p for p in value):
        raise ValueError(f"must be a non-empty list of metric-name prefixes such as \"vllm:\", got {value!r}")


@dataclass(frozen=True)
class VllmSettings:
    port: int = setting(min=1, max=65535)
    discovery: bool = setting(help="find vLLM containers through the Docker API")
    targets: list = setting(check=parse_static_targets,
                            help="engines outside Docker: base URLs or {name, url} tables")
    label: str = setting(help="container label: true/false opts in/out; <label>.port, <label>.url override")
    image_patterns: list = setting(help="a container whose image repository contains one of these is vLLM")
    host_address: str = setting(help="how this exporter reaches ports on the host (host-network or published)")
    networks: list = setting(help="Docker networks, shared with this exporter, whose container IPs to prefer")
    inspect_cache_seconds: float = setting(min=0, max=3600)
    metric_prefixes: list = setting(check=_prefixes, help="upstream families re-exposed")
    metadata_cache_seconds: float = setting(min=0, max=3600, help="/v1/models and /version cached this long")
    health_cache_seconds: float = setting(min=0, max=3600, help="/health cached this long")
    max_body_bytes: int = setting(min=1024, max=1 << 30)
    lora_adapters_limit: int = setting(min=0, max=10000, help="LoRA adapters listed per server at most")


SETTINGS = VllmSettings


def build(settings: Settings):
    from exporters.vllm.collector import VllmExporter, vllm_fetcher
    from exporters.vllm.discovery import DockerDiscovery, MatchRules

    vllm: VllmSettings = settings.exporter
    discovery = None
    if vllm.discovery:
        rules = MatchRules(label=vllm.label, image_patterns=tuple(vllm.image_patterns),
                           host_address=vllm.host_address, networks=tuple(vllm.networks))
        discovery = DockerDiscovery(settings.docker.host, settings.docker.timeout_seconds, rules,
                                    inspect_seconds=vllm.inspect_cache_seconds)
    return VllmExporter(
        static_targets=parse_static_targets(vllm.targets), discovery=discovery,
        fetcher=vllm_fetcher(vllm.max_body_bytes), budget=settings.common.scrape_budget_seconds,
        prefixes=tuple(vllm.metric_prefixes), metadata_seconds=vllm.metadata_cache_seconds,
        health_seconds=vllm.health_cache_seconds, lora_limit=vllm.lora_adapters_limit)
