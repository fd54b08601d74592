"""Rules of host.yml (see HEADER)."""

from __future__ import annotations

from llmwatch import mixin
from llmwatch.mixin import fmt, percent
from llmwatch.tools.rules.build import Group, alert

HEADER = """\
Host and container alerts, from node-exporter and cAdvisor. The named volumes of Prometheus,
Loki and Grafana live on the filesystem of Docker's data root (/var/lib/docker), so the disk
alerts cover them. Filesystem, network and clock alerts follow node-exporter's own mixin.
Tests: config/prometheus/tests/host_test.yml.
"""


def groups() -> list[Group]:
    FS = mixin.MIXIN.filesystem_selector  # noqa: N806
    NIC = mixin.MIXIN.network_device_selector  # noqa: N806
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
            alert('HostInodesAlmostExhausted', f"""\
node_filesystem_files_free{{{FS}}} / node_filesystem_files{{{FS}}} < {fmt(mixin.MIXIN.inodes_free_ratio)}
  and node_filesystem_readonly == 0
""", for_='5m', severity='critical',
                  summary='A filesystem is running out of inodes.',
                  description='{{ $labels.mountpoint }} has only {{ $value | humanizePercentage }} of its inodes free; at none, no file can be created although bytes are free (many small files: container layers, logs, caches).'),
            alert('HostFilesystemReadOnly', f"""\
node_filesystem_readonly{{{FS}}} == 1
  and on (instance, device, mountpoint, host) min_over_time(node_filesystem_readonly{{{FS}}}[1d]) == 0
""", for_='', severity='critical',
                  summary='A filesystem turned read-only.',
                  description='{{ $labels.mountpoint }} ({{ $labels.device }}) was writable within the last day and is read-only now: the kernel remounts a filesystem read-only after I/O or journal errors. Everything writing to it fails.',
                  comment='Turned read-only: read-only now, writable within the last day. A filesystem mounted read-only\non purpose (a snap, an image) never fires; this one resolves a day after the switch if nobody acts.'),
            alert('HostFilesystemDeviceError', f'node_filesystem_device_error{{{FS}}} == 1', for_='10m', severity='warning',
                  summary='A filesystem cannot be read.',
                  description='node-exporter has failed to stat {{ $labels.mountpoint }} ({{ $labels.device }}) for 10 minutes: a failing disk, a hung or stale network mount.'),
            alert('HostNetworkErrors', f"""\
(rate(node_network_receive_errs_total{{{NIC}}}[5m]) + rate(node_network_transmit_errs_total{{{NIC}}}[5m]))
  / (rate(node_network_receive_packets_total{{{NIC}}}[5m]) + rate(node_network_transmit_packets_total{{{NIC}}}[5m]))
  > {fmt(mixin.MIXIN.network_error_ratio)}
""", for_='10m', severity='warning',
                  summary=f'A network interface has errors on more than {percent(mixin.MIXIN.network_error_ratio)} of its packets.',
                  description='{{ $labels.device }} on {{ $labels.instance }} had errors on {{ $value | humanizePercentage }} of its packets for 10 minutes: a bad cable, transceiver or port, or a duplex mismatch.'),
            alert('HostClockSkew', """\
(node_timex_offset_seconds > 0.05 and deriv(node_timex_offset_seconds[5m]) >= 0)
  or (node_timex_offset_seconds < -0.05 and deriv(node_timex_offset_seconds[5m]) <= 0)
""", for_='10m', severity='warning',
                  summary="The host's clock is more than 50 ms off.",
                  description='The clock of {{ $labels.instance }} is {{ $value | humanizeDuration }} off and not converging: timestamps of metrics, logs and traces disagree, and TLS or token checks can fail.'),
            alert('HostClockNotSynchronising', 'min_over_time(node_timex_sync_status[5m]) == 0 and node_timex_maxerror_seconds >= 16', for_='10m', severity='warning',
                  summary='The host clock is not synchronised.',
                  description='The kernel reports the clock of {{ $labels.instance }} unsynchronised for 10 minutes (no NTP or chrony peer reachable); it will drift.'),
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
