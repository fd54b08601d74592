"""Named GPU situations, shared by the golden tests, the metric-catalog test and the benchmark.

Each scenario builds a FakeNvml, an exporter on it, drives it through what happens (scrapes,
XIDs, a GPU falling off the bus) and returns the exposition text of its last scrape.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pynvml as P

from llmwatch.exporters.gpu.collector import GpuExporter
from llmwatch.exporters.gpu.containers import ContainerResolver
from llmwatch.simulation.nvml import FakeNvml, busy, h100, h200, h200_node
from tests.procs import render

WALL_TIME = 1_795_000_000.0  # XID timestamps in golden files


def fake_clock():
    """A monotonic clock that advances 1 ms per reading: durations are positive and repeatable."""
    ticks = itertools.count()
    return lambda: next(ticks) / 1000


def make_exporter(nvml: FakeNvml, *, containers: ContainerResolver | None = None, xid_events: bool = False,
                  budget: float = 5.0) -> GpuExporter:
    exporter = GpuExporter(nvml, budget=budget, containers=containers, xid_events=xid_events,
                           clock=fake_clock(), wall_clock=lambda: WALL_TIME)
    if exporter.xid:
        exporter.xid.wait_ms = 50  # quick shutdown in tests
    return exporter.start()


def write_proc(root: Path, pids: dict[int, str]) -> Path:
    """A fake host /proc: pid -> cgroup file text."""
    for pid, text in pids.items():
        (root / str(pid)).mkdir(parents=True, exist_ok=True)
        (root / str(pid) / "cgroup").write_text(text)
    return root


VLLM_A = "a" * 64
VLLM_B = "b" * 64
CONTAINER_NAMES = {VLLM_A: "vllm-llama-70b", VLLM_B: "vllm-qwen-32b"}


def serving_node(tmp_path: Path) -> tuple[FakeNvml, GpuExporter]:
    """8 H200s serving two models: processes in containers, NVLink traffic, a little trouble."""
    nvml = h200_node()
    loads = [0.92, 0.88, 0.9, 0.85, 0.55, 0.5, 0.0, 0.0]
    for gpu, load in zip(nvml.gpus, loads):
        busy(gpu, load)
        gpu.energy_mj += 10_000_000 * gpu.index
        gpu.pcie_tx_bytes, gpu.pcie_rx_bytes = 1_000_000 * (gpu.index + 1), 2_000_000 * (gpu.index + 1)
        gpu.nvlink_tx_kib, gpu.nvlink_rx_kib = 4096 * (gpu.index + 1), 2048 * (gpu.index + 1)
        gpu.clock_event_ns = {P.NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_POWER_CAP: 2_500_000_000 * gpu.index}
    # Model A (tensor parallel 4) on GPUs 0-3, model B (TP 2) on 4-5, a host process on 7.
    for i in range(4):
        nvml.gpus[i].processes = [(4100 + i, 120 * 1024**3)]
    nvml.gpus[4].processes = [(5200, 100 * 1024**3)]
    nvml.gpus[5].processes = [(5201, 100 * 1024**3), (5202, None)]
    nvml.gpus[7].processes = [(777, 512 * 1024**2)]
    proc = write_proc(tmp_path / "proc", {
        **{4100 + i: f"0::/system.slice/docker-{VLLM_A}.scope\n" for i in range(4)},
        5200: f"12:memory:/docker/{VLLM_B}\n11:cpu:/docker/{VLLM_B}\n",
        5201: f"0::/system.slice/docker-{VLLM_B}.scope\n",
        5202: f"0::/system.slice/docker-{VLLM_B}.scope\n",
        777: "0::/user.slice/user-1000.slice/session-3.scope\n",
    })
    # Trouble: a corrected ECC burst on 2, a pending remap on 6, a link down on 5, thermal events on 1.
    nvml.gpus[2].ecc = {(P.NVML_MEMORY_ERROR_TYPE_CORRECTED, P.NVML_VOLATILE_ECC): 12,
                        (P.NVML_MEMORY_ERROR_TYPE_CORRECTED, P.NVML_AGGREGATE_ECC): 40}
    nvml.gpus[6].remapped_rows = (1, 0, 1, 0)
    nvml.gpus[5].nvlink_down = {17}
    nvml.gpus[5].nvlink_errors = {P.NVML_NVLINK_ERROR_DL_CRC_FLIT: 3}
    nvml.gpus[1].clock_events = P.nvmlClocksEventReasonSwPowerCap | P.nvmlClocksEventReasonHwThermalSlowdown
    resolver = ContainerResolver(proc, CONTAINER_NAMES.get)
    exporter = make_exporter(nvml, containers=resolver, xid_events=True)
    return nvml, exporter


def scenario_h200_idle(tmp_path: Path) -> str:
    exporter = make_exporter(h200_node())
    render(exporter)  # the first scrape primes GPM
    text = render(exporter)
    exporter.close()
    return text


def scenario_h200_serving(tmp_path: Path) -> str:
    nvml, exporter = serving_node(tmp_path)
    assert exporter.xid.wait_for(lambda s: s.running, timeout=10)
    render(exporter)
    nvml.inject_xid(2, 94)
    nvml.inject_xid(2, 94)
    nvml.inject_xid(3, 48)
    assert exporter.xid.wait_for(lambda s: sum(s.per_gpu.values()) == 3, timeout=10)
    text = render(exporter)
    exporter.close()
    return text


def scenario_gpu_lost(tmp_path: Path) -> str:
    """GPU 3 falls off the bus between two scrapes: only GPU 3 goes down."""
    nvml = h200_node()
    for gpu in nvml.gpus:
        busy(gpu, 0.5)
    exporter = make_exporter(nvml)
    render(exporter)
    nvml.gpus[3].lost = True
    text = render(exporter)
    exporter.close()
    return text


def scenario_nvml_absent(tmp_path: Path) -> str:
    """No driver library (a host without GPUs, or the container started without the NVIDIA runtime)."""
    exporter = make_exporter(FakeNvml([h200(0)], library_present=False), xid_events=True)
    assert exporter.xid.wait_for(lambda s: not s.running, timeout=5)
    text = render(exporter)
    exporter.close()
    return text


def scenario_h100_vm_mig(tmp_path: Path) -> str:
    """One H100 in a VM (no NVLink) split into two MIG instances; utilisation is NotSupported in MIG."""
    gpu = h100(0, mig_mode=(1, 1), not_supported={"nvmlDeviceGetRemappedRows"})
    gpu.mig_instances = [
        {"gpu_instance_id": 1, "compute_instance_id": 0, "uuid": "MIG-11111111-2222-3333-4444-555555555555",
         "name": "NVIDIA H100 80GB HBM3 MIG 3g.40gb", "memory_total": 40 * 1024**3, "memory_used": 30 * 1024**3},
        {"gpu_instance_id": 2, "compute_instance_id": 0, "uuid": "MIG-66666666-7777-8888-9999-000000000000",
         "name": "NVIDIA H100 80GB HBM3 MIG 3g.40gb", "memory_total": 40 * 1024**3, "memory_used": 0},
    ]
    exporter = make_exporter(FakeNvml([gpu], driver="570.172.08", cuda=12080))
    render(exporter)
    text = render(exporter)
    exporter.close()
    return text


SCENARIOS = {
    "h200_idle": scenario_h200_idle,
    "h200_serving": scenario_h200_serving,
    "gpu_lost": scenario_gpu_lost,
    "nvml_absent": scenario_nvml_absent,
    "h100_vm_mig": scenario_h100_vm_mig,
}
