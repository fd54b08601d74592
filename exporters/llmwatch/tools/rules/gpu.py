"""Rules of gpu.yml (see HEADER)."""

from __future__ import annotations

from llmwatch.tools.rules.build import Group, alert

HEADER = """\
GPU alerts, from the llmwatch GPU exporter (NVML). Tests: config/prometheus/tests/gpu_test.yml.
Runbooks: docs/runbooks.md. XID classes follow NVIDIA's XID catalog: hardware faults page,
a contained ECC error warns, application faults (13, 31, 43, 45) are information only.
"""


def groups() -> list[Group]:
    return [
        Group('llmwatch-gpu', [
            alert('GpuNvmlDown', 'llmwatch_gpu_nvml_up == 0', for_='2m', severity='critical',
                  summary='The GPU exporter cannot talk to the NVIDIA driver.',
                  description='NVML has not answered on {{ $labels.instance }} for 2 minutes; no GPU on this host is monitored (driver missing, unloaded or upgraded without a reboot).'),
            alert('GpuLost', 'llmwatch_gpu_up == 0', for_='1m', severity='critical',
                  summary='A GPU stopped answering NVML.',
                  description='GPU {{ $labels.gpu }} on {{ $labels.instance }} is lost, hung or needs a reset; the models on it are down or degraded.'),
            alert('GpuThermalSlowdown', 'llmwatch_gpu_clock_event_active{reason=~"hw_thermal_slowdown|sw_thermal_slowdown"} == 1', for_='5m', severity='warning',
                  summary='A GPU is slowing its clocks because it is too hot.',
                  description='GPU {{ $labels.gpu }} has been clock-limited by {{ $labels.reason }} for 5 minutes; throughput drops and latency rises.'),
            alert('GpuPowerBrake', 'llmwatch_gpu_clock_event_active{reason="hw_power_brake_slowdown"} == 1', for_='1m', severity='critical',
                  summary="A GPU's power brake is engaged.",
                  description='The external power brake has held GPU {{ $labels.gpu }} at minimum clocks for a minute (power supply or chassis fault).'),
            alert('GpuXidHardwareError', 'time() - llmwatch_gpu_xid_last_timestamp_seconds{xid=~"48|62|64|74|79|95|119|120"} < 600', for_='', severity='critical',
                  summary='A GPU reported a hardware XID error.',
                  description='GPU {{ $labels.gpu }} reported XID {{ $labels.xid }} in the last 10 minutes (ECC double-bit, NVLink, GSP or fallen off the bus); it usually needs a reset or drain.'),
            alert('GpuXidContainedEccError', 'time() - llmwatch_gpu_xid_last_timestamp_seconds{xid="94"} < 600', for_='', severity='warning',
                  summary='A GPU contained an ECC error; the application using it must restart.',
                  description='GPU {{ $labels.gpu }} reported XID 94 in the last 10 minutes; restart the container using it.'),
            alert('GpuXidApplicationError', 'increase(llmwatch_gpu_xid_errors_total{xid=~"13|31|43|45"}[10m]) > 0', for_='', severity='info',
                  summary='A GPU reported an application-level XID error.',
                  description='GPU {{ $labels.gpu }} reported XID {{ $labels.xid }} {{ $value | humanize }} times in 10 minutes (a kernel fault or killed process, usually not the hardware).'),
            alert('GpuUncorrectedEccErrors', 'increase(llmwatch_gpu_ecc_volatile_errors_total{error="uncorrected"}[10m]) > 0', for_='', severity='critical',
                  summary='A GPU had uncorrected ECC memory errors.',
                  description='GPU {{ $labels.gpu }} counted {{ $value | humanize }} uncorrected ECC errors in 10 minutes; results on it may be corrupt.'),
            alert('GpuRowRemapFailure', 'llmwatch_gpu_remapped_rows_failure == 1', for_='', severity='critical',
                  summary='A GPU failed to remap a memory row.',
                  description="GPU {{ $labels.gpu }} has a failed row remap, NVIDIA's criterion for returning the board (RMA)."),
            alert('GpuRowRemapPending', 'llmwatch_gpu_remapped_rows_pending == 1', for_='15m', severity='warning',
                  summary='A GPU needs a reset to finish remapping a memory row.',
                  description='GPU {{ $labels.gpu }} has a row remap pending; schedule a GPU reset when its models can be drained.'),
            alert('GpuRecoveryActionRequired', 'llmwatch_gpu_recovery_action > 0', for_='1m', severity='critical',
                  summary='The NVIDIA driver asks for a GPU recovery action.',
                  description='GPU {{ $labels.gpu }} asks for recovery action {{ $value }} (1 reset, 2 node reboot, 3 drain P2P, 4 drain and reset).'),
            alert('GpuMemoryNearlyFull', 'llmwatch_gpu_memory_free_bytes / llmwatch_gpu_memory_total_bytes < 0.02', for_='10m', severity='warning',
                  summary='A GPU has almost no free memory.',
                  description='GPU {{ $labels.gpu }} has {{ $value | humanizePercentage }} of its memory free; another process or a larger batch will fail with out-of-memory. vLLM reserves gpu_memory_utilization (0.9 by default) on purpose, so this fires only beyond that.'),
            alert('GpuNvlinkDown', 'llmwatch_gpu_nvlink_links_active < llmwatch_gpu_nvlink_links', for_='5m', severity='warning',
                  summary='A GPU has NVLink links down.',
                  description='GPU {{ $labels.gpu }} has {{ $value }} NVLink links up, fewer than it has; tensor-parallel traffic falls back to PCIe.'),
            alert('GpuPcieLinkDegraded', """\
llmwatch_gpu_pcie_link_width < llmwatch_gpu_pcie_link_max_width
  or (
    llmwatch_gpu_pcie_link_generation < llmwatch_gpu_pcie_link_max_generation
      and on (job, instance, gpu, host) llmwatch_gpu_utilization_ratio > 0.5
  )
""", for_='15m', severity='warning',
                  summary='A GPU runs its PCIe link below its maximum.',
                  description='GPU {{ $labels.gpu }} has its PCIe link at {{ $value }} (lanes, or generation while busy), below what the GPU and slot allow, for 15 minutes: host-to-GPU transfers (model loading, CPU offload) are slower. A card not fully seated, a riser or a BIOS setting.',
                  comment='Width below its maximum is a fault at any load; the generation drops at idle to save power,\nso it counts only while the GPU is busy.'),
        ]),
    ]
