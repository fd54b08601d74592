"""Whatever values and errors NVML answers with, /metrics renders and parses."""

from __future__ import annotations

import pynvml as P
from hypothesis import HealthCheck, given, settings, strategies as st
from prometheus_client.parser import text_string_to_metric_families

from llmwatch.simulation.nvml import FakeNvml, h200
from tests.gpu.scenarios import make_exporter, render

CALLS = ["nvmlDeviceGetUtilizationRates", "nvmlDeviceGetMemoryInfo", "memory_v2", "nvmlDeviceGetTemperatureV",
         "nvmlDeviceGetPowerUsage", "nvmlDeviceGetClockInfo", "nvmlDeviceGetPerformanceState",
         "nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetTotalEccErrors", "nvmlDeviceGetRemappedRows",
         "nvmlDeviceGetFieldValues", "field:83", "field:197", "nvmlDeviceGetNvLinkState", "nvmlGpmSampleGet",
         "nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetMigMode", "nvmlDeviceGetVbiosVersion",
         "nvmlDeviceGetMaxClockInfo", "nvmlDeviceGetTemperatureThreshold"]
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)


@st.composite
def gpus(draw):
    gpu = h200(0, not_supported=set(draw(st.lists(st.sampled_from(CALLS), max_size=8))))
    gpu.util_gpu, gpu.util_memory = draw(u32), draw(u32)
    gpu.memory_used = draw(st.integers(0, gpu.memory_total - gpu.memory_reserved))
    gpu.temperature, gpu.memory_temperature, gpu.power_mw = draw(u32), draw(u32), draw(u32)
    gpu.energy_mj, gpu.pcie_tx_bytes = draw(u64), draw(u64)
    gpu.pstate = draw(st.sampled_from([0, 2, 8, 15, 32]))
    gpu.clock_events = draw(st.integers(0, 2**64 - 1))
    gpu.remapped_rows = (draw(u32), draw(u32), draw(st.integers(0, 1)), draw(st.integers(0, 1)))
    gpu.nvlink_links = draw(st.integers(0, 18))
    gpu.processes = draw(st.lists(st.tuples(st.integers(1, 2**22), st.one_of(st.none(), u64)), max_size=5))
    gpu.gpm = {P.NVML_GPM_METRIC_SM_UTIL: draw(st.floats(0, 100))}
    return gpu


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gpus())
def test_any_nvml_answer_renders_a_valid_exposition(gpu):
    exporter = make_exporter(FakeNvml([gpu]))
    for _ in range(2):
        text = render(exporter)
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert families["llmwatch_gpu_up"].samples[0].value == 1
        errors = {s.labels["reason"]: s.value for s in families["llmwatch_gpu_scrape_errors"].samples}
        assert errors["exception"] == 0
    exporter.close()
