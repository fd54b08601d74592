"""How the GPU exporter behaves when GPUs, the driver or the host misbehave."""

from __future__ import annotations

import threading

import pynvml as P
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmwatch.simulation.nvml import FakeNvml, busy, h100, h200, h200_node
from tests.gpu.scenarios import make_exporter, render, serving_node


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels) -> float | None:
    return samples(text).get((name, tuple(sorted(labels.items()))))


def names(text: str) -> set[str]:
    return {name for name, _ in samples(text)}


def test_static_values_are_read_once_per_session():
    nvml = h200_node(2)
    exporter = make_exporter(nvml)
    for _ in range(3):
        render(exporter)
    assert nvml.calls["nvmlDeviceGetMaxClockInfo"] == 2 * 3  # 3 clocks per GPU, once
    assert nvml.calls["nvmlDeviceGetTemperatureThreshold"] == 2 * 4
    assert nvml.calls["nvmlDeviceGetPowerUsage"] == 2 * 3  # dynamic: every scrape
    exporter.close()


def test_not_supported_is_skipped_afterwards_and_never_exported_as_zero():
    gpu = h200(0, not_supported={"nvmlDeviceGetTotalEccErrors", "field:82", "nvmlDeviceGetPcieReplayCounter"})
    nvml = FakeNvml([gpu])
    exporter = make_exporter(nvml)
    first = render(exporter)
    calls_after_first = nvml.calls["nvmlDeviceGetTotalEccErrors"]
    second = render(exporter)
    render(exporter)
    assert calls_after_first == 4  # corrected/uncorrected x volatile/aggregate, tried once
    assert nvml.calls["nvmlDeviceGetTotalEccErrors"] == calls_after_first
    assert nvml.calls["nvmlDeviceGetPcieReplayCounter"] == 1
    for text in (first, second):
        assert not any(n.startswith("llmwatch_gpu_ecc_") for n in names(text))
        assert "llmwatch_gpu_memory_temperature_celsius" not in names(text)
        assert "llmwatch_gpu_pcie_replays_total" not in names(text)
        assert value(text, "llmwatch_gpu_temperature_celsius", gpu="0") == 32  # the rest still there
    assert value(second, "llmwatch_gpu_scrape_errors_total", reason="nvml_call") == 0
    exporter.close()


def test_memory_falls_back_to_v1_on_old_drivers():
    gpu = h200(0, not_supported={"memory_v2"})
    busy(gpu, 0.5)
    exporter = make_exporter(FakeNvml([gpu]))
    text = render(exporter)
    assert "llmwatch_gpu_memory_reserved_bytes" not in names(text)
    # v1 counts driver-reserved memory as used: the exporter says what NVML says, no guessing.
    assert value(text, "llmwatch_gpu_memory_used_bytes", gpu="0") == gpu.memory_used + gpu.memory_reserved
    exporter.close()


def test_lost_gpu_goes_down_alone_and_comes_back():
    nvml = h200_node(4)
    exporter = make_exporter(nvml)
    render(exporter)
    nvml.gpus[2].lost = True
    down = render(exporter)
    assert [value(down, "llmwatch_gpu_up", gpu=str(i)) for i in range(4)] == [1, 1, 0, 1]
    assert value(down, "llmwatch_gpu_power_watts", gpu="2") is None  # no stale value for the lost GPU
    assert value(down, "llmwatch_gpu_power_watts", gpu="3") == 85
    assert value(down, "llmwatch_gpu_scrape_errors_total", reason="gpu_lost") == 1
    assert value(down, "llmwatch_gpu_nvml_up") == 1
    nvml.gpus[2].lost = False
    back = render(exporter)
    assert value(back, "llmwatch_gpu_up", gpu="2") == 1
    assert _info_labels(back, "2")["uuid"] == nvml.gpus[2].uuid  # identity read again after the loss
    exporter.close()


def test_a_gpu_going_down_is_logged_once_as_a_warning_and_its_return_once(caplog):
    nvml = h200_node(2)
    exporter = make_exporter(nvml)
    render(exporter)
    caplog.clear()
    caplog.set_level("INFO", logger="llmwatch.exporters.gpu")
    nvml.gpus[1].lost = True
    for _ in range(3):
        render(exporter)
    nvml.gpus[1].lost = False
    for _ in range(2):
        render(exporter)
    exporter.close()
    events = [(r.levelname, r.getMessage(), getattr(r, "gpu", None), getattr(r, "reason", None))
              for r in caplog.records if r.getMessage().startswith("GPU ")]
    assert events == [("WARNING", "GPU down", "1", "gpu_lost"), ("INFO", "GPU back", "1", None)]
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def _info_labels(text: str, gpu: str) -> dict:
    for (name, labels), _ in samples(text).items():
        if name == "llmwatch_gpu_info" and dict(labels)["gpu"] == gpu:
            return dict(labels)
    raise AssertionError(f"no llmwatch_gpu_info for gpu {gpu}")


def test_gpu_lost_at_start_is_reported_and_picked_up_later():
    nvml = h200_node(2)
    nvml.gpus[1].lost = True
    exporter = make_exporter(nvml)
    text = render(exporter)
    assert value(text, "llmwatch_gpu_up", gpu="1") == 0
    nvml.gpus[1].lost = False
    assert value(render(exporter), "llmwatch_gpu_up", gpu="1") == 1
    exporter.close()


def test_nvml_absent_keeps_serving_then_initialises_when_the_driver_appears():
    nvml = FakeNvml([h200(0), h200(1)], library_present=False)
    exporter = make_exporter(nvml)
    first = render(exporter)
    assert value(first, "llmwatch_gpu_nvml_up") == 0
    assert value(first, "llmwatch_gpu_scrape_errors_total", reason="nvml_init") == 1
    assert not [n for n in names(first) if n == "llmwatch_gpu_up"]
    nvml.library_present = True
    second = render(exporter)
    assert value(second, "llmwatch_gpu_nvml_up") == 1
    assert value(second, "llmwatch_gpu_up", gpu="1") == 1
    exporter.close()


def test_driver_unloaded_mid_run_marks_every_gpu_down_then_reinitialises():
    nvml = h200_node(3)
    exporter = make_exporter(nvml, xid_events=True)
    assert exporter.xid.wait_for(lambda s: s.running, timeout=10)
    render(exporter)
    inits = nvml.inits
    nvml.unload_driver()
    down = render(exporter)
    assert value(down, "llmwatch_gpu_nvml_up") == 0
    assert [value(down, "llmwatch_gpu_up", gpu=str(i)) for i in range(3)] == [0, 0, 0]
    assert value(down, "llmwatch_gpu_scrape_errors_total", reason="nvml_lost") == 1
    assert exporter.xid.wait_for(lambda s: not s.running, timeout=10)
    still_down = render(exporter)
    assert value(still_down, "llmwatch_gpu_nvml_up") == 0
    nvml.load_driver()
    back = render(exporter)
    assert value(back, "llmwatch_gpu_nvml_up") == 1
    assert [value(back, "llmwatch_gpu_up", gpu=str(i)) for i in range(3)] == [1, 1, 1]
    assert nvml.inits > inits
    # The XID watcher re-registers by itself (after its back-off) and counts events again.
    assert exporter.xid.wait_for(lambda s: s.running, timeout=10)
    nvml.inject_xid(1, 79)
    assert exporter.xid.wait_for(lambda s: s.counts.get(("1", 79)) == 1, timeout=10)
    exporter.close()


def test_a_driver_lost_under_concurrent_scrapes_is_logged_and_counted_once(caplog):
    nvml = h200_node(4)
    exporter = make_exporter(nvml)
    render(exporter)
    nvml.unload_driver()
    scrapers = 10
    start = threading.Barrier(scrapers)
    texts = []

    def scrape():
        start.wait()
        texts.append(render(exporter))

    threads = [threading.Thread(target=scrape) for _ in range(scrapers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(value(t, "llmwatch_gpu_nvml_up") == 0 for t in texts)
    assert value(render(exporter), "llmwatch_gpu_scrape_errors_total", reason="nvml_lost") == 1
    assert len([r for r in caplog.records if r.getMessage().startswith("NVML driver went away")]) == 1
    exporter.close()


def test_a_hung_gpu_costs_only_its_own_series_within_the_budget():
    nvml = h200_node(3)
    exporter = make_exporter(nvml, budget=0.3)
    render(exporter)
    nvml.gpus[1].hang = threading.Event()
    try:
        text = render(exporter)
        assert [value(text, "llmwatch_gpu_up", gpu=str(i)) for i in range(3)] == [1, 0, 1]
        assert value(text, "llmwatch_gpu_scrape_errors_total", reason="timeout") >= 1
        # The next scrape does not pile up behind the hung read: GPU 1 is down again, the others fine.
        again = render(exporter)
        assert [value(again, "llmwatch_gpu_up", gpu=str(i)) for i in range(3)] == [1, 0, 1]
    finally:
        nvml.gpus[1].hang.set()
    nvml.gpus[1].hang = None
    assert value(render(exporter), "llmwatch_gpu_up", gpu="1") == 1
    exporter.close()


def test_a_hung_gpu_never_marks_a_healthy_one_down_under_concurrent_scrapes():
    nvml = h200_node(4)
    exporter = make_exporter(nvml, budget=1.0)
    render(exporter)
    nvml.gpus[1].hang = threading.Event()
    rounds, scrapers = 5, 20
    results: list[list[float | None]] = []
    start = threading.Barrier(scrapers)

    def scrape_repeatedly():
        start.wait()
        for _ in range(rounds):
            text = render(exporter)
            results.append([value(text, "llmwatch_gpu_up", gpu=str(i)) for i in range(4)])

    threads = [threading.Thread(target=scrape_repeatedly) for _ in range(scrapers)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        nvml.gpus[1].hang.set()
    assert len(results) == rounds * scrapers
    assert [r for r in results if r != [1, 0, 1, 1]] == []
    # One reader for the hung GPU, however many scrapes waited on it.
    assert sum(t.name == "gpu-read-1" for t in threading.enumerate()) <= 1
    exporter.close()


def test_a_hung_nvml_init_costs_one_budget_and_is_not_started_twice():
    nvml = h200_node(2)
    hang = threading.Event()
    real_init = nvml.nvmlInit

    def hung_init():
        hang.wait()
        real_init()

    nvml.nvmlInit = hung_init
    exporter = make_exporter(nvml, budget=0.2)
    try:
        first = render(exporter)
        second = render(exporter)
        assert value(first, "llmwatch_gpu_nvml_up") == 0
        assert value(second, "llmwatch_gpu_scrape_errors_total", reason="timeout") == 2
        assert sum(t.name == "nvml-init" for t in threading.enumerate()) == 1
    finally:
        hang.set()
    assert value(render(exporter), "llmwatch_gpu_nvml_up") == 1
    exporter.close()


def test_a_hung_nvml_shutdown_does_not_hold_up_close():
    from llmwatch.exporters.gpu.nvml import SHUTDOWN_SECONDS

    nvml = h200_node(1)
    exporter = make_exporter(nvml)
    render(exporter)
    hang = threading.Event()
    nvml.nvmlShutdown = hang.wait
    closed = threading.Event()
    threading.Thread(target=lambda: (exporter.close(), closed.set()), daemon=True).start()
    try:
        assert closed.wait(SHUTDOWN_SECONDS + 2)
    finally:
        hang.set()


def test_gpu_that_disappears_after_reinit_stays_reported_down():
    nvml = h200_node(3)
    exporter = make_exporter(nvml)
    render(exporter)
    nvml.unload_driver()
    render(exporter)
    nvml.gpus.pop()  # the board is gone from the bus entirely
    nvml.load_driver()
    text = render(exporter)
    assert [value(text, "llmwatch_gpu_up", gpu=str(i)) for i in range(3)] == [1, 1, 0]
    exporter.close()


def test_xid_counts_every_repeat_with_last_seen_time():
    nvml = h200_node(2)
    exporter = make_exporter(nvml, xid_events=True)
    assert exporter.xid.wait_for(lambda s: s.running, timeout=10)
    before = render(exporter)
    assert value(before, "llmwatch_gpu_xid_events_total", gpu="0") == 0  # initialised, so increase() sees the first
    for _ in range(3):
        nvml.inject_xid(0, 13)
    nvml.inject_xid(1, 79)
    assert exporter.xid.wait_for(lambda s: sum(s.per_gpu.values()) == 4, timeout=10)
    text = render(exporter)
    assert value(text, "llmwatch_gpu_xid_errors_total", gpu="0", xid="13") == 3
    assert value(text, "llmwatch_gpu_xid_errors_total", gpu="1", xid="79") == 1
    assert value(text, "llmwatch_gpu_xid_last_timestamp_seconds", gpu="0", xid="13") == 1_795_000_000.0
    exporter.close()


def test_xid_watcher_survives_a_gpu_that_cannot_register_events():
    gpu = h200(1, not_supported={"nvmlDeviceRegisterEvents"})
    nvml = FakeNvml([h200(0), gpu])
    exporter = make_exporter(nvml, xid_events=True)
    assert exporter.xid.wait_for(lambda s: s.running, timeout=10)
    text = render(exporter)
    assert value(text, "llmwatch_gpu_xid_events_total", gpu="0") == 0
    assert value(text, "llmwatch_gpu_xid_events_total", gpu="1") is None  # not watched: absent, not 0
    exporter.close()


def test_mig_mode_change_retries_calls_skipped_under_the_old_mode():
    gpu = h100(0, mig_mode=(1, 1))
    nvml = FakeNvml([gpu])
    exporter = make_exporter(nvml)
    assert "llmwatch_gpu_utilization_ratio" not in names(render(exporter))
    gpu.mig_mode = (0, 0)
    render(exporter)  # sees the new mode; skipped calls are tried again from here on
    assert value(render(exporter), "llmwatch_gpu_utilization_ratio", gpu="0") == 0
    exporter.close()


def test_gpm_needs_two_samples_and_is_absent_on_the_first_scrape():
    nvml = FakeNvml([busy(h200(0), 0.5)])
    exporter = make_exporter(nvml)
    assert "llmwatch_gpu_sm_active_ratio" not in names(render(exporter))
    assert value(render(exporter), "llmwatch_gpu_sm_active_ratio", gpu="0") == pytest.approx(0.45)
    exporter.close()


def test_gpm_unsupported_board_exports_no_gpm_metrics():
    nvml = FakeNvml([h100(0, gpm_supported=False)])
    exporter = make_exporter(nvml)
    render(exporter)
    text = render(exporter)
    assert not {"llmwatch_gpu_sm_active_ratio", "llmwatch_gpu_tensor_active_ratio"} & names(text)
    assert nvml.calls["nvmlGpmSampleGet"] == 0
    exporter.close()


def test_process_memory_unknown_to_nvml_is_not_summed_as_zero(tmp_path):
    nvml, exporter = serving_node(tmp_path)
    text = render(exporter)
    # GPU 5 has one process NVML cannot size: the count is known, the memory total is not.
    assert value(text, "llmwatch_gpu_container_processes", gpu="5", container="vllm-qwen-32b") == 2
    assert value(text, "llmwatch_gpu_container_memory_used_bytes", gpu="5", container="vllm-qwen-32b") is None
    exporter.close()


def test_concurrent_scrapes_are_consistent(tmp_path):
    nvml, exporter = serving_node(tmp_path)
    render(exporter)
    results, failures = [], []

    def scrape():
        try:
            results.append(render(exporter))
        except Exception as e:  # pragma: no cover - what the test looks for
            failures.append(e)

    threads = [threading.Thread(target=scrape) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    assert all(value(r, "llmwatch_gpu_up", gpu="7") == 1 for r in results)
    exporter.close()


def test_energy_and_units_are_converted_to_base_units():
    gpu = h200(0, energy_mj=3_600_000, power_mw=512_345)
    gpu.clock_event_ns = {P.NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_THERM_SLOWDOWN: 1_500_000_000}
    gpu.nvlink_tx_kib = 1
    exporter = make_exporter(FakeNvml([gpu]))
    text = render(exporter)
    assert value(text, "llmwatch_gpu_energy_joules_total", gpu="0") == 3600
    assert value(text, "llmwatch_gpu_power_watts", gpu="0") == pytest.approx(512.345)
    assert value(text, "llmwatch_gpu_clock_event_duration_seconds_total", gpu="0",
                 reason="hw_thermal_slowdown") == pytest.approx(1.5)
    assert value(text, "llmwatch_gpu_nvlink_transmit_bytes_total", gpu="0") == 18 * 1024
    assert value(text, "llmwatch_gpu_clock_hz", gpu="0", clock="memory") == 3201e6
    assert value(text, "llmwatch_gpu_memory_total_bytes", gpu="0") == 150_754_820_096  # 143771 MiB, as NVML reports
    exporter.close()


def test_old_driver_without_temperature_v_uses_the_deprecated_call():
    gpu = h200(0, not_supported={"nvmlDeviceGetTemperatureV"})
    exporter = make_exporter(FakeNvml([gpu]))
    assert value(render(exporter), "llmwatch_gpu_temperature_celsius", gpu="0") == 32
    exporter.close()


def _missing(self):
    raise AttributeError("not in these bindings")


class _OldBindings(FakeNvml):
    """nvidia-ml-py from before GPM and remapped rows: those functions do not exist at all."""

    nvmlGpmQueryDeviceSupport = property(_missing)
    nvmlDeviceGetRemappedRows = property(_missing)


def test_bindings_missing_a_function_skip_it_and_keep_everything_else():
    exporter = make_exporter(_OldBindings([h200(0), h200(1)]))
    render(exporter)
    text = render(exporter)
    assert value(text, "llmwatch_gpu_up", gpu="1") == 1
    assert "llmwatch_gpu_remapped_rows_pending" not in names(text)
    assert "llmwatch_gpu_sm_active_ratio" not in names(text)
    assert value(text, "llmwatch_gpu_scrape_errors_total", reason="exception") == 0
    exporter.close()


def test_an_unexpected_error_on_one_gpu_leaves_the_others_reporting():
    nvml = h200_node(3)
    exporter = make_exporter(nvml)
    nvml.gpus[1].clock_events = "garbage"  # an answer no real NVML gives: the bitmask is not an int
    text = render(exporter)
    assert [value(text, "llmwatch_gpu_up", gpu=str(i)) for i in range(3)] == [1, 0, 1]
    assert value(text, "llmwatch_gpu_scrape_errors_total", reason="exception") == 1
    exporter.close()
