"""Rules of host.yml (see HEADER)."""

from __future__ import annotations

from llmwatch import mixin
from llmwatch.tools.rules.build import Group, alert

HEADER = """\
Host and container alerts, from node-exporter and cAdvisor. The named volumes of Prometheus,
Loki and Grafana live on the filesystem of Docker's data root (/var/lib/docker), so the disk
alerts cover them. Tests: config/prometheus/tests/host_test.yml.
"""


def groups() -> list[Group]:
    FS = mixin.MIXIN.filesystem_selector  # noqa: N806
    return [
        Group('llmwatch-host', [
            alert('HostDiskWillFillIn24Hours', f"""\
node_filesystem_avail_bytes{{{FS}}} / node_filesystem_size_bytes < 0.25
  and predict_linear(node_filesystem_avail_bytes{{{FS}}}[6h], 24 * 3600) < 0
  and node_filesystem_readonly == 0
""", for_='30m', severity='warning',
                  summary='A filesystem will be full within a day at the current rate.',
                  description='{{ $labels.mountpoint }} has {{ $value | humanizePercentage }} free and is filling up; Prometheus, Loki and the model caches stop writing when it is full.'),
            alert('HostDiskAlmostFull', f"""\
node_filesystem_avail_bytes{{{FS}}} / node_filesystem_size_bytes < 0.05
  and node_filesystem_readonly == 0
""", for_='5m', severity='critical',
                  summary='A filesystem is almost full.',
                  description='{{ $labels.mountpoint }} has only {{ $value | humanizePercentage }} free.'),
            alert('HostMemoryLow', 'node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes < 0.1', for_='10m', severity='warning',
                  summary='The host is running out of memory.',
                  description="Only {{ $value | humanizePercentage }} of the host's memory is available; the kernel will soon kill processes."),
            alert('HostOomKill', 'increase(node_vmstat_oom_kill[10m]) > 0', for_='', severity='warning',
                  summary='The kernel killed a process for lack of memory.',
                  description="The kernel's OOM killer ran {{ $value | humanize }} times in 10 minutes on {{ $labels.instance }}."),
            alert('ContainerOomKilled', 'increase(container_oom_events_total{name!=""}[10m]) > 0', for_='', severity='warning',
                  summary='A container ran out of memory.',
                  description='Container {{ $labels.name }} hit its memory limit {{ $value | humanize }} times in 10 minutes.'),
            alert('ContainerRestarting', 'changes(container_start_time_seconds{name!=""}[15m]) > 2', for_='', severity='warning',
                  summary='A container keeps restarting.',
                  description='Container {{ $labels.name }} restarted {{ $value }} times in 15 minutes.'),
        ]),
    ]
