"""A stand-in for the ``pynvml`` module: the same function names, arguments and return shapes.

The GPU exporter talks to NVML only through an object with pynvml's function names, so tests,
benchmarks and demo mode hand it a :class:`FakeNvml` instead of the ``pynvml`` module. Errors are
the real ``pynvml.NVMLError`` subclasses with NVML's codes, and where pynvml returns ctypes
structures (field values, GPM metrics) the fake fills the same structures, so the exporter code
under test is the code that runs on a GPU.

Figures for the H100/H200 presets come from measurements on real cards (driver 580, see
shared research gpu-exporters.md): sizes, reserved memory, clocks, thresholds, power limits and
which calls answer NotSupported.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from types import SimpleNamespace

import pynvml as real

MiB = 1024 * 1024
log = logging.getLogger(__name__)


def _raise(code: int):
    raise real.NVMLError(code)


@dataclass
class FakeGpu:
    """One simulated device; tests mutate the attributes between scrapes."""

    index: int
    name: str = "NVIDIA H200"
    uuid: str = ""
    bus_id: str = ""
    vbios: str = "96.00.AF.00.01"
    compute_capability: tuple[int, int] = (9, 0)
    memory_total: int = 143771 * MiB
    memory_reserved: int = 615 * MiB
    memory_used: int = 0
    util_gpu: int = 0
    util_memory: int = 0
    temperature: int = 32
    memory_temperature: int = 30
    thresholds: dict[int, int] = field(default_factory=lambda: {
        real.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN: 95, real.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN: 89,
        real.NVML_TEMPERATURE_THRESHOLD_MEM_MAX: 95, real.NVML_TEMPERATURE_THRESHOLD_GPU_MAX: 87})
    power_mw: int = 85_000
    power_limit_mw: int = 700_000
    power_default_limit_mw: int = 700_000
    power_constraints_mw: tuple[int, int] = (200_000, 700_000)
    energy_mj: int = 123_456_789
    clocks: dict[int, int] = field(default_factory=lambda: {
        real.NVML_CLOCK_SM: 345, real.NVML_CLOCK_MEM: 3201, real.NVML_CLOCK_GRAPHICS: 345})
    max_clocks: dict[int, int] = field(default_factory=lambda: {
        real.NVML_CLOCK_SM: 1980, real.NVML_CLOCK_MEM: 3201, real.NVML_CLOCK_GRAPHICS: 1980})
    pstate: int = 0
    clock_events: int = real.nvmlClocksEventReasonGpuIdle
    supported_clock_events: int = 0x1FF
    # (error type, counter type) -> count
    ecc: dict[tuple[int, int], int] = field(default_factory=dict)
    remapped_rows: tuple[int, int, int, int] = (0, 0, 0, 0)
    pcie_generation: tuple[int, int] = (5, 5)  # current, max
    pcie_width: tuple[int, int] = (16, 16)
    pcie_replays: int = 0
    pcie_tx_bytes: int = 0
    pcie_rx_bytes: int = 0
    # field id -> nanoseconds spent clock-limited for that reason
    clock_event_ns: dict[int, int] = field(default_factory=dict)
    recovery_action: int = 0
    nvlink_links: int = 18
    nvlink_down: set[int] = field(default_factory=set)
    nvlink_errors: dict[int, int] = field(default_factory=dict)  # error counter -> count per link
    nvlink_tx_kib: int = 0  # per link
    nvlink_rx_kib: int = 0
    gpm_supported: bool = True
    gpm: dict[int, float] = field(default_factory=lambda: {  # GPM metric id -> percent; idle
        real.NVML_GPM_METRIC_SM_UTIL: 0.0, real.NVML_GPM_METRIC_SM_OCCUPANCY: 0.0,
        real.NVML_GPM_METRIC_ANY_TENSOR_UTIL: 0.0, real.NVML_GPM_METRIC_DRAM_BW_UTIL: 0.0})
    processes: list[tuple[int, int | None]] = field(default_factory=list)  # (pid, used bytes)
    mig_mode: tuple[int, int] = (0, 0)
    mig_instances: list[dict] = field(default_factory=list)
    # pynvml function names (or "field:<id>", "threshold:<n>") that answer NotSupported
    not_supported: set[str] = field(default_factory=set)
    lost: bool = False
    # Set to a threading.Event to make every call on this GPU block until it is set (a hung GPU).
    hang: threading.Event | None = None

    def __post_init__(self):
        self.uuid = self.uuid or f"GPU-{self.index:08x}-1111-2222-3333-{self.index:012x}"
        self.bus_id = self.bus_id or f"00000000:{0x18 + 0x10 * self.index:02X}:00.0"
        self.handle = SimpleNamespace(gpu=self)


def h200(index: int, **overrides) -> FakeGpu:
    """An H200 SXM in an HGX board: 18 NVLinks, GPM, no fan, no retired pages, no acoustic limits."""
    return FakeGpu(index=index, **overrides)


def h100(index: int, **overrides) -> FakeGpu:
    """An H100 80GB HBM3 passed through to a single-GPU VM: no NVLink."""
    values = dict(name="NVIDIA H100 80GB HBM3", vbios="96.00.99.00.01", memory_total=81559 * MiB,
                  memory_reserved=480 * MiB, nvlink_links=0,
                  max_clocks={real.NVML_CLOCK_SM: 1980, real.NVML_CLOCK_MEM: 2619, real.NVML_CLOCK_GRAPHICS: 1980},
                  clocks={real.NVML_CLOCK_SM: 345, real.NVML_CLOCK_MEM: 2619, real.NVML_CLOCK_GRAPHICS: 345})
    values.update(overrides)
    return FakeGpu(index=index, **values)


def busy(gpu: FakeGpu, load: float) -> FakeGpu:
    """Set a GPU's moving parts as if serving an LLM at ``load`` (0..1)."""
    gpu.util_gpu = round(100 * load)
    gpu.util_memory = round(60 * load)
    gpu.memory_used = int((gpu.memory_total - gpu.memory_reserved) * (0.9 if load else 0))
    gpu.temperature = 32 + round(40 * load)
    gpu.memory_temperature = 30 + round(45 * load)
    gpu.power_mw = 85_000 + round(560_000 * load)
    gpu.clocks = {real.NVML_CLOCK_SM: 1980 if load else 345, real.NVML_CLOCK_MEM: gpu.max_clocks[real.NVML_CLOCK_MEM],
                  real.NVML_CLOCK_GRAPHICS: 1980 if load else 345}
    gpu.clock_events = real.nvmlClocksEventReasonSwPowerCap if load > 0.8 else (
        0 if load else real.nvmlClocksEventReasonGpuIdle)
    gpu.gpm = {real.NVML_GPM_METRIC_SM_UTIL: 90 * load, real.NVML_GPM_METRIC_SM_OCCUPANCY: 40 * load,
               real.NVML_GPM_METRIC_ANY_TENSOR_UTIL: 55 * load, real.NVML_GPM_METRIC_DRAM_BW_UTIL: 70 * load}
    return gpu


class _EventSet:
    def __init__(self):
        self.devices: set[int] = set()
        self.queue: deque = deque()
        self.cond = threading.Condition()
        self.freed = False


class FakeNvml:
    """The subset of pynvml the GPU exporter calls. Attribute access falls back to pynvml's constants."""

    def __init__(self, gpus: list[FakeGpu], driver: str = "580.159.04", cuda: int = 13000,
                 library_present: bool = True):
        self.gpus = gpus
        self.driver = driver
        self.cuda = cuda
        self.library_present = library_present
        self.driver_loaded = True
        self.inits = 0  # nvmlInit calls that succeeded, for tests of re-initialisation
        self._refcount = 0
        self._event_sets: list[_EventSet] = []
        self._gpm_samples: dict[int, tuple[FakeGpu, dict[int, float]] | None] = {}
        self._addresses = itertools.count(0x1000, 0x10)
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()  # pynvml function name -> calls, to test what is cached
        self.latency = 0.0  # seconds each per-GPU call takes, to imitate a real driver in benchmarks

    def __getattr__(self, name):
        # Constants and structures (NVML_*, nvml*Reason*, c_*) come from the real module.
        if name.startswith("nvml") and name[4:5].isupper() and callable(getattr(real, name, None)):
            raise AttributeError(f"FakeNvml does not implement {name}")
        return getattr(real, name)

    # -- library life cycle ------------------------------------------------------------------
    def nvmlInit(self):
        if not self.library_present:
            _raise(real.NVML_ERROR_LIBRARY_NOT_FOUND)
        if not self.driver_loaded:
            _raise(real.NVML_ERROR_DRIVER_NOT_LOADED)
        with self._lock:
            self._refcount += 1
            self.inits += 1

    def nvmlShutdown(self):
        with self._lock:
            if self._refcount == 0:
                _raise(real.NVML_ERROR_UNINITIALIZED)
            self._refcount -= 1

    def unload_driver(self):
        """The driver goes away (upgrade, crash): every call fails until it is back and re-initialised."""
        self.driver_loaded = False
        with self._lock:
            self._refcount = 0
        for es in self._event_sets:
            with es.cond:
                es.cond.notify_all()

    def load_driver(self):
        self.driver_loaded = True

    def _check(self):
        if not self.driver_loaded or self._refcount == 0:
            _raise(real.NVML_ERROR_UNINITIALIZED if self.driver_loaded else real.NVML_ERROR_DRIVER_NOT_LOADED)

    def _gpu(self, handle, fn: str, key: str | None = None) -> FakeGpu:
        self._check()
        gpu = handle.gpu
        with self._lock:
            self.calls[fn] += 1
        if gpu.hang is not None:
            gpu.hang.wait()
        if self.latency:
            time.sleep(self.latency)
        if gpu.lost:
            _raise(real.NVML_ERROR_GPU_IS_LOST)
        if fn in gpu.not_supported or (key and key in gpu.not_supported):
            _raise(real.NVML_ERROR_NOT_SUPPORTED)
        return gpu

    # -- system ------------------------------------------------------------------------------
    def nvmlSystemGetDriverVersion(self):
        self._check()
        return self.driver

    def nvmlSystemGetCudaDriverVersion(self):
        self._check()
        return self.cuda

    def nvmlSystemGetNVMLVersion(self):
        self._check()
        return "13." + self.driver

    def nvmlDeviceGetCount(self):
        self._check()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index):
        self._check()
        if not 0 <= index < len(self.gpus):
            _raise(real.NVML_ERROR_INVALID_ARGUMENT)
        gpu = self.gpus[index]
        if gpu.lost:
            _raise(real.NVML_ERROR_GPU_IS_LOST)
        return gpu.handle

    def nvmlDeviceGetIndex(self, handle):
        return self._gpu(handle, "nvmlDeviceGetIndex").index

    # -- identity ----------------------------------------------------------------------------
    def nvmlDeviceGetName(self, handle):
        gpu = self._gpu(handle, "nvmlDeviceGetName")
        return handle.mig["name"] if hasattr(handle, "mig") else gpu.name

    def nvmlDeviceGetUUID(self, handle):
        gpu = self._gpu(handle, "nvmlDeviceGetUUID")
        return handle.mig["uuid"] if hasattr(handle, "mig") else gpu.uuid

    def nvmlDeviceGetPciInfo(self, handle):
        return SimpleNamespace(busId=self._gpu(handle, "nvmlDeviceGetPciInfo").bus_id)

    def nvmlDeviceGetVbiosVersion(self, handle):
        return self._gpu(handle, "nvmlDeviceGetVbiosVersion").vbios

    def nvmlDeviceGetCudaComputeCapability(self, handle):
        return self._gpu(handle, "nvmlDeviceGetCudaComputeCapability").compute_capability

    # -- utilisation, memory, thermals, power, clocks ------------------------------------------
    def nvmlDeviceGetUtilizationRates(self, handle):
        gpu = self._gpu(handle, "nvmlDeviceGetUtilizationRates")
        if gpu.mig_mode[0] == 1:
            _raise(real.NVML_ERROR_NOT_SUPPORTED)
        return SimpleNamespace(gpu=gpu.util_gpu, memory=gpu.util_memory)

    def nvmlDeviceGetMemoryInfo(self, handle, version=None):
        gpu = self._gpu(handle, "nvmlDeviceGetMemoryInfo", "memory_v2" if version else None)
        if hasattr(handle, "mig"):
            total, used = handle.mig["memory_total"], handle.mig["memory_used"]
            return SimpleNamespace(total=total, used=used, free=total - used)
        if version:
            return SimpleNamespace(total=gpu.memory_total, reserved=gpu.memory_reserved,
                                   used=gpu.memory_used,
                                   free=gpu.memory_total - gpu.memory_reserved - gpu.memory_used)
        used = gpu.memory_used + gpu.memory_reserved  # v1 counts reserved memory as used
        return SimpleNamespace(total=gpu.memory_total, used=used, free=gpu.memory_total - used)

    def nvmlDeviceGetTemperatureV(self, handle, sensor, version=None):
        return self._gpu(handle, "nvmlDeviceGetTemperatureV").temperature

    def nvmlDeviceGetTemperature(self, handle, sensor):
        return self._gpu(handle, "nvmlDeviceGetTemperature").temperature

    def nvmlDeviceGetTemperatureThreshold(self, handle, threshold):
        gpu = self._gpu(handle, "nvmlDeviceGetTemperatureThreshold", f"threshold:{threshold}")
        if threshold not in gpu.thresholds:
            _raise(real.NVML_ERROR_NOT_SUPPORTED)
        return gpu.thresholds[threshold]

    def nvmlDeviceGetPowerUsage(self, handle):
        return self._gpu(handle, "nvmlDeviceGetPowerUsage").power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, handle):
        return self._gpu(handle, "nvmlDeviceGetEnforcedPowerLimit").power_limit_mw

    def nvmlDeviceGetPowerManagementDefaultLimit(self, handle):
        return self._gpu(handle, "nvmlDeviceGetPowerManagementDefaultLimit").power_default_limit_mw

    def nvmlDeviceGetPowerManagementLimitConstraints(self, handle):
        return list(self._gpu(handle, "nvmlDeviceGetPowerManagementLimitConstraints").power_constraints_mw)

    def nvmlDeviceGetClockInfo(self, handle, clock):
        return self._gpu(handle, "nvmlDeviceGetClockInfo").clocks[clock]

    def nvmlDeviceGetMaxClockInfo(self, handle, clock):
        return self._gpu(handle, "nvmlDeviceGetMaxClockInfo").max_clocks[clock]

    def nvmlDeviceGetPerformanceState(self, handle):
        return self._gpu(handle, "nvmlDeviceGetPerformanceState").pstate

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle):
        return self._gpu(handle, "nvmlDeviceGetCurrentClocksEventReasons").clock_events

    def nvmlDeviceGetSupportedClocksEventReasons(self, handle):
        return self._gpu(handle, "nvmlDeviceGetSupportedClocksEventReasons").supported_clock_events

    # -- reliability ---------------------------------------------------------------------------
    def nvmlDeviceGetTotalEccErrors(self, handle, error_type, counter_type):
        return self._gpu(handle, "nvmlDeviceGetTotalEccErrors").ecc.get((error_type, counter_type), 0)

    def nvmlDeviceGetRemappedRows(self, handle):
        return self._gpu(handle, "nvmlDeviceGetRemappedRows").remapped_rows

    # -- PCIe and NVLink -----------------------------------------------------------------------
    def nvmlDeviceGetCurrPcieLinkGeneration(self, handle):
        return self._gpu(handle, "nvmlDeviceGetCurrPcieLinkGeneration").pcie_generation[0]

    def nvmlDeviceGetMaxPcieLinkGeneration(self, handle):
        return self._gpu(handle, "nvmlDeviceGetMaxPcieLinkGeneration").pcie_generation[1]

    def nvmlDeviceGetCurrPcieLinkWidth(self, handle):
        return self._gpu(handle, "nvmlDeviceGetCurrPcieLinkWidth").pcie_width[0]

    def nvmlDeviceGetMaxPcieLinkWidth(self, handle):
        return self._gpu(handle, "nvmlDeviceGetMaxPcieLinkWidth").pcie_width[1]

    def nvmlDeviceGetPcieReplayCounter(self, handle):
        return self._gpu(handle, "nvmlDeviceGetPcieReplayCounter").pcie_replays

    def nvmlDeviceGetNvLinkState(self, handle, link):
        gpu = self._gpu(handle, "nvmlDeviceGetNvLinkState")
        if link >= gpu.nvlink_links:
            _raise(real.NVML_ERROR_NOT_SUPPORTED if gpu.nvlink_links == 0 else real.NVML_ERROR_INVALID_ARGUMENT)
        return 0 if link in gpu.nvlink_down else 1

    def nvmlDeviceGetNvLinkErrorCounter(self, handle, link, counter):
        gpu = self._gpu(handle, "nvmlDeviceGetNvLinkErrorCounter")
        if link >= gpu.nvlink_links:
            _raise(real.NVML_ERROR_INVALID_ARGUMENT)
        return gpu.nvlink_errors.get(counter, 0)

    def _field(self, gpu: FakeGpu, field_id: int, scope: int):
        """(return code, value type, value) of one field."""
        if f"field:{field_id}" in gpu.not_supported:
            return real.NVML_ERROR_NOT_SUPPORTED, 0, 0
        ull = real.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG
        simple = {
            real.NVML_FI_DEV_MEMORY_TEMP: (real.NVML_VALUE_TYPE_UNSIGNED_INT, gpu.memory_temperature),
            real.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION: (ull, gpu.energy_mj),
            real.NVML_FI_DEV_PCIE_COUNT_TX_BYTES: (ull, gpu.pcie_tx_bytes),
            real.NVML_FI_DEV_PCIE_COUNT_RX_BYTES: (ull, gpu.pcie_rx_bytes),
            real.NVML_FI_DEV_GET_GPU_RECOVERY_ACTION: (real.NVML_VALUE_TYPE_UNSIGNED_INT, gpu.recovery_action),
        }
        if field_id in simple:
            return (real.NVML_SUCCESS, *simple[field_id])
        if field_id in (real.NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_POWER_CAP, real.NVML_FI_DEV_CLOCKS_EVENT_REASON_SYNC_BOOST,
                        real.NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_THERM_SLOWDOWN,
                        real.NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_THERM_SLOWDOWN,
                        real.NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_POWER_BRAKE_SLOWDOWN):
            return real.NVML_SUCCESS, ull, gpu.clock_event_ns.get(field_id, 0)
        if field_id in (real.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX, real.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX):
            if scope >= gpu.nvlink_links:
                return real.NVML_ERROR_INVALID_ARGUMENT, 0, 0
            tx = field_id == real.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX
            return real.NVML_SUCCESS, ull, gpu.nvlink_tx_kib if tx else gpu.nvlink_rx_kib
        return real.NVML_ERROR_NOT_SUPPORTED, 0, 0

    def nvmlDeviceGetFieldValues(self, handle, field_ids):
        gpu = self._gpu(handle, "nvmlDeviceGetFieldValues")
        values = (real.c_nvmlFieldValue_t * len(field_ids))()
        for i, fid in enumerate(field_ids):
            fid, scope = fid if isinstance(fid, tuple) else (fid, 0)
            ret, vtype, value = self._field(gpu, fid, scope)
            values[i].fieldId, values[i].scopeId = fid, scope
            values[i].nvmlReturn, values[i].valueType = ret, vtype
            if vtype == real.NVML_VALUE_TYPE_UNSIGNED_INT:
                values[i].value.uiVal = value
            else:
                values[i].value.ullVal = value
        return values

    # -- GPM ---------------------------------------------------------------------------------
    def nvmlGpmQueryDeviceSupport(self, handle):
        gpu = self._gpu(handle, "nvmlGpmQueryDeviceSupport")
        return SimpleNamespace(version=1, isSupportedDevice=1 if gpu.gpm_supported else 0)

    def nvmlGpmSampleAlloc(self):
        self._check()
        address = next(self._addresses)
        self._gpm_samples[address] = None
        return ctypes.cast(ctypes.c_void_p(address), real.c_nvmlGpmSample_t)

    def nvmlGpmSampleFree(self, sample):
        self._gpm_samples.pop(ctypes.cast(sample, ctypes.c_void_p).value, None)

    def nvmlGpmSampleGet(self, handle, sample):
        gpu = self._gpu(handle, "nvmlGpmSampleGet")
        if not gpu.gpm_supported:
            _raise(real.NVML_ERROR_NOT_SUPPORTED)
        self._gpm_samples[ctypes.cast(sample, ctypes.c_void_p).value] = (gpu, dict(gpu.gpm))
        return sample

    def nvmlGpmMetricsGet(self, metrics_get):
        """Fills the metrics from the second sample (a real GPU averages between the two)."""
        self._check()
        first = self._gpm_samples.get(ctypes.cast(metrics_get.sample1, ctypes.c_void_p).value)
        second = self._gpm_samples.get(ctypes.cast(metrics_get.sample2, ctypes.c_void_p).value)
        if first is None or second is None:
            _raise(real.NVML_ERROR_INVALID_ARGUMENT)
        if second[0].lost:
            _raise(real.NVML_ERROR_GPU_IS_LOST)
        for i in range(metrics_get.numMetrics):
            metric = metrics_get.metrics[i]
            if metric.metricId in second[1]:
                metric.nvmlReturn, metric.value = real.NVML_SUCCESS, second[1][metric.metricId]
            else:
                metric.nvmlReturn = real.NVML_ERROR_NOT_SUPPORTED
        return metrics_get

    # -- processes and MIG -------------------------------------------------------------------
    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        gpu = self._gpu(handle, "nvmlDeviceGetComputeRunningProcesses")
        return [SimpleNamespace(pid=pid, usedGpuMemory=used, gpuInstanceId=0xFFFFFFFF, computeInstanceId=0xFFFFFFFF)
                for pid, used in gpu.processes]

    def nvmlDeviceGetMigMode(self, handle):
        return list(self._gpu(handle, "nvmlDeviceGetMigMode").mig_mode)

    def nvmlDeviceGetMaxMigDeviceCount(self, handle):
        gpu = self._gpu(handle, "nvmlDeviceGetMaxMigDeviceCount")
        return 7 if gpu.mig_mode[0] == 1 else 0

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle, index):
        gpu = self._gpu(handle, "nvmlDeviceGetMigDeviceHandleByIndex")
        if gpu.mig_mode[0] != 1 or index >= len(gpu.mig_instances):
            _raise(real.NVML_ERROR_NOT_FOUND)
        return SimpleNamespace(gpu=gpu, mig=gpu.mig_instances[index])

    def _mig(self, handle):
        self._check()
        if handle.gpu.lost:
            _raise(real.NVML_ERROR_GPU_IS_LOST)
        return handle.mig

    def nvmlDeviceGetGpuInstanceId(self, handle):
        return self._mig(handle)["gpu_instance_id"]

    def nvmlDeviceGetComputeInstanceId(self, handle):
        return self._mig(handle)["compute_instance_id"]

    # -- XID events ----------------------------------------------------------------------------
    def nvmlEventSetCreate(self):
        self._check()
        event_set = _EventSet()
        self._event_sets.append(event_set)
        return event_set

    def nvmlDeviceRegisterEvents(self, handle, event_types, event_set):
        gpu = self._gpu(handle, "nvmlDeviceRegisterEvents")
        event_set.devices.add(gpu.index)

    def nvmlEventSetWait_v2(self, event_set, timeout_ms):
        with event_set.cond:
            if not event_set.queue:
                event_set.cond.wait(timeout_ms / 1000)
            self._check()
            if not event_set.queue:
                _raise(real.NVML_ERROR_TIMEOUT)
            return event_set.queue.popleft()

    def nvmlEventSetFree(self, event_set):
        event_set.freed = True
        if event_set in self._event_sets:
            self._event_sets.remove(event_set)

    def inject_xid(self, index: int, xid: int) -> None:
        """Deliver an XID critical error for GPU ``index`` to every event set it is registered in."""
        gpu = self.gpus[index]
        event = SimpleNamespace(device=gpu.handle, eventType=real.nvmlEventTypeXidCriticalError,
                                eventData=xid, gpuInstanceId=0xFFFFFFFF, computeInstanceId=0xFFFFFFFF)
        for event_set in list(self._event_sets):
            if index in event_set.devices:
                with event_set.cond:
                    event_set.queue.append(event)
                    event_set.cond.notify_all()


def h200_node(count: int = 8, **kwargs) -> FakeNvml:
    """The target host: eight H200s on an HGX board."""
    return FakeNvml([h200(i) for i in range(count)], **kwargs)


# What ``gpu.simulate`` serves: the target host's eight H200s, four vLLM containers on them.
SIMULATED_CONTAINERS = {  # container -> (GPUs, load, pid of its first process)
    "vllm-llama-3.1-70b": ((0, 1, 2, 3), 0.9, 4100), "vllm-qwen3-32b": ((4, 5), 0.6, 4200),
    "vllm-embed": ((6,), 0.1, 4300)}


class SimulatedNode(FakeNvml):
    """A FakeNvml whose counters move with time, as a busy node's do: energy from power draw,
    PCIe and NVLink bytes from load. Demo mode and the dashboards' stack test read it.

    The node moves on every per-GPU read, not only at (re)initialisation: the exporter calls
    ``nvmlDeviceGetCount`` once per NVML session, so counters advanced there stood still for hours."""

    def __init__(self, gpus: list[FakeGpu], clock=time.monotonic, load_source=None, refresh_seconds: float = 1.0,
                 **kwargs):
        super().__init__(gpus, **kwargs)
        self.clock = clock
        self.loads = {gpu.index: 0.0 for gpu in gpus}
        self._last = clock()
        # load_source() -> {container: load 0..1}: the demo's traffic drives the containers' GPUs
        self.load_source, self.refresh_seconds = load_source, refresh_seconds
        self._refreshed = -float("inf")
        # Held only while counters or loads change; never while the load source is read, which may be slow.
        self._time_lock = threading.Lock()

    def _follow_load(self, now: float) -> None:
        """Read the load source at most once per ``refresh_seconds``; one reader at a time, the
        others carry on with the last loads. A failing source keeps the last loads."""
        with self._time_lock:
            if self.load_source is None or now - self._refreshed < self.refresh_seconds:
                return
            self._refreshed = now
        try:
            loads = self.load_source()
        except Exception:  # noqa: BLE001 - a demo's status server going away must not fail NVML calls
            log.debug("simulated GPU load source failed; keeping the last loads", exc_info=True)
            return
        with self._time_lock:
            for name, (indexes, _, pid) in SIMULATED_CONTAINERS.items():
                if name not in loads:
                    continue
                load = min(1.0, max(0.01, float(loads[name])))  # an idle vLLM still holds its memory
                for offset, index in enumerate(indexes):
                    gpu = busy(self.gpus[index], load)
                    self.loads[index] = load
                    gpu.processes = [(pid + offset, gpu.memory_used)]

    def _advance(self) -> None:
        """Move every GPU's counters on by the time since the last read."""
        now = self.clock()
        self._follow_load(now)
        with self._time_lock:
            elapsed, self._last = max(0.0, now - self._last), max(now, self._last)
            for gpu in self.gpus:
                load = self.loads[gpu.index]
                gpu.energy_mj += round(gpu.power_mw * elapsed)
                gpu.pcie_tx_bytes += round(2e8 * load * elapsed)
                gpu.pcie_rx_bytes += round(6e8 * load * elapsed)
                gpu.nvlink_tx_kib += round(4e6 * load * elapsed)
                gpu.nvlink_rx_kib += round(4e6 * load * elapsed)

    def _gpu(self, handle, fn: str, key: str | None = None) -> FakeGpu:
        self._check()
        self._advance()
        return super()._gpu(handle, fn, key)

    def nvmlDeviceGetCount(self):
        self._check()
        self._advance()
        return super().nvmlDeviceGetCount()


class SimulatedContainers:
    """Stands in for ContainerResolver: the simulated processes' pids name their containers."""

    lookup_errors = 0

    def __init__(self, containers: dict[str, tuple[tuple[int, ...], float, int]] = SIMULATED_CONTAINERS):
        self.names = {pid + offset: name for name, (gpus, _, pid) in containers.items()
                      for offset in range(len(gpus))}

    def container_of(self, pid: int) -> str:
        return self.names.get(pid, "host")


def http_loads(url: str, timeout: float = 1.0):
    """A load source reading ``{container: load}`` JSON from the demo's status server; an
    unreachable or garbled answer keeps the last loads."""
    import httpx

    def fetch() -> dict[str, float]:
        try:
            value = httpx.get(url, timeout=timeout).json()
        except (httpx.HTTPError, httpx.InvalidURL, ValueError):
            return {}
        if not isinstance(value, dict):
            return {}
        return {str(k): v for k, v in value.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}

    return fetch


def simulated_node(clock=time.monotonic) -> SimulatedNode:
    """What ``gpu.simulate = true`` serves: eight H200s under a steady, uneven load, one process
    per GPU of each simulated container (GPU 7 idle)."""
    nvml = SimulatedNode([h200(i) for i in range(8)], clock=clock, driver="simulated")
    for name, (indexes, load, pid) in SIMULATED_CONTAINERS.items():
        for offset, index in enumerate(indexes):
            gpu = busy(nvml.gpus[index], load)
            nvml.loads[index] = load
            gpu.processes = [(pid + offset, gpu.memory_used)]
    return nvml


def apply_faults(nvml: FakeNvml, faults: dict) -> None:
    """Put ``{"lost": [gpu indexes], "hung": [gpu indexes], "driver_unloaded": bool}`` in force on
    ``nvml``; what is no longer listed recovers (a hung GPU's blocked calls return)."""
    lost, hung = set(faults.get("lost") or ()), set(faults.get("hung") or ())
    for gpu in nvml.gpus:
        gpu.lost = gpu.index in lost
        if gpu.index in hung and gpu.hang is None:
            gpu.hang = threading.Event()
        elif gpu.index not in hung and gpu.hang is not None:
            released, gpu.hang = gpu.hang, None
            released.set()
    if faults.get("driver_unloaded") and nvml.driver_loaded:
        nvml.unload_driver()
    elif not faults.get("driver_unloaded") and not nvml.driver_loaded:
        nvml.load_driver()


def read_faults(path) -> dict:
    """The faults file's JSON object; a missing, half-written or garbled file means no fault."""
    import json

    try:
        value = json.loads(open(path, encoding="utf-8").read())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def watch_faults(nvml: FakeNvml, path, interval: float = 0.2) -> threading.Thread:
    """Apply the faults file (see :func:`apply_faults`) every ``interval`` seconds from a daemon
    thread, so the soak test can lose, hang or unload a simulated node's GPUs at runtime."""

    def watch():
        while True:
            apply_faults(nvml, read_faults(path))
            time.sleep(interval)

    thread = threading.Thread(target=watch, name="nvml-faults", daemon=True)
    thread.start()
    return thread
