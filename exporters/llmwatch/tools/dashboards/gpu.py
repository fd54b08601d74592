"""GPU: per GPU and per container — utilisation, memory, thermals, power, clocks, errors, links."""

from __future__ import annotations

from llmwatch.tools.dashboards.drill import drill, related
from llmwatch.tools.dashboards.grafana import (BAD, DASHED, FIRING_ALERTS, INFO, OK, WARN, dashboard, link, override,
                                          prom, query_variable, row, stat, steps, table, timeseries, value_text)

UID = "llmwatch-gpu"
G = 'gpu=~"$gpu"'
RATE = "[$__rate_interval]"
BUSY = steps(INFO, (OK, 0.2))
LIMIT = override("limit .*", custom__lineStyle=DASHED, color={"mode": "fixed", "fixedColor": "red"},
                 custom__fillOpacity=0)


def against_limit(title: str, description: str, per_gpu: str, limit: str, limit_name: str, unit: str) -> dict:
    """One line per GPU and the limit it runs against, dashed red."""
    return timeseries(title, description, [prom(per_gpu, "GPU {{gpu}}"), prom(limit, f"limit {limit_name}")], unit,
                      overrides=[LIMIT])


def traffic(title: str, description: str, link: str) -> dict:
    """Bytes per second sent and received over a link type (pcie, nvlink), all selected GPUs."""
    return timeseries(title, description, [
        prom(f"sum(rate(llmwatch_gpu_{link}_{direction}_bytes_total{{{G}}}{RATE}))", direction)
        for direction in ("transmit", "receive")], "Bps", w=8)


def per_gpu() -> list[dict]:
    """Per-GPU views of what the board otherwise averages or sums over GPUs: one busy or one
    saturated GPU out of eight hides in an average (dcgm-exporter's board shows them per GPU)."""
    not_reported = "Not reported (GPM counters need a Hopper or newer GPU)"
    activity = []
    for title, metric, words in (
            ("Tensor-core activity per GPU", "tensor_active", "Share of cycles any tensor pipe was busy, per GPU "
             "(NVML GPM, Hopper and newer): the best measure of useful LLM work. Bad: one GPU far below the "
             "others of the same model (tensor-parallel imbalance), or low while its model queues requests."),
            ("SM activity per GPU", "sm_active", "Share of SMs with work resident, per GPU (NVML GPM, Hopper and "
             "newer). Bad: high SM activity with low tensor activity — the GPU is busy on memory or "
             "non-matrix work; near 0 on a GPU whose model has traffic — it is not being fed.")):
        panel = timeseries(title, words, [prom(f"llmwatch_gpu_{metric}_ratio{{{G}}}", "GPU {{gpu}}")],
                           "percentunit", minimum=0, maximum=1, thresholds=BUSY)
        panel["fieldConfig"]["defaults"]["noValue"] = not_reported
        activity.append(panel)
    return [
        row("Per GPU: activity, PCIe and NVLink"),
        *activity,
        timeseries("PCIe traffic per GPU", "Bytes per second over PCIe per GPU, out (GPU to host) and in. "
                   "Bad: one GPU with steady heavy traffic while serving — CPU offload, swapping or a "
                   "misplaced process; spikes at model load are normal.",
                   [prom(f"rate(llmwatch_gpu_pcie_transmit_bytes_total{{{G}}}{RATE})", "GPU {{gpu}} out"),
                    prom(f"rate(llmwatch_gpu_pcie_receive_bytes_total{{{G}}}{RATE})", "GPU {{gpu}} in")], "Bps",
                   minimum=0),
        timeseries("NVLink traffic per GPU", "Bytes per second over all NVLink links per GPU, out and in: "
                   "tensor-parallel traffic between the GPUs of one model. Bad: one GPU of a tensor-parallel "
                   "group well below its peers (a link down, see NVLink links down), or NVLink traffic on "
                   "GPUs whose model runs on one GPU.",
                   [prom(f"rate(llmwatch_gpu_nvlink_transmit_bytes_total{{{G}}}{RATE})", "GPU {{gpu}} out"),
                    prom(f"rate(llmwatch_gpu_nvlink_receive_bytes_total{{{G}}}{RATE})", "GPU {{gpu}} in")], "Bps",
                   minimum=0),
    ]


def build() -> dict:
    panels = [
        row("At a glance"),
        stat("NVML", "Whether the NVIDIA driver answered the exporter. Bad: down — no GPU metric can be trusted "
             "(driver crashed, upgraded without reboot, or the container lost the device).",
             [prom("min(llmwatch_gpu_nvml_up)")], "none", graph=False,
             thresholds=steps(BAD, (OK, 1)), mappings=value_text({"1": ("answering", OK), "0": ("down", BAD)})),
        stat("GPUs lost", "GPUs that stopped answering NVML (fell off the bus, hung, XID 79). Bad: above 0 — "
             "the GPU needs a reset or the node a reboot.",
             [prom(f"count(llmwatch_gpu_up{{{G}}} == 0) or vector(0)")], "none", graph=False,
             thresholds=steps(OK, (BAD, 1))),
        stat("Average utilisation", "Mean busy share of the selected GPUs. Low while vLLM has waiting "
             "requests means the bottleneck is elsewhere (CPU, network, KV cache).",
             [prom(f"avg(llmwatch_gpu_utilization_ratio{{{G}}})")], "percentunit", thresholds=BUSY),
        stat("Memory used", "Device memory allocated over the selected GPUs. vLLM reserves ~90 % by design, "
             "so high is normal; bad is an out-of-memory error in the logs.",
             [prom(f"sum(llmwatch_gpu_memory_used_bytes{{{G}}}) / sum(llmwatch_gpu_memory_total_bytes{{{G}}})")],
             "percentunit", thresholds=steps(OK, (WARN, 0.97))),
        stat("Power draw", "Total power of the selected GPUs now. Compare with the power limits below.",
             [prom(f"sum(llmwatch_gpu_power_watts{{{G}}})")], "watt", thresholds=steps(INFO)),
        stat("Hottest GPU", "Highest core temperature among the selected GPUs. Orange from 80 °C, red from "
             "87 °C (H100/H200 maximum operating temperature).",
             [prom(f"max(llmwatch_gpu_temperature_celsius{{{G}}})")], "celsius",
             thresholds=steps(OK, (WARN, 80), (BAD, 87))),

        row("Utilisation and memory"),
        timeseries("Utilisation per GPU", "Share of time a kernel ran, per GPU (NVML). A coarse signal: "
                   "100 % can still mean a poorly fed GPU — see SM and tensor activity.",
                   [prom(f"llmwatch_gpu_utilization_ratio{{{G}}}", "GPU {{gpu}}")], "percentunit",
                   minimum=0, maximum=1),
        timeseries("GPM activity (average)", "Hopper profiling counters averaged over the selected GPUs: "
                   "SM active, SM occupancy, tensor pipes, memory bandwidth. Tensor activity is the best "
                   "measure of useful LLM work; low tensor with high utilisation means waiting on memory.",
                   [prom(f"avg(llmwatch_gpu_sm_active_ratio{{{G}}})", "SM active"),
                    prom(f"avg(llmwatch_gpu_sm_occupancy_ratio{{{G}}})", "SM occupancy"),
                    prom(f"avg(llmwatch_gpu_tensor_active_ratio{{{G}}})", "tensor active"),
                    prom(f"avg(llmwatch_gpu_dram_active_ratio{{{G}}})", "DRAM bandwidth")],
                   "percentunit", minimum=0, maximum=1),
        against_limit("Memory used per GPU", "Device memory allocated, per GPU; dashed: installed memory. "
                      "Bad: a GPU at its limit whose container logs CUDA out-of-memory.",
                      f"llmwatch_gpu_memory_used_bytes{{{G}}}", f"max(llmwatch_gpu_memory_total_bytes{{{G}}})",
                      "(installed)", "bytes"),
        timeseries("GPU memory per container", "GPU memory held by each container's processes, summed over "
                   "GPUs. Tells which container holds which memory; 'host' is outside containers.",
                   [prom(f'sum by (container) (llmwatch_gpu_container_memory_used_bytes{{{G}, container=~"$container"}})',
                         "{{container}}")], "bytes", stack=True, minimum=0),
        table("Which container holds which GPU", "GPU memory per GPU and container now. Bad: two model "
              "servers on one GPU by accident, or a GPU no container uses while the node is busy.",
              [prom(f'sum by (gpu, container) (llmwatch_gpu_container_memory_used_bytes{{{G}, container=~"$container"}})',
                    instant=True, table=True)], "bytes", hide=("Time",),
              rename={"gpu": "GPU", "container": "Container", "Value": "Memory"}, w=12),
        timeseries("Memory-controller activity", "Share of time device memory was read or written, per GPU. "
                   "Decode-heavy LLM serving is memory-bound, so this tracks token output.",
                   [prom(f"llmwatch_gpu_memory_utilization_ratio{{{G}}}", "GPU {{gpu}}")], "percentunit",
                   minimum=0, maximum=1),

        row("Thermals, power and clocks"),
        against_limit("Temperature", "Core temperature per GPU; dashed: NVML's limits (max operating and "
                      "slowdown). Bad: approaching the dashed lines — the GPU will slow itself down.",
                      f"llmwatch_gpu_temperature_celsius{{{G}}}", f'min by (threshold) (llmwatch_gpu_temperature_'
                      f'threshold_celsius{{{G}, threshold=~"gpu_max|slowdown"}})', "{{threshold}}", "celsius"),
        against_limit("Memory (HBM) temperature", "HBM temperature per GPU; dashed: NVML's memory limit. "
                      "HBM runs hotter than the core; bad is approaching the limit.",
                      f"llmwatch_gpu_memory_temperature_celsius{{{G}}}",
                      f'min(llmwatch_gpu_temperature_threshold_celsius{{{G}, threshold="memory_max"}})',
                      "memory_max", "celsius"),
        against_limit("Power", "Power draw per GPU; dashed: the enforced power limit. Sitting on the limit "
                      "means clocks are held down by power (see clock reasons).",
                      f"llmwatch_gpu_power_watts{{{G}}}", f"max(llmwatch_gpu_power_limit_watts{{{G}}})",
                      "(enforced)", "watt"),
        timeseries("Energy", "Energy used per interval over the selected GPUs, from NVML's energy counter "
                   "(kWh). The basis of the electricity part of cost per token.",
                   [prom(f"sum(increase(llmwatch_gpu_energy_joules_total{{{G}}}{RATE})) / 3.6e6", "all GPUs")],
                   "kwatth", bars=True, minimum=0),
        against_limit("SM clock", "SM clock per GPU; dashed: the board's maximum. Below the maximum under "
                      "load means a limit (power, thermal) is holding it down.",
                      f'llmwatch_gpu_clock_hz{{{G}, clock="sm"}}', f'max(llmwatch_gpu_clock_max_hz{{{G}, clock="sm"}})',
                      "(max)", "hertz"),
        timeseries("Clock limits active", "How many selected GPUs have clocks held down, by reason. "
                   "sw_power_cap under full load is normal; any thermal or hw_slowdown/power_brake is bad.",
                   [prom(f'sum by (reason) (llmwatch_gpu_clock_event_active{{{G}, reason!="gpu_idle"}})',
                         "{{reason}}")], "none", stack=True, minimum=0,
                   overrides=[override(".*(thermal|hw_slowdown|power_brake).*",
                                       color={"mode": "fixed", "fixedColor": "red"})]),

        row("Errors and health"),
        table("Errors per GPU", "Per GPU: uncorrected ECC errors since driver load, remapped rows, pending "
              "and failed remaps, the recovery action the driver asks for, XID errors since the exporter "
              "started and PCIe replays. Bad: anything but 0 except corrected ECC; the runbooks say what to do.",
              [prom(f'sum by (gpu) (llmwatch_gpu_ecc_volatile_errors_total{{{G}, error="uncorrected"}})',
                    instant=True, table=True),
               prom(f"sum by (gpu) (llmwatch_gpu_remapped_rows{{{G}}})", instant=True, table=True),
               prom(f"max by (gpu) (llmwatch_gpu_remapped_rows_pending{{{G}}})", instant=True, table=True),
               prom(f"max by (gpu) (llmwatch_gpu_remapped_rows_failure{{{G}}})", instant=True, table=True),
               prom(f"max by (gpu) (llmwatch_gpu_recovery_action{{{G}}})", instant=True, table=True),
               prom(f"sum by (gpu) (llmwatch_gpu_xid_events_total{{{G}}})", instant=True, table=True),
               prom(f"sum by (gpu) (llmwatch_gpu_pcie_replays_total{{{G}}})", instant=True, table=True)],
              "none", merge=True, thresholds=steps(OK, (BAD, 1)), w=16, h=9,
              rename={"gpu": "GPU", "Value #A": "ECC uncorrected", "Value #B": "Rows remapped",
                      "Value #C": "Remap pending", "Value #D": "Remap failed", "Value #E": "Recovery action",
                      "Value #F": "XID errors", "Value #G": "PCIe replays"},
              overrides=[override("^(?!GPU).*", custom__cellOptions={"type": "color-background", "mode": "basic"})]),
        timeseries("XID errors", "XID errors per GPU per interval (driver-reported faults). Any is worth a "
                   "look: 48/63/64/94/95 are memory, 79 is a GPU off the bus, 13/31/43 usually the application.",
                   [prom(f"sum by (gpu) (increase(llmwatch_gpu_xid_events_total{{{G}}}{RATE}))", "GPU {{gpu}}")],
                   "none", bars=True, thresholds=steps(OK, (BAD, 1)), w=8, h=9),
        timeseries("ECC errors", "ECC errors per interval by kind. Corrected errors are absorbed; uncorrected "
                   "ones kill the process that hit them and lead to row remapping.",
                   [prom(f"sum by (error) (increase(llmwatch_gpu_ecc_volatile_errors_total{{{G}}}{RATE}))",
                         "{{error}}")], "none", bars=True,
                   overrides=[override("uncorrected", color={"mode": "fixed", "fixedColor": "red"})], w=8),

        row("PCIe and NVLink"),
        traffic("PCIe traffic", "Bytes per second over PCIe, all selected GPUs (host <-> GPU). Spikes "
                "at model load; steady high traffic during serving means CPU offload or swapping.", "pcie"),
        timeseries("PCIe link", "Link generation and width per GPU against their maximum. A link below its "
                   "maximum under load (not idle) means a bad riser or slot.",
                   [prom(f"llmwatch_gpu_pcie_link_generation{{{G}}} / llmwatch_gpu_pcie_link_max_generation{{{G}}}",
                         "GPU {{gpu}} generation"),
                    prom(f"llmwatch_gpu_pcie_link_width{{{G}}} / llmwatch_gpu_pcie_link_max_width{{{G}}}",
                         "GPU {{gpu}} width")], "percentunit", minimum=0, maximum=1, w=8),
        traffic("NVLink traffic", "Bytes per second over NVLink, all selected GPUs: tensor-parallel "
                "traffic between GPUs of one model.", "nvlink"),
        stat("NVLink links down", "Links that exist but are not up, over the selected GPUs. Bad: above 0 — "
             "tensor-parallel traffic slows or fails.",
             [prom(f"sum(llmwatch_gpu_nvlink_links{{{G}}} - llmwatch_gpu_nvlink_links_active{{{G}}})")], "none",
             thresholds=steps(OK, (BAD, 1)), w=8, graph=False),
        timeseries("NVLink errors", "NVLink data-link errors per interval by kind. Bad: a rising count "
                   "(replay, recovery, CRC) on one GPU points to a failing link.",
                   [prom(f"sum by (error) (increase(llmwatch_gpu_nvlink_errors_total{{{G}}}{RATE}))", "{{error}}")],
                   "none", bars=True, w=16, h=6),
        table("GPUs", "Model, driver, bus id, VBIOS and MIG mode of every GPU. Bad: mixed drivers or an "
              "unexpected GPU model after maintenance.",
              [prom(f"max by (gpu, name, uuid, pci_bus_id, driver_version, cuda_version, vbios_version, mig_mode) "
                    f"(llmwatch_gpu_info{{{G}}})", instant=True, table=True)], "none", hide=("Time", "Value"),
              rename={"gpu": "GPU", "name": "Model", "uuid": "UUID", "pci_bus_id": "PCI bus",
                      "driver_version": "Driver", "cuda_version": "CUDA", "vbios_version": "VBIOS",
                      "mig_mode": "MIG"}),
    ]
    panels += per_gpu()
    return dashboard(UID, "GPU", "Per GPU and per container: utilisation and profiling activity, memory, "
                     "temperatures against NVML limits, power and energy, clocks and why they are held, "
                     "ECC/XID/row remapping, PCIe and NVLink.", drill(panels),
                     related=related("vllm", "containers", "cost", "logs"),
                     variables=[query_variable("gpu", "GPU", "label_values(llmwatch_gpu_info, gpu)"),
                                query_variable("container", "Container", "label_values("
                                               'llmwatch_gpu_container_memory_used_bytes{gpu=~"$gpu"}, container)')],
                     annotations=[FIRING_ALERTS])


LINK = link("GPU", UID)
