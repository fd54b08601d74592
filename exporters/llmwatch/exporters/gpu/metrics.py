"""Pure functions: GPU readings -> Prometheus metric families (names, units, labels).

Every per-GPU metric carries the label ``gpu`` (NVML index); identity (UUID, name, bus id) is in
``llmwatch_gpu_info``. NVML units are converted to base units here: mW -> W, mJ -> J, MHz -> Hz,
percent -> ratio, KiB -> bytes, ns -> s.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from llmwatch.core.scrape import natural_key, up_family
from llmwatch.core.textfamily import TextFamily
from llmwatch.exporters.gpu.nvml import GpuReading, SystemInfo
from llmwatch.exporters.gpu.xid import XidSnapshot


@dataclass(frozen=True)
class Spec:
    name: str
    help: str
    scale: float = 1.0
    labels: tuple[str, ...] = ()
    counter: bool = False


SPECS: dict[str, Spec] = {s_key: s for s_key, s in (
    ("utilization_gpu", Spec("llmwatch_gpu_utilization_ratio",
                             "Share of the last sample period (1/6 s to 1 s) in which a kernel ran (NVML utilization.gpu).", 0.01)),
    ("utilization_memory", Spec("llmwatch_gpu_memory_utilization_ratio",
                                "Share of the last sample period in which device memory was read or written (NVML utilization.memory).", 0.01)),
    ("sm_active", Spec("llmwatch_gpu_sm_active_ratio",
                       "Average share of SMs with a warp resident, since the previous scrape (NVML GPM SM_UTIL; Hopper and newer).", 0.01)),
    ("sm_occupancy", Spec("llmwatch_gpu_sm_occupancy_ratio",
                          "Average warps resident per SM relative to the maximum, since the previous scrape (GPM SM_OCCUPANCY).", 0.01)),
    ("tensor_active", Spec("llmwatch_gpu_tensor_active_ratio",
                           "Average share of cycles any tensor pipe was active, since the previous scrape (GPM ANY_TENSOR_UTIL).", 0.01)),
    ("dram_active", Spec("llmwatch_gpu_dram_active_ratio",
                         "Average share of peak device-memory bandwidth used, since the previous scrape (GPM DRAM_BW_UTIL).", 0.01)),
    ("memory_total", Spec("llmwatch_gpu_memory_total_bytes", "Device memory installed (NVML memory info).")),
    ("memory_used", Spec("llmwatch_gpu_memory_used_bytes",
                         "Device memory allocated by processes; excludes driver-reserved memory where NVML's v2 memory API exists.")),
    ("memory_free", Spec("llmwatch_gpu_memory_free_bytes", "Device memory free for allocation.")),
    ("memory_reserved", Spec("llmwatch_gpu_memory_reserved_bytes", "Device memory reserved by the driver (NVML memory info v2).")),
    ("temperature", Spec("llmwatch_gpu_temperature_celsius", "GPU core temperature.")),
    ("memory_temperature", Spec("llmwatch_gpu_memory_temperature_celsius", "HBM temperature (NVML field MEMORY_TEMP).")),
    ("temperature_threshold", Spec("llmwatch_gpu_temperature_threshold_celsius",
                                   "NVML temperature limits: slowdown and shutdown of the GPU, maximum operating GPU and memory temperature.",
                                   labels=("threshold",))),
    ("power", Spec("llmwatch_gpu_power_watts", "Power draw (NVML power usage; a 1 s average on Ampere and newer).", 0.001)),
    ("power_limit", Spec("llmwatch_gpu_power_limit_watts", "Power limit the driver enforces now.", 0.001)),
    ("power_default_limit", Spec("llmwatch_gpu_power_default_limit_watts", "Default power limit of the board.", 0.001)),
    ("power_min_limit", Spec("llmwatch_gpu_power_min_limit_watts", "Lowest power limit that can be set.", 0.001)),
    ("power_max_limit", Spec("llmwatch_gpu_power_max_limit_watts", "Highest power limit that can be set.", 0.001)),
    ("energy", Spec("llmwatch_gpu_energy_joules_total", "Energy used since the driver was loaded; rate() gives watts.",
                    0.001, counter=True)),
    ("clock", Spec("llmwatch_gpu_clock_hz", "Current clock frequency.", 1e6, labels=("clock",))),
    ("clock_max", Spec("llmwatch_gpu_clock_max_hz", "Maximum clock frequency of the board.", 1e6, labels=("clock",))),
    ("pstate", Spec("llmwatch_gpu_performance_state", "Performance state: 0 (P0, fastest) to 15 (P15, slowest).")),
    ("clock_event_active", Spec("llmwatch_gpu_clock_event_active",
                                "1 while clocks are held down for this reason (NVML clock-event, formerly throttle, reasons); only reasons the board supports.",
                                labels=("reason",))),
    ("clock_event_time", Spec("llmwatch_gpu_clock_event_duration_seconds_total",
                              "Time clocks were held down for this reason since the driver was loaded.", 1e-9,
                              labels=("reason",), counter=True)),
    ("ecc_volatile", Spec("llmwatch_gpu_ecc_volatile_errors_total", "ECC errors since the driver was loaded.",
                          labels=("error",), counter=True)),
    ("ecc_aggregate", Spec("llmwatch_gpu_ecc_aggregate_errors_total", "ECC errors over the board's lifetime (infoROM).",
                           labels=("error",), counter=True)),
    ("remapped_rows", Spec("llmwatch_gpu_remapped_rows", "Memory rows remapped over the board's lifetime, by the error that caused it.",
                           labels=("error",))),
    ("remap_pending", Spec("llmwatch_gpu_remapped_rows_pending", "1 when a row remap waits for a GPU reset.")),
    ("remap_failure", Spec("llmwatch_gpu_remapped_rows_failure", "1 when a row remap failed (NVIDIA's RMA criterion).")),
    ("recovery_action", Spec("llmwatch_gpu_recovery_action",
                             "Recovery the driver asks for: 0 none, 1 GPU reset, 2 node reboot, 3 drain P2P, 4 drain and reset.")),
    ("pcie_generation", Spec("llmwatch_gpu_pcie_link_generation", "Current PCIe link generation (drops at idle to save power).")),
    ("pcie_width", Spec("llmwatch_gpu_pcie_link_width", "Current PCIe link width in lanes.")),
    ("pcie_max_generation", Spec("llmwatch_gpu_pcie_link_max_generation", "Maximum PCIe link generation of the GPU and slot.")),
    ("pcie_max_width", Spec("llmwatch_gpu_pcie_link_max_width", "Maximum PCIe link width in lanes.")),
    ("pcie_tx", Spec("llmwatch_gpu_pcie_transmit_bytes_total", "Bytes sent over PCIe (NVML field PCIE_COUNT_TX_BYTES).",
                     counter=True)),
    ("pcie_rx", Spec("llmwatch_gpu_pcie_receive_bytes_total", "Bytes received over PCIe (NVML field PCIE_COUNT_RX_BYTES).",
                     counter=True)),
    ("pcie_replays", Spec("llmwatch_gpu_pcie_replays_total", "PCIe replays (link-level retries).", counter=True)),
    ("nvlink_links", Spec("llmwatch_gpu_nvlink_links", "NVLink links the GPU has.")),
    ("nvlink_links_active", Spec("llmwatch_gpu_nvlink_links_active", "NVLink links up now; fewer than llmwatch_gpu_nvlink_links means a link is down.")),
    ("nvlink_tx", Spec("llmwatch_gpu_nvlink_transmit_bytes_total", "Data bytes sent over all NVLink links.", 1024, counter=True)),
    ("nvlink_rx", Spec("llmwatch_gpu_nvlink_receive_bytes_total", "Data bytes received over all NVLink links.", 1024, counter=True)),
    ("nvlink_errors", Spec("llmwatch_gpu_nvlink_errors_total", "NVLink data-link errors summed over links.",
                           labels=("error",), counter=True)),
    ("processes", Spec("llmwatch_gpu_processes", "Compute processes running on the GPU.")),
)}


def _family(spec: Spec, labels: list[str]) -> TextFamily:
    return TextFamily(spec.name, spec.help, labels, "counter" if spec.counter else "gauge")


def gpu_families(system: SystemInfo | None, readings: list[GpuReading]) -> Iterable[Metric]:
    """Identity, up and every measured value, in SPECS order, GPUs in index order."""
    readings = sorted(readings, key=lambda r: natural_key(r.index))
    yield up_family("gpu", "gpu", {r.index: r.down is None for r in readings},
                    "1 when the GPU answered NVML this scrape; 0 when it is lost, hung or gone.")
    live = [r for r in readings if r.down is None]
    if system is not None and live:
        info = TextFamily("llmwatch_gpu_info", "GPU identity, driver and CUDA version; always 1.",
                                 labels=["gpu", "uuid", "name", "pci_bus_id", "vbios_version", "compute_capability",
                                         "mig_mode", "driver_version", "cuda_version"])
        for r in live:
            i = r.info
            info.add_metric([r.index, i["uuid"], i["name"], i["pci_bus_id"], i["vbios_version"], i["compute_capability"],
                             i.get("mig_mode", ""), system.driver_version, system.cuda_version], 1.0)
        yield info
    by_key: dict[str, list[tuple[str, tuple[str, ...], float]]] = {}
    for r in live:
        for s in r.samples:
            by_key.setdefault(s.key, []).append((r.index, s.labels, s.value))
    for key, spec in SPECS.items():
        if key not in by_key:
            continue  # nothing measured: absent, never a made-up zero
        family = _family(spec, ["gpu", *spec.labels])
        for gpu, labels, value in by_key[key]:
            family.add_metric([gpu, *labels], value * spec.scale)
        yield family
    durations = TextFamily("llmwatch_gpu_read_duration_seconds",
                                  "Time NVML took to answer this GPU's reads during the scrape.", labels=["gpu"])
    for r in live:
        durations.add_metric([r.index], r.duration)
    if live:
        yield durations


def nvml_families(system: SystemInfo | None, up: bool) -> Iterable[Metric]:
    yield GaugeMetricFamily("llmwatch_gpu_nvml_up",
                            "1 when the NVML library and driver answered this scrape; 0 when missing or failing.",
                            value=1.0 if up else 0.0)
    if system is not None and up:
        info = GaugeMetricFamily("llmwatch_gpu_nvml_info", "NVIDIA driver, CUDA and NVML versions; always 1.",
                                 labels=["driver_version", "cuda_version", "nvml_version"])
        info.add_metric([system.driver_version, system.cuda_version, system.nvml_version], 1.0)
        yield info


def mig_families(readings: list[GpuReading]) -> Iterable[Metric]:
    instances = [(r.index, m) for r in sorted(readings, key=lambda r: natural_key(r.index)) for m in r.mig]
    if not instances:
        return
    info = GaugeMetricFamily("llmwatch_gpu_mig_info", "A MIG instance and its profile; always 1.",
                             labels=["gpu", "gpu_instance_id", "compute_instance_id", "profile", "mig_uuid"])
    total = GaugeMetricFamily("llmwatch_gpu_mig_memory_total_bytes", "Memory of a MIG instance.",
                              labels=["gpu", "gpu_instance_id", "compute_instance_id"])
    used = GaugeMetricFamily("llmwatch_gpu_mig_memory_used_bytes", "Memory used in a MIG instance.",
                             labels=["gpu", "gpu_instance_id", "compute_instance_id"])
    for gpu, m in instances:
        ids = [gpu, str(m.gpu_instance_id), str(m.compute_instance_id)]
        info.add_metric([*ids, m.profile, m.uuid], 1.0)
        total.add_metric(ids, m.memory_total)
        used.add_metric(ids, m.memory_used)
    yield from (info, total, used)


def container_families(usage: dict[tuple[str, str], tuple[int, float | None]]) -> Iterable[Metric]:
    """``usage``: (gpu, container) -> (process count, memory bytes or None when NVML cannot tell)."""
    if not usage:
        return
    keys = sorted(usage, key=lambda k: (natural_key(k[0]), k[1]))
    procs = GaugeMetricFamily("llmwatch_gpu_container_processes",
                              "Compute processes of a container on a GPU ('host': outside containers).",
                              labels=["gpu", "container"])
    memory = GaugeMetricFamily("llmwatch_gpu_container_memory_used_bytes",
                               "GPU memory used by a container's processes: which container holds which GPU.",
                               labels=["gpu", "container"])
    for key in keys:
        count, used = usage[key]
        procs.add_metric(list(key), count)
        if used is not None:
            memory.add_metric(list(key), used)
    yield procs
    yield memory


def xid_families(snapshot: XidSnapshot) -> Iterable[Metric]:
    yield GaugeMetricFamily("llmwatch_gpu_xid_watcher_up",
                            "1 while XID events are being received from NVML; 0 while the watcher is retrying.",
                            value=1.0 if snapshot.running else 0.0)
    per_gpu = CounterMetricFamily("llmwatch_gpu_xid_events", "XID errors of any code since the exporter started.",
                                  labels=["gpu"])
    for gpu in sorted(snapshot.per_gpu, key=natural_key):
        per_gpu.add_metric([gpu], snapshot.per_gpu[gpu])
    yield per_gpu
    if not snapshot.counts:
        return
    keys = sorted(snapshot.counts, key=lambda k: (natural_key(k[0]), k[1]))
    counts = CounterMetricFamily("llmwatch_gpu_xid_errors", "XID errors by code since the exporter started.",
                                 labels=["gpu", "xid"])
    last = GaugeMetricFamily("llmwatch_gpu_xid_last_timestamp_seconds", "When an XID of this code was last seen (unix time).",
                             labels=["gpu", "xid"])
    for gpu, xid in keys:
        counts.add_metric([gpu, str(xid)], snapshot.counts[(gpu, xid)])
        last.add_metric([gpu, str(xid)], snapshot.last_seen[(gpu, xid)])
    yield counts
    yield last
