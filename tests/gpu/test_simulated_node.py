"""The simulated node moves with time on every read, as the demo and the README promise."""

from __future__ import annotations

import pynvml as P

from llmwatch.simulation.nvml import simulated_node


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def energy_and_pcie(node, index: int = 0) -> tuple[int, int, int]:
    fields = node.nvmlDeviceGetFieldValues(node.nvmlDeviceGetHandleByIndex(index), [
        P.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION, P.NVML_FI_DEV_PCIE_COUNT_TX_BYTES, P.NVML_FI_DEV_PCIE_COUNT_RX_BYTES])
    return tuple(f.value.ullVal for f in fields)


def started(clock: Clock):
    node = simulated_node(clock=clock)
    node.nvmlInit()
    node.nvmlDeviceGetCount()  # the exporter's one call per NVML session
    return node


def test_counters_advance_on_every_per_gpu_read_without_reinitialisation():
    clock = Clock()
    node = started(clock)
    first = energy_and_pcie(node)
    clock.now += 8
    second = energy_and_pcie(node)
    gpu = node.gpus[0]
    assert second[0] - first[0] == gpu.power_mw * 8  # mJ = mW x s
    assert second[1] - first[1] == round(2e8 * node.loads[0] * 8)
    assert second[2] > first[2]
    assert energy_and_pcie(node) == second  # no time passed, nothing moved


def test_the_load_source_is_read_at_most_once_a_second_and_drives_the_gpus():
    clock = Clock()
    reads = []

    def load_source():
        reads.append(clock.now)
        return {"vllm-embed": 0.5 if len(reads) > 1 else 0.1}

    node = started(clock)
    node.load_source = load_source
    handle = node.nvmlDeviceGetHandleByIndex(6)
    for _ in range(3):
        node.nvmlDeviceGetUtilizationRates(handle)
        clock.now += 0.25
    assert node.nvmlDeviceGetUtilizationRates(handle).gpu == 10  # four reads within 0.75 s: one load read
    assert reads == [1000.0]
    clock.now += 0.25
    assert node.nvmlDeviceGetUtilizationRates(handle).gpu == 50  # traffic rose: the GPU follows
    assert reads == [1000.0, 1001.0]


def test_a_failing_load_source_keeps_the_last_load():
    clock = Clock()
    node = started(clock)
    node.load_source = lambda: {"vllm-embed": 0.3}
    handle = node.nvmlDeviceGetHandleByIndex(6)
    assert node.nvmlDeviceGetUtilizationRates(handle).gpu == 30

    def broken():
        raise ConnectionResetError("status server gone")

    node.load_source = broken
    clock.now += 5
    assert node.nvmlDeviceGetUtilizationRates(handle).gpu == 30
    assert node.loads[6] == 0.3


def test_an_unreachable_load_url_keeps_the_last_load():
    from llmwatch.simulation.nvml import http_loads

    clock = Clock()
    node = started(clock)
    before = node.gpus[0].util_gpu
    node.load_source = http_loads("http://")  # no host: httpx refuses it before connecting
    clock.now += 5
    assert node.nvmlDeviceGetUtilizationRates(node.nvmlDeviceGetHandleByIndex(0)).gpu == before
