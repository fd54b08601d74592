"""GPU exporter (``python -m exporters gpu``, port 9445): NVML per GPU and per container."""

from __future__ import annotations

from dataclasses import dataclass

from exporters.core.settings import Settings, setting

SECTION = "gpu"
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
    simulate: bool = setting(help="serve a simulated 8xH200 node with vLLM containers instead of NVML (demo, tests)")
    simulate_load_url: str = setting(help="simulated node only: each container's load follows this JSON (demo /load)")


SETTINGS = GpuSettings


def build(settings: Settings):
    """The exporter for these settings, started (XID thread running)."""
    from exporters.gpu.collector import GpuExporter
    from exporters.gpu.containers import ContainerResolver, docker_lookup

    gpu: GpuSettings = settings.exporter
    containers = None
    if gpu.simulate:
        from exporters.gpu.fakenvml import SimulatedContainers, simulated_node

        nvml = simulated_node()
        if gpu.simulate_load_url:
            from exporters.gpu.fakenvml import http_loads

            nvml.load_source = http_loads(gpu.simulate_load_url)
        containers = SimulatedContainers() if gpu.containers else None
    else:
        import pynvml as nvml
    if gpu.containers and not gpu.simulate:
        containers = ContainerResolver(gpu.proc_root, docker_lookup(settings.docker.host, settings.docker.timeout_seconds),
                                       cache_seconds=gpu.container_cache_seconds)
    return GpuExporter(nvml, budget=settings.common.scrape_budget_seconds, nvlink=gpu.nvlink, gpm=gpu.gpm,
                       xid_events=gpu.xid_events, containers=containers).start()
