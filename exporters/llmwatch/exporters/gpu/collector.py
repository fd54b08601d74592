"""The GPU exporter's scrape: read NVML, attach processes to containers, add XID counts."""

from __future__ import annotations

import time

from prometheus_client.core import Metric

from llmwatch.core.scrape import ExporterCollector, ScrapeErrors
from llmwatch.exporters.gpu import metrics
from llmwatch.exporters.gpu.containers import ContainerResolver
from llmwatch.exporters.gpu.nvml import GpuReading, NvmlSource
from llmwatch.exporters.gpu.xid import XidWatcher

# Reasons counted in llmwatch_gpu_scrape_errors_total, listed so they start at 0.
ERROR_REASONS = ("nvml_init", "nvml_lost", "nvml_call", "nvml_error", "gpu_lost", "gpu_reset_required",
                 "gpu_unknown_error", "timeout", "docker")


class GpuExporter:
    def __init__(self, nvml, *, budget: float, nvlink: bool = True, gpm: bool = True, xid_events: bool = True,
                 containers: ContainerResolver | None = None, clock=time.perf_counter, wall_clock=time.time):
        self.source = NvmlSource(nvml, nvlink=nvlink, gpm=gpm, clock=clock)
        self.budget = budget
        self.containers = containers
        self.xid = XidWatcher(nvml, wall_clock=wall_clock) if xid_events else None
        self.collector = ExporterCollector("gpu", self.scrape, reasons=ERROR_REASONS, clock=clock)
        self._docker_errors_seen = 0

    def start(self) -> "GpuExporter":
        if self.xid:
            self.xid.start()
        return self

    def close(self) -> None:
        if self.xid:
            self.xid.stop()
        self.source.close()

    def scrape(self, errors: ScrapeErrors) -> list[Metric]:
        start = time.monotonic()  # real time: the budget bounds real waits
        up = self.source.ensure_session(errors, self.budget)
        remaining = max(0.0, self.budget - (time.monotonic() - start))
        readings = self.source.read_all(remaining, errors) if up else []
        if up and self.source.system is None:  # the driver went away during this scrape
            up = False
        if not up:  # every GPU seen before is down, so per-GPU alerts fire too
            readings = [GpuReading(index, down="nvml_down") for index in sorted(self.source.known, key=int)]
        families = [*metrics.nvml_families(self.source.system, up),
                    *metrics.gpu_families(self.source.system, readings),
                    *metrics.mig_families(readings),
                    *metrics.container_families(self._container_usage(readings, errors))]
        if self.xid:
            families += metrics.xid_families(self.xid.snapshot())
        return families

    def _container_usage(self, readings: list[GpuReading], errors: ScrapeErrors):
        if self.containers is None:
            return {}
        usage: dict[tuple[str, str], tuple[int, float | None]] = {}
        for r in readings:
            for pid, used in r.processes:
                key = (r.index, self.containers.container_of(pid))
                count, total = usage.get(key, (0, 0.0))
                # NVML gives None where it cannot attribute memory; then the sum is unknown too.
                total = None if used is None or total is None else total + used
                usage[key] = (count + 1, total)
        new_errors = self.containers.lookup_errors - self._docker_errors_seen
        if new_errors:
            errors.add("docker", new_errors)
            self._docker_errors_seen = self.containers.lookup_errors
        return usage
