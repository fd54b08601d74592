"""A simulated cAdvisor /metrics (cAdvisor needs a Docker engine and cgroups, which tests lack).

Families, types and labels as cAdvisor's Prometheus docs (docs/storage/prometheus.md) name them,
for the metric groups compose leaves enabled (cpu, memory, network, oom_event; not disk/diskIO):
per container ``id``, ``image``, ``name`` and the whitelisted compose labels, plus the root
cgroup (``id="/"``, empty ``name``) that every real cAdvisor also reports. Counters move with the
wall clock, so rate() has something to show.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from llmwatch.simulation.server import FakeServer, exposition


@dataclass
class Container:
    name: str
    image: str
    service: str
    cpu_cores: float = 0.5  # CPU seconds per second
    memory: int = 2 << 30
    memory_limit: int = 0  # 0: no limit, as cAdvisor reports it
    started: float = field(default_factory=time.time)
    ooms: int = 0


def sample_containers() -> list[Container]:
    return [Container("vllm-llama-3.1-70b", "vllm/vllm-openai:v0.11.0", "vllm-llama-3.1-70b", 1.2, 24 << 30),
            Container("vllm-qwen3-32b", "vllm/vllm-openai:v0.6.4", "vllm-qwen3-32b", 0.8, 18 << 30),
            Container("litellm", "ghcr.io/berriai/litellm:main-v1.81.3", "litellm", 0.3, 1 << 30, 4 << 30),
            Container("prometheus", "prom/prometheus:v3.13.2", "prometheus", 0.1, 600 << 20, 8 << 30, ooms=0)]


class FakeCadvisor(FakeServer):
    def __init__(self, containers: list[Container] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.containers = containers if containers is not None else sample_containers()
        self.born = time.time()

    def answer(self, path: str, headers: dict[str, str]) -> tuple[int, str, bytes]:
        if path.split("?")[0] != "/metrics":
            return 404, "text/plain", b"404 page not found"
        return 200, "text/plain; version=0.0.4", exposition(self.families(time.time()))

    def families(self, now: float) -> list:
        labels = ["id", "image", "name", "container_label_com_docker_compose_service",
                  "container_label_com_docker_compose_project"]
        f = {
            "cpu": CounterMetricFamily("container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.",
                                       labels=labels + ["cpu"]),
            "throttled": CounterMetricFamily("container_cpu_cfs_throttled_seconds_total",
                                             "Total time duration the container has been throttled.", labels=labels),
            "working_set": GaugeMetricFamily("container_memory_working_set_bytes", "Current working set in bytes.",
                                             labels=labels),
            "rss": GaugeMetricFamily("container_memory_rss", "Size of RSS in bytes.", labels=labels),
            "limit": GaugeMetricFamily("container_spec_memory_limit_bytes", "Memory limit for the container.",
                                       labels=labels),
            "rx": CounterMetricFamily("container_network_receive_bytes_total", "Cumulative count of bytes received",
                                      labels=labels + ["interface"]),
            "tx": CounterMetricFamily("container_network_transmit_bytes_total",
                                      "Cumulative count of bytes transmitted", labels=labels + ["interface"]),
            "oom": CounterMetricFamily("container_oom_events_total",
                                       "Count of out of memory events observed for the container", labels=labels),
            "start": GaugeMetricFamily("container_start_time_seconds", "Start time of the container since unix "
                                       "epoch in seconds.", labels=labels),
            "seen": GaugeMetricFamily("container_last_seen", "Last time a container was seen by the exporter",
                                      labels=labels),
        }
        root = ["/", "", "", "", ""]
        f["cpu"].add_metric(root + ["total"], 5.0 * (now - self.born) + 1e5)
        f["working_set"].add_metric(root, 60 << 30)
        for i, c in enumerate(self.containers):
            values = [f"/system.slice/docker-{i:064x}.scope", c.image, c.name, c.service, "llmwatch"]
            up = now - c.started
            f["cpu"].add_metric(values + ["total"], c.cpu_cores * up)
            f["throttled"].add_metric(values, 0.01 * c.cpu_cores * up)
            f["working_set"].add_metric(values, c.memory)
            f["rss"].add_metric(values, int(c.memory * 0.8))
            f["limit"].add_metric(values, c.memory_limit)
            f["rx"].add_metric(values + ["eth0"], 2e5 * up)
            f["tx"].add_metric(values + ["eth0"], 5e5 * up)
            f["oom"].add_metric(values, c.ooms)
            f["start"].add_metric(values, c.started)
            f["seen"].add_metric(values, now)
        return list(f.values())

