"""System health: the host (node-exporter) and the monitoring stack watching it."""

from __future__ import annotations

from llmwatch import mixin
from llmwatch.mixin import percent
from llmwatch.tools.dashboards import limits
from llmwatch.tools.dashboards.drill import drill, related
from llmwatch.tools.dashboards.grafana import (BAD, FIRING_ALERTS, INFO, OK, WARN, dashboard, link, override, prom, row,
                                          stat, steps, table, timeseries, value_text)

UID = "llmwatch-system"
RATE = "[$__rate_interval]"
# Real filesystems only, as in the HostDisk* alerts (config/prometheus/rules/host.yml).
NIC = 'device!~"lo|veth.*|docker.*|br-.*|ifb.*|cali.*|flannel.*|virbr.*"'
CORES = "sum(instance:node_cpus:count)"  # recorded (config/prometheus/rules/recording.yml), as the CPU rates


def host_detail() -> list[dict]:
    """What node-exporter-full shows beyond the summary: per core, per NIC, per disk, inodes,
    file descriptors and the hardware sensors. Lines at the host alerts' numbers (mixin)."""
    FS = limits.filesystems()  # noqa: N806
    m = mixin.MIXIN
    nic = m.network_device_selector  # the interfaces the HostNetworkErrors alert watches
    net_errors = m.network_error_ratio
    inodes_used = round(1 - m.inodes_free_ratio, 6)
    sensors = timeseries("Hardware temperatures", "Temperature of every hardware sensor the kernel exposes "
                         "(hwmon: CPU packages and cores, chipset, NVMe drives, NICs), by chip and sensor. Bad: a "
                         "sensor climbing towards its critical value (node_hwmon_temp_crit_celsius; it differs "
                         "by part) — the CPU throttles and drives slow down; "
                         "check fans and airflow (GPUs are on the GPU board).",
                         [prom("node_hwmon_temp_celsius", "{{chip}} {{sensor}}")], "celsius", minimum=0)
    net_panel = timeseries("Network errors and drops per interface", "Share of each physical interface's packets "
                       f"with errors, and dropped. Dashed: {percent(net_errors)} errors, where the HostNetworkErrors "
                       "alert warns. Bad: errors above it — a bad cable, transceiver or port; drops growing — "
                       "the receive rings or the kernel cannot keep up.",
                       [prom(f"(rate(node_network_receive_errs_total{{{nic}}}{RATE}) + rate(node_network_transmit_errs_"
                             f"total{{{nic}}}{RATE})) / (rate(node_network_receive_packets_total{{{nic}}}{RATE}) + "
                             f"rate(node_network_transmit_packets_total{{{nic}}}{RATE}))", "{{device}} errors"),
                        prom(f"(rate(node_network_receive_drop_total{{{nic}}}{RATE}) + rate(node_network_transmit_drop_"
                             f"total{{{nic}}}{RATE})) / (rate(node_network_receive_packets_total{{{nic}}}{RATE}) + "
                             f"rate(node_network_transmit_packets_total{{{nic}}}{RATE}))", "{{device}} dropped")],
                       "percentunit", minimum=0, thresholds=steps(OK, (WARN, net_errors)), threshold_lines=True)
    net_panel["fieldConfig"]["defaults"]["noValue"] = "No packets on the physical interfaces"
    sensors["fieldConfig"]["defaults"]["noValue"] = "No hardware sensors visible (a VM or container without hwmon)"
    return [
        row("Per core, per interface, per disk"),
        timeseries("CPU per core", "Busy share (all modes but idle) of the busiest core, of the core at the "
                   "90th percentile and of the median core. Bad: the busiest at 100 % while the median "
                   "idles — a single-threaded bottleneck (a vLLM API server's event loop, tokenisation) that "
                   "the average hides. (The spread, not a line per core: a GPU host's 200-odd hardware "
                   "threads would be 200 lines nobody can read, and 200 series at every step.)",
                   [prom(f"instance:node_cpu_busy_per_core:{rule}_5m", f"{{{{instance}}}} {name}")
                    for rule, name in (("max", "busiest core"), ("p90", "p90 core"), ("p50", "median core"))],
                   "percentunit",
                   minimum=0, maximum=1, thresholds=steps(OK, (WARN, 0.8), (BAD, 0.95))),
        net_panel,
        timeseries("Disk IOPS", "Reads and writes completed per second per disk. Bad: at the disk's rated "
                   "IOPS while latency climbs — the disk is saturated (often Prometheus compaction, Loki, or "
                   "model loading from a slow volume).",
                   [prom(f"rate(node_disk_reads_completed_total{RATE})", "{{device}} reads"),
                    prom(f"rate(node_disk_writes_completed_total{RATE})", "{{device}} writes")], "iops", minimum=0),
        timeseries("Disk latency", "Average time one I/O took per disk (reads and writes together). Bad: tens "
                   "of milliseconds on an SSD or NVMe drive — queueing or a failing drive; model loads and "
                   "Prometheus queries slow down with it.",
                   [prom(f"(rate(node_disk_read_time_seconds_total{RATE}) + rate(node_disk_write_time_seconds_total"
                         f"{RATE})) / (rate(node_disk_reads_completed_total{RATE}) + "
                         f"rate(node_disk_writes_completed_total{RATE}))", "{{device}}")], "s", minimum=0),
        timeseries("Inodes used", "Used share of each real filesystem's inodes. Dashed: "
                   f"{percent(inodes_used)}, where the HostInodesAlmostExhausted alert pages. Bad: near it — no "
                   "file can be created although bytes are free (container layers, logs, caches).",
                   [prom(f"1 - node_filesystem_files_free{{{FS}}} / node_filesystem_files{{{FS}}}", "{{mountpoint}}")],
                   "percentunit", minimum=0, maximum=1, thresholds=steps(OK, (BAD, inodes_used)),
                   threshold_lines=True),
        timeseries("File descriptors", "File handles the kernel has allocated for all processes. Bad: a "
                   "steady climb that never comes down — a leak (sockets of a proxy, files of an exporter); "
                   "at the limit (fs.file-max) every open() and accept() fails.",
                   [prom("node_filefd_allocated", "allocated")], "short", minimum=0),
        sensors,
    ]


def build() -> dict:
    FS = limits.filesystems()  # noqa: N806
    panels = [
        row("At a glance"),
        stat("Uptime", "Time since the host booted. Bad: a reset you did not plan (a crash or power event).",
             [prom("time() - max(node_boot_time_seconds)")], "s", thresholds=steps(WARN, (OK, 3600)), graph=False),
        stat("CPU busy", "Share of all cores not idle. Bad: near 100 % on an LLM server — tokenisation, "
             "the API servers or LiteLLM are CPU-starved and GPUs wait.",
             [prom(f'1 - sum(instance_mode:node_cpu_seconds:rate5m{{mode="idle"}}) / {CORES}')], "percentunit",
             thresholds=steps(OK, (WARN, 0.8), (BAD, 0.95))),
        stat("Memory used", "Share of RAM not available to new allocations. Bad: above 90 % — the kernel "
             "starts killing processes (see OOM kills).",
             [prom("1 - sum(node_memory_MemAvailable_bytes) / sum(node_memory_MemTotal_bytes)")], "percentunit",
             thresholds=steps(OK, (WARN, 0.85), (BAD, 0.95))),
        stat("Fullest disk", "Used share of the fullest real filesystem. Bad: above 85 %; model weights, "
             "Prometheus and Loki data fill disks quietly.",
             [prom(f"max(1 - node_filesystem_avail_bytes{{{FS}}} / node_filesystem_size_bytes{{{FS}}})")],
             "percentunit", thresholds=steps(OK, (WARN, 0.85), (BAD, 0.95))),
        stat("Load per core", "5-minute load average divided by the number of cores. Bad: above 1 — more "
             "runnable threads than cores.",
             [prom(f"max(node_load5) / {CORES}")], "none", decimals=2, thresholds=steps(OK, (WARN, 1), (BAD, 2))),
        stat("OOM kills", "Processes the kernel killed for lack of memory in the selected time range. "
             "Bad: any — find which container in the Docker containers board.",
             [prom("sum(increase(node_vmstat_oom_kill[$__range]))")], "none", decimals=0,
             thresholds=steps(OK, (BAD, 1)), graph=False),

        row("CPU and memory"),
        timeseries("CPU by mode", "Cores busy by mode (user, system, iowait…), stacked; the top of the "
                   "stack is the number of busy cores. Bad: iowait high — disks are the bottleneck.",
                   [prom('sum by (mode) (instance_mode:node_cpu_seconds:rate5m{mode!="idle"})', "{{mode}}")],
                   "none", stack=True, minimum=0,
                   overrides=[override("iowait", color={"mode": "fixed", "fixedColor": "orange"})]),
        timeseries("Load", "Load averages; dashed: the number of cores. Load above the cores for long "
                   "means work is queueing for CPU.",
                   [prom("max(node_load1)", "1 min"), prom("max(node_load5)", "5 min"), prom("max(node_load15)", "15 min"),
                    prom(CORES, "limit (cores)")], "none", minimum=0,
                   overrides=[override("limit .*", custom__lineStyle={"dash": [10, 10], "fill": "dash"},
                                       color={"mode": "fixed", "fixedColor": "red"})]),
        timeseries("Memory", "RAM used by processes, page cache and buffers, and what is available. Bad: "
                   "available near 0 — swapping or OOM kills follow.",
                   [prom("sum(node_memory_MemTotal_bytes - node_memory_MemAvailable_bytes)", "used"),
                    prom("sum(node_memory_Cached_bytes + node_memory_Buffers_bytes)", "cache and buffers"),
                    prom("sum(node_memory_MemAvailable_bytes)", "available")], "bytes", minimum=0),
        timeseries("Pressure (PSI)", "Share of time tasks waited for CPU, memory or I/O (Linux pressure "
                   "stall information). Bad: memory or I/O above a few percent — the host is thrashing.",
                   [prom(f"rate(node_pressure_cpu_waiting_seconds_total{RATE})", "CPU"),
                    prom(f"rate(node_pressure_memory_waiting_seconds_total{RATE})", "memory"),
                    prom(f"rate(node_pressure_io_waiting_seconds_total{RATE})", "I/O")], "percentunit",
                   minimum=0, thresholds=steps(OK, (WARN, 0.1), (BAD, 0.3)), threshold_lines=True),

        row("Disks and network"),
        timeseries("Filesystem used", "Used share of each real filesystem; dashed at 85 % and 95 %. The "
                   "HostDiskAlmostFull alert fires at 95 %.",
                   [prom(f"1 - node_filesystem_avail_bytes{{{FS}}} / node_filesystem_size_bytes{{{FS}}}",
                         "{{mountpoint}}")], "percentunit", minimum=0, maximum=1,
                   thresholds=steps(OK, (WARN, 0.85), (BAD, 0.95)), threshold_lines=True),
        timeseries("Disk throughput", "Bytes read and written per second per disk. Model loads show as "
                   "read spikes; steady heavy writes are usually logs or Prometheus compaction.",
                   [prom(f"rate(node_disk_read_bytes_total{RATE})", "{{device}} read"),
                    prom(f"rate(node_disk_written_bytes_total{RATE})", "{{device}} written")], "Bps", minimum=0),
        timeseries("Disk busy", "Share of time each disk was busy with I/O. Bad: near 100 % — requests "
                   "queue on the disk.",
                   [prom(f"rate(node_disk_io_time_seconds_total{RATE})", "{{device}}")], "percentunit",
                   minimum=0, maximum=1, thresholds=steps(OK, (WARN, 0.8)), threshold_lines=True),
        timeseries("Network", "Bytes per second per physical interface (container bridges left out). "
                   "Clients' prompts come in, tokens go out.",
                   [prom(f"rate(node_network_receive_bytes_total{{{NIC}}}{RATE})", "{{device}} in"),
                    prom(f"rate(node_network_transmit_bytes_total{{{NIC}}}{RATE})", "{{device}} out")], "Bps",
                   minimum=0),

        row("Monitoring stack"),
        stat("Targets down", "Scrape targets Prometheus cannot reach. Bad: above 0 — that part of the "
             "server is unwatched (see the table).",
             [prom("count(up == 0) or vector(0)")], "none", thresholds=steps(OK, (BAD, 1)), graph=False),
        stat("Active series", "Series in Prometheus' head block. A jump means a label exploded "
             "(cardinality); memory use grows with it.",
             [prom("max(prometheus_tsdb_head_series)")], "short", thresholds=steps(INFO)),
        stat("Rule failures", "Rule evaluations that failed in the selected range. Bad: any — an alert "
             "may be blind.",
             [prom("sum(increase(prometheus_rule_evaluation_failures_total[$__range]))")], "none", decimals=0,
             thresholds=steps(OK, (BAD, 1)), graph=False),
        stat("Notifications failed", "Alertmanager notifications that failed in the selected range. Bad: "
             "any — alerts are not reaching you.",
             [prom("sum(increase(alertmanager_notifications_failed_total[$__range]))")], "none", decimals=0,
             thresholds=steps(OK, (BAD, 1)), graph=False),
        stat("Prometheus storage", "Disk used by Prometheus' blocks. Grows to the retention limit, then "
             "flattens.", [prom("sum(prometheus_tsdb_storage_blocks_bytes)")], "bytes", thresholds=steps(INFO)),
        stat("Slowest scrape", "Longest scrape of any target, last time. Bad: close to the scrape timeout — "
             "that target's data goes missing.",
             [prom("max(scrape_duration_seconds)")], "s", thresholds=steps(OK, (WARN, 5), (BAD, 10))),
        table("Scrape targets", "Every target with its job and state. Bad: a red row — read the job's "
              "exporter logs in the Logs board.",
              [prom("max by (job, instance) (up)", instant=True, table=True)], "none", w=24, h=8,
              rename={"job": "Job", "instance": "Target", "Value": "Up"},
              overrides=[override("Up", mappings=value_text({"1": ("up", OK), "0": ("down", BAD)}),
                                  custom__cellOptions={"type": "color-background", "mode": "basic"})],
              thresholds=steps(BAD, (OK, 1))),
    ]
    panels += host_detail()
    return dashboard(UID, "System health", "The host (CPU, memory, pressure, disks, network, OOM kills) "
                     "and the monitoring stack itself (targets, rules, notifications, storage).", drill(panels),
                     related=related("containers", "gpu", "logs"),
                     annotations=[FIRING_ALERTS])


LINK = link("System health", UID)
