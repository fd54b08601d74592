"""GPU exporter (``llmwatch gpu``, port 9445): NVML per GPU and per container."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmwatch.core.exporter import ExporterSpec
from llmwatch.core.settings import Settings, setting

DESCRIPTION = "NVIDIA GPUs through NVML: utilisation, memory, thermals, power, clocks, errors, XIDs, processes per container."


@dataclass(frozen=True)
class GpuSettings:
    port: int = setting(min=1, max=65535)
    proc_root: str = setting(help="host /proc, for pid -> container")
    containers: bool = setting(help="map GPU processes to Docker containers")
    container_cache_seconds: float = setting(min=0, max=3600)
    xid_events: bool = setting(help="watch NVML XID events in a background thread")
    nvlink: bool = setting()
    gpm: bool = setting(help="Hopper+ GPM activity metrics")



def build(settings: Settings[GpuSettings], *, nvml: Any = None, containers: Any = None):
    """The exporter for these settings, started (XID thread running).

    ``nvml`` is anything shaped like pynvml's module (the real one by default; the demo and the
    tests hand in a simulated node); ``containers`` maps pids to containers (by default through
    /proc and Docker when ``gpu.containers`` is on).
    """
    from llmwatch.exporters.gpu.collector import GpuExporter
    from llmwatch.exporters.gpu.containers import ContainerResolver, docker_lookup

    gpu = settings.exporter
    if nvml is None:
        import pynvml as nvml
    if not gpu.containers:
        containers = None
    elif containers is None:
        containers = ContainerResolver(gpu.proc_root, docker_lookup(settings.docker.host, settings.docker.timeout_seconds),
                                       cache_seconds=gpu.container_cache_seconds)
    return GpuExporter(nvml, budget=settings.common.scrape_budget_seconds, nvlink=gpu.nvlink, gpm=gpu.gpm,
                       xid_events=gpu.xid_events, containers=containers).start()


SPEC = ExporterSpec(name="gpu", summary="NVIDIA GPUs through NVML, per GPU and per container",
                    settings=GpuSettings, description=DESCRIPTION, build=build, text_only=True)
