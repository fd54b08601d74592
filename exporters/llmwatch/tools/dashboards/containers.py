"""Docker containers (cAdvisor): CPU, memory against limits, network, restarts and OOM kills."""

from __future__ import annotations

from llmwatch.tools.dashboards.drill import drill, related
from llmwatch.tools.dashboards.grafana import (BAD, FIRING_ALERTS, INFO, OK, WARN, annotation, dashboard, link, prom,
                                          query_variable, row, stat, steps, table, timeseries)

UID = "llmwatch-containers"
C = 'name=~"$container"'
RATE = "[$__rate_interval]"
LOGS = [{"title": "Logs of ${__field.labels.name}", "targetBlank": False,
         "url": "/d/llmwatch-logs?var-container=${__field.labels.name}&${__url_time_range}"}]


def build() -> dict:
    panels = [
        row("At a glance"),
        stat("Containers", "Containers cAdvisor sees running now. Bad: fewer than you deployed.",
             [prom(f'count(container_last_seen{{{C}, name!=""}})')], "none", thresholds=steps(INFO), graph=False, w=6),
        stat("Restarts", "Container starts in the selected range beyond the first (a container whose "
             "start time changed). Bad: any you did not cause — a crash loop.",
             [prom(f'sum(changes(container_start_time_seconds{{{C}, name!=""}}[$__range]))')], "none", decimals=0,
             thresholds=steps(OK, (WARN, 1), (BAD, 3)), graph=False, w=6),
        stat("OOM kills", "Out-of-memory kills inside containers in the selected range. Bad: any — the "
             "container's memory limit is too low or it leaks.",
             [prom(f'sum(increase(container_oom_events_total{{{C}, name!=""}}[$__range]))')], "none", decimals=0,
             thresholds=steps(OK, (BAD, 1)), graph=False, w=6),
        stat("CPU used", "Cores used by all selected containers together.",
             [prom(f'sum(name:container_cpu_usage_seconds:rate5m{{{C}}})')], "suffix: cores",
             decimals=1, thresholds=steps(INFO), w=6),

        row("CPU and memory"),
        timeseries("CPU per container", "Cores used per container. Bad: a vLLM API server pinned at 1 core "
                   "(its event loop is single-threaded; it becomes the bottleneck).",
                   [prom(f'name:container_cpu_usage_seconds:rate5m{{{C}}}',
                         "{{name}}")], "suffix: cores", minimum=0, links=LOGS),
        timeseries("CPU throttled", "Share of time each container was held back by its CPU limit. Bad: "
                   "above a few percent — raise the limit or expect latency.",
                   [prom(f'name:container_cpu_cfs_throttled_seconds:rate5m{{{C}}}',
                         "{{name}}")], "percentunit", minimum=0, thresholds=steps(OK, (WARN, 0.05), (BAD, 0.25)),
                   threshold_lines=True, links=LOGS),
        timeseries("Memory per container", "Working set (memory the kernel cannot reclaim) per container. "
                   "This is what the OOM killer compares with the limit.",
                   [prom(f'sum by (name) (container_memory_working_set_bytes{{{C}, name!=""}})', "{{name}}")],
                   "bytes", minimum=0, links=LOGS),
        timeseries("Memory against limit", "Working set as a share of the container's memory limit (only "
                   "containers with a limit). Bad: near 100 % — the next spike is an OOM kill.",
                   [prom(f'sum by (name) (container_memory_working_set_bytes{{{C}, name!=""}}) / sum by (name) '
                         f'(container_spec_memory_limit_bytes{{{C}, name!=""}} > 0)', "{{name}}")],
                   "percentunit", minimum=0, maximum=1, thresholds=steps(OK, (WARN, 0.8), (BAD, 0.95)),
                   threshold_lines=True, links=LOGS),

        row("Network, restarts and OOM"),
        timeseries("Network per container", "Bytes per second in and out of each container.",
                   [prom(f'name:container_network_receive_bytes:rate5m{{{C}}}',
                         "{{name}} in"),
                    prom(f'name:container_network_transmit_bytes:rate5m{{{C}}}',
                         "{{name}} out")], "Bps", minimum=0, w=8),
        timeseries("Restarts", "Container (re)starts per interval. Bad: repeated bars for one container — "
                   "a crash loop (the ContainerRestarting alert fires at 3 in 15 minutes).",
                   [prom(f'sum by (name) (changes(container_start_time_seconds{{{C}, name!=""}}{RATE}))', "{{name}}")],
                   "none", bars=True, thresholds=steps(OK, (BAD, 1)), w=8, links=LOGS),
        timeseries("OOM kills", "Out-of-memory kills per interval per container.",
                   [prom(f'sum by (name) (increase(container_oom_events_total{{{C}, name!=""}}{RATE}))', "{{name}}")],
                   "none", bars=True, thresholds=steps(OK, (BAD, 1)), w=8, links=LOGS),
        table("Containers", "Every container: image, compose service, uptime, memory and CPU now. "
              "Bad: a short uptime you did not cause.",
              [prom(f'max by (name, image, container_label_com_docker_compose_service) '
                    f'(time() - container_start_time_seconds{{{C}, name!=""}})', instant=True, table=True),
               prom(f'max by (name, image, container_label_com_docker_compose_service) '
                    f'(container_memory_working_set_bytes{{{C}, name!=""}})', instant=True, table=True),
               prom(f'sum by (name, image, container_label_com_docker_compose_service) '
                    f'(rate(container_cpu_usage_seconds_total{{{C}, name!=""}}{RATE}))', instant=True, table=True)],
              "none", merge=True, links=LOGS,
              rename={"name": "Container", "image": "Image", "container_label_com_docker_compose_service": "Service",
                      "Value #A": "Uptime", "Value #B": "Memory", "Value #C": "CPU (cores)"},
              overrides=[{"matcher": {"id": "byName", "options": "Uptime"},
                          "properties": [{"id": "unit", "value": "s"}]},
                         {"matcher": {"id": "byName", "options": "Memory"},
                          "properties": [{"id": "unit", "value": "bytes"}]}]),
    ]
    return dashboard(UID, "Docker containers", "Every container on the host, from cAdvisor: CPU and "
                     "throttling, memory against limits, network, restarts and OOM kills.", drill(panels),
                     related=related("logs", "vllm", "gpu", "system"),
                     variables=[query_variable("container", "Container",
                                               'label_values(container_last_seen{name!=""}, name)')],
                     annotations=[FIRING_ALERTS, annotation(
                         "Container restarts", f'changes(container_start_time_seconds{{{C}, name!=""}}[2m]) > 0',
                         "orange", "{{name}} restarted")])


LINK = link("Docker containers", UID)
