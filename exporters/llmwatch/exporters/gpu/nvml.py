"""The NVML source: raw readings per GPU, in NVML's own units, through a pynvml-shaped object.

``nvml`` is the ``pynvml`` module in production and :class:`~llmwatch.simulation.nvml.FakeNvml` in
tests; nothing here imports a GPU-specific path. What the readings mean and how they are named is
``metrics.py``'s business; this module decides only *what to call and when*:

* values that cannot change (name, UUID, maximum clocks, thresholds, NVLink count) are read once
  per NVML session;
* a call a GPU answers with NotSupported (or FunctionNotFound, NoPermission) is remembered and
  skipped for that GPU, so it is neither retried every scrape nor exported as zero;
* a lost GPU (GPU_IS_LOST, reset required) fails only that GPU's reading; a gone driver fails the
  session, and the next scrape re-initialises NVML;
* every NVML call runs on a daemon thread that a scrape waits for only until its deadline: one
  reader per GPU at a time (a hung GPU blocks only itself and is reported down with reason
  ``timeout``), one initialisation at a time, and a bounded shutdown, so a call that never returns
  neither stalls another GPU nor keeps the process from exiting.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, TimeoutError as FutureTimeout, wait
from dataclasses import dataclass, field
from typing import Any

import pynvml as P

from llmwatch.core.scrape import ScrapeErrors

log = logging.getLogger(__name__)

# Answers that will not change while this NVML session lives: skip the call from now on.
SKIP_CODES = {P.NVML_ERROR_NOT_SUPPORTED, P.NVML_ERROR_FUNCTION_NOT_FOUND, P.NVML_ERROR_NO_PERMISSION,
              P.NVML_ERROR_INVALID_ARGUMENT, P.NVML_ERROR_ARGUMENT_VERSION_MISMATCH}
# The GPU itself is gone or wedged: that GPU is down for this scrape.
GPU_DOWN_CODES = {P.NVML_ERROR_GPU_IS_LOST: "gpu_lost", P.NVML_ERROR_RESET_REQUIRED: "gpu_reset_required",
                  P.NVML_ERROR_UNKNOWN: "gpu_unknown_error"}
# The library or driver is gone: every GPU is down and NVML must be initialised again.
NVML_DOWN_CODES = {P.NVML_ERROR_UNINITIALIZED, P.NVML_ERROR_DRIVER_NOT_LOADED,
                   P.NVML_ERROR_LIB_RM_VERSION_MISMATCH, P.NVML_ERROR_LIBRARY_NOT_FOUND}

CLOCKS = ((P.NVML_CLOCK_SM, "sm"), (P.NVML_CLOCK_MEM, "memory"), (P.NVML_CLOCK_GRAPHICS, "graphics"))
THRESHOLDS = ((P.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN, "shutdown"), (P.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN, "slowdown"),
              (P.NVML_TEMPERATURE_THRESHOLD_GPU_MAX, "gpu_max"), (P.NVML_TEMPERATURE_THRESHOLD_MEM_MAX, "memory_max"))
# Clock-event (throttle) reason bits, named as in NVML's nvmlClocksEventReason* constants.
CLOCK_EVENT_REASONS = (
    (P.nvmlClocksEventReasonGpuIdle, "gpu_idle"),
    (P.nvmlClocksEventReasonApplicationsClocksSetting, "applications_clocks_setting"),
    (P.nvmlClocksEventReasonSwPowerCap, "sw_power_cap"),
    (P.nvmlClocksEventReasonHwSlowdown, "hw_slowdown"),
    (P.nvmlClocksEventReasonSyncBoost, "sync_boost"),
    (P.nvmlClocksEventReasonSwThermalSlowdown, "sw_thermal_slowdown"),
    (P.nvmlClocksEventReasonHwThermalSlowdown, "hw_thermal_slowdown"),
    (P.nvmlClocksEventReasonHwPowerBrakeSlowdown, "hw_power_brake_slowdown"),
    (P.nvmlClocksEventReasonDisplayClockSetting, "display_clock_setting"),
)
# Time spent clock-limited, cumulative nanoseconds, per reason (field values).
CLOCK_EVENT_FIELDS = {
    P.NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_POWER_CAP: "sw_power_cap",
    P.NVML_FI_DEV_CLOCKS_EVENT_REASON_SYNC_BOOST: "sync_boost",
    P.NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_THERM_SLOWDOWN: "sw_thermal_slowdown",
    P.NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_THERM_SLOWDOWN: "hw_thermal_slowdown",
    P.NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_POWER_BRAKE_SLOWDOWN: "hw_power_brake_slowdown",
}
# Other per-GPU fields read in one batch call: field id -> sample key.
SCALAR_FIELDS = {
    P.NVML_FI_DEV_MEMORY_TEMP: "memory_temperature",
    P.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION: "energy",
    P.NVML_FI_DEV_PCIE_COUNT_TX_BYTES: "pcie_tx",
    P.NVML_FI_DEV_PCIE_COUNT_RX_BYTES: "pcie_rx",
    P.NVML_FI_DEV_GET_GPU_RECOVERY_ACTION: "recovery_action",
}
ECC = ((P.NVML_MEMORY_ERROR_TYPE_CORRECTED, "corrected"), (P.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, "uncorrected"))
ECC_COUNTERS = ((P.NVML_VOLATILE_ECC, "ecc_volatile"), (P.NVML_AGGREGATE_ECC, "ecc_aggregate"))
NVLINK_ERRORS = ((P.NVML_NVLINK_ERROR_DL_REPLAY, "replay"), (P.NVML_NVLINK_ERROR_DL_RECOVERY, "recovery"),
                 (P.NVML_NVLINK_ERROR_DL_CRC_FLIT, "crc_flit"), (P.NVML_NVLINK_ERROR_DL_CRC_DATA, "crc_data"))
GPM_METRICS = ((P.NVML_GPM_METRIC_SM_UTIL, "sm_active"), (P.NVML_GPM_METRIC_SM_OCCUPANCY, "sm_occupancy"),
               (P.NVML_GPM_METRIC_ANY_TENSOR_UTIL, "tensor_active"), (P.NVML_GPM_METRIC_DRAM_BW_UTIL, "dram_active"))
_FIELD_VALUE = {P.NVML_VALUE_TYPE_DOUBLE: "dVal", P.NVML_VALUE_TYPE_UNSIGNED_INT: "uiVal",
                P.NVML_VALUE_TYPE_UNSIGNED_LONG: "ulVal", P.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: "ullVal",
                P.NVML_VALUE_TYPE_SIGNED_LONG_LONG: "sllVal", P.NVML_VALUE_TYPE_SIGNED_INT: "siVal",
                P.NVML_VALUE_TYPE_UNSIGNED_SHORT: "usVal"}


class GpuDown(Exception):
    """This GPU cannot be read now; ``reason`` is a scrape-error reason."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class NvmlDown(Exception):
    """The library or driver is gone; NVML has to be initialised again."""


@dataclass(frozen=True)
class Sample:
    key: str  # a key of metrics.SPECS
    value: float
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class MigInstance:
    gpu_instance_id: int
    compute_instance_id: int
    uuid: str
    profile: str
    memory_total: int
    memory_used: int


@dataclass
class GpuReading:
    """One GPU's values for one scrape. ``down`` holds the reason when it could not be read."""

    index: str
    info: dict[str, str] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    processes: list[tuple[int, int | None]] = field(default_factory=list)
    mig: list[MigInstance] = field(default_factory=list)
    down: str | None = None
    duration: float = 0.0
    error: str = ""  # NVML's message when down, for the log


@dataclass
class SystemInfo:
    driver_version: str
    cuda_version: str
    nvml_version: str


@dataclass
class _Gpu:
    """Per-GPU state that lives as long as one NVML session."""

    index: str
    handle: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    reading: Future | None = None  # the read in flight (or last finished), shared by concurrent scrapes
    static: dict[str, Any] | None = None  # info labels and constant samples, read once
    skip: set = field(default_factory=set)  # calls and field ids this GPU does not support
    mig_mode: int | None = None
    gpm_samples: list = field(default_factory=list)  # [previous, next] when GPM is on
    gpm_primed: bool = False


def _code(error: Exception) -> int | None:
    return getattr(error, "value", None) if isinstance(error, P.NVMLError) else None


# How long closing the session may wait for nvmlShutdown (and freeing GPM samples) before giving up.
# With the HTTP server's stop (0.5 s) and the XID watcher's (2 s), SIGTERM to exit stays under 4 s.
SHUTDOWN_SECONDS = 1.0


def on_daemon_thread(name: str, fn, *args) -> Future:
    """``fn(*args)`` on a new daemon thread; its future holds the result or the exception.

    NVML calls can block forever (a wedged GPU, a driver in reset). A daemon thread is never joined
    at interpreter exit, unlike a ``ThreadPoolExecutor``'s workers, so such a call cannot keep the
    process alive after SIGTERM; callers wait on the future only as long as they can afford.
    """
    future: Future = Future()

    def run():
        try:
            future.set_result(fn(*args))
        except BaseException as e:  # handed to whoever waits on the future
            future.set_exception(e)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


class NvmlSource:
    """Reads every GPU through ``nvml``; one instance per exporter process."""

    def __init__(self, nvml, *, nvlink: bool = True, gpm: bool = True,
                 clock=time.perf_counter):
        self.nvml = nvml
        self.nvlink = nvlink
        self.gpm = gpm
        self.clock = clock
        self._lock = threading.Lock()
        self._gpus: dict[str, _Gpu] = {}
        self.system: SystemInfo | None = None
        # GPU indices seen in any session: one that vanishes keeps being reported as down.
        self.known: set[str] = set()
        self._last_init_error: str | None = None
        self._opening: Future | None = None  # the initialisation in flight
        self._down: dict[str, str] = {}  # GPU index -> reason, for GPUs last reported down

    # -- session -------------------------------------------------------------------------------
    def ensure_session(self, errors: ScrapeErrors, timeout: float) -> bool:
        """Initialise NVML if needed; False (and ``llmwatch_gpu_nvml_up 0``) when it cannot be.

        Initialisation runs on its own thread, one attempt at a time; a scrape waits for it at most
        ``timeout`` seconds and counts a ``timeout`` when NVML does not answer in time.
        """
        with self._lock:
            if self.system is not None:
                return True
            if self._opening is None or self._opening.done():
                self._opening = on_daemon_thread("nvml-init", self._open, errors)
            opening = self._opening
        try:
            return opening.result(timeout=timeout)
        except FutureTimeout:
            errors.add("timeout")
            if self._last_init_error != "timeout":
                log.warning("NVML initialisation did not answer in time; retrying once it returns",
                            extra={"timeout": timeout})
                self._last_init_error = "timeout"
            return False

    def _open(self, errors: ScrapeErrors) -> bool:
        n = self.nvml
        try:
            n.nvmlInit()
        except Exception as e:
            message = str(e) or type(e).__name__
            if message != self._last_init_error:  # log state changes, not every scrape
                log.error("NVML unavailable: no GPU metrics until it initialises",
                          extra={"error": message, "hint": "is the NVIDIA driver loaded and the container "
                                 "started with the NVIDIA runtime (gpus: all)?"})
                self._last_init_error = message
            errors.add("nvml_init")
            return False
        try:
            count = n.nvmlDeviceGetCount()
            gpus = {}
            for i in range(count):
                try:
                    gpus[str(i)] = _Gpu(str(i), n.nvmlDeviceGetHandleByIndex(i))
                except P.NVMLError as e:
                    if _code(e) not in GPU_DOWN_CODES:
                        raise
                    gpus[str(i)] = _Gpu(str(i), None)
                    log.warning("GPU not readable at initialisation", extra={"gpu": i, "error": str(e)})
            cuda = n.nvmlSystemGetCudaDriverVersion()
            system = SystemInfo(driver_version=n.nvmlSystemGetDriverVersion(),
                                cuda_version=f"{cuda // 1000}.{cuda % 1000 // 10}",
                                nvml_version=n.nvmlSystemGetNVMLVersion())
        except P.NVMLError as e:
            log.error("NVML initialised but enumeration failed", extra={"error": str(e)})
            errors.add("nvml_init")
            self._shutdown()
            return False
        with self._lock:
            self._gpus = gpus
            self.known |= set(gpus)
            self.system = system
        log.info("NVML initialised", extra={"gpus": count, "driver": system.driver_version,
                                            "was": self._last_init_error or "never initialised"})
        self._last_init_error = None
        return True

    def _shutdown(self) -> None:
        try:
            self.nvml.nvmlShutdown()
        except Exception:
            pass

    def reset(self, session: dict | None = None) -> bool:
        """Drop the session (driver gone); the next scrape initialises again. True if it was dropped
        now: not when already gone, nor when ``session`` (the GPUs a scrape read) is an older one.

        Freeing and nvmlShutdown run on a daemon thread, waited for at most SHUTDOWN_SECONDS.
        """
        with self._lock:
            if self.system is None or (session is not None and self._gpus is not session):
                return False
            gpus = list(self._gpus.values())
            self.system = None
            self._gpus = {}

        def close_session():
            for gpu in gpus:
                self._free_gpm(gpu)
            self._shutdown()

        try:
            on_daemon_thread("nvml-shutdown", close_session).result(timeout=SHUTDOWN_SECONDS)
        except FutureTimeout:
            log.warning("NVML shutdown did not answer in time; leaving it behind", extra={"timeout": SHUTDOWN_SECONDS})
        return True

    def close(self) -> None:
        self.reset()

    # -- reading ---------------------------------------------------------------------------------
    def read_all(self, budget: float, errors: ScrapeErrors) -> list[GpuReading]:
        """Read every GPU concurrently; a GPU not done within ``budget`` seconds is reported down.

        Each GPU has at most one read in flight, on its own thread, and concurrent scrapes share it:
        a hung GPU holds up only its own reader, never another GPU's, and scrapes do not pile up
        threads behind it.
        """
        session = self._gpus
        gpus = list(session.values())
        futures = {gpu.index: self._reading(gpu, errors) for gpu in gpus}
        wait(futures.values(), timeout=budget)
        readings = []
        nvml_down = False
        for gpu in gpus:
            future = futures[gpu.index]
            if not future.done():
                errors.add("timeout")
                readings.append(GpuReading(gpu.index, down="timeout", error=f"no answer within {budget:.1f}s"))
                continue
            try:
                readings.append(future.result())
            except NvmlDown:
                nvml_down = True
            except Exception:  # a bug or an unexpected answer: this GPU is down, the others still report
                errors.add("exception")
                log.exception("GPU read failed unexpectedly", extra={"gpu": gpu.index})
                readings.append(GpuReading(gpu.index, down="exception"))
        if nvml_down:
            if self.reset(session):  # once, however many scrapes shared the failed reads
                errors.add("nvml_lost")
                log.error("NVML driver went away; will re-initialise")
            return []
        missing = self.known - {r.index for r in readings}
        readings += [GpuReading(index, down="missing", error="not found at initialisation")
                     for index in sorted(missing)]
        self._log_changes(readings)
        return readings

    def _log_changes(self, readings: list[GpuReading]) -> None:
        """A warning when a GPU goes down (or down for another reason), a note when it is back:
        state changes, not one line per GPU per scrape."""
        with self._lock:
            for r in readings:
                was = self._down.get(r.index)
                if r.down and r.down != was:
                    self._down[r.index] = r.down
                    log.warning("GPU down", extra={"gpu": r.index, "reason": r.down, "error": r.error})
                elif not r.down and was:
                    del self._down[r.index]
                    log.info("GPU back", extra={"gpu": r.index, "was": was})

    def _reading(self, gpu: _Gpu, errors: ScrapeErrors) -> Future:
        """This GPU's read in flight, or a new one on its own daemon thread when none is."""
        with gpu.lock:
            if gpu.reading is None or gpu.reading.done():
                gpu.reading = on_daemon_thread(f"gpu-read-{gpu.index}", self.read, gpu, errors)
            return gpu.reading

    def read(self, gpu: _Gpu, errors: ScrapeErrors) -> GpuReading:
        start = self.clock()
        reading = GpuReading(gpu.index)
        try:
            if gpu.handle is None:
                gpu.handle = self.nvml.nvmlDeviceGetHandleByIndex(int(gpu.index))
            if gpu.static is None:
                gpu.static = self._read_static(gpu, errors)
            reading.info = dict(gpu.static["info"])
            reading.samples = list(gpu.static["samples"])
            self._read_dynamic(gpu, reading, errors)
        except P.NVMLError as e:
            code = _code(e)
            if code in NVML_DOWN_CODES:
                raise NvmlDown() from e
            reason = GPU_DOWN_CODES.get(code, "nvml_error")
            if reason == "gpu_lost" and gpu.static is not None:
                gpu.static = None  # read identity again once it is back (it may be another board)
            errors.add(reason)
            return GpuReading(gpu.index, down=reason, duration=self.clock() - start, error=str(e))
        reading.duration = self.clock() - start
        return reading

    def _call(self, gpu: _Gpu, key: str, fn: str, *args, errors: ScrapeErrors | None = None, handle=None):
        """One NVML call; None when unsupported (remembered) or failing transiently (counted)."""
        if key in gpu.skip:
            return None
        function = getattr(self.nvml, fn, None)
        if function is None:  # these Python bindings predate the call
            gpu.skip.add(key)
            log.info("NVML call missing from the installed nvidia-ml-py; skipping it", extra={"call": fn})
            return None
        try:
            return function(gpu.handle if handle is None else handle, *args)
        except P.NVMLError as e:
            code = _code(e)
            if code in SKIP_CODES:
                gpu.skip.add(key)
                log.debug("NVML call not supported; skipping it for this GPU",
                          extra={"gpu": gpu.index, "call": key, "error": str(e)})
                return None
            if code in GPU_DOWN_CODES or code in NVML_DOWN_CODES:
                raise
            if errors is not None:
                errors.add("nvml_call")
            log.warning("NVML call failed", extra={"gpu": gpu.index, "call": key, "error": str(e)})
            return None

    def _read_static(self, gpu: _Gpu, errors: ScrapeErrors) -> dict[str, Any]:
        n, call = self.nvml, self._call
        info = {"uuid": n.nvmlDeviceGetUUID(gpu.handle), "name": n.nvmlDeviceGetName(gpu.handle),
                "pci_bus_id": n.nvmlDeviceGetPciInfo(gpu.handle).busId,
                "vbios_version": call(gpu, "vbios", "nvmlDeviceGetVbiosVersion") or ""}
        cc = call(gpu, "compute_capability", "nvmlDeviceGetCudaComputeCapability")
        info["compute_capability"] = f"{cc[0]}.{cc[1]}" if cc else ""
        samples = []
        for clock, name in CLOCKS:
            samples.append((("clock_max", (name,)), call(gpu, f"max_clock:{name}", "nvmlDeviceGetMaxClockInfo", clock)))
        for threshold, name in THRESHOLDS:
            samples.append((("temperature_threshold", (name,)),
                            call(gpu, f"threshold:{name}", "nvmlDeviceGetTemperatureThreshold", threshold)))
        samples.append((("power_default_limit", ()), call(gpu, "power_default", "nvmlDeviceGetPowerManagementDefaultLimit")))
        limits = call(gpu, "power_constraints", "nvmlDeviceGetPowerManagementLimitConstraints")
        if limits:
            samples += [(("power_min_limit", ()), limits[0]), (("power_max_limit", ()), limits[1])]
        samples.append((("pcie_max_generation", ()), call(gpu, "pcie_max_gen", "nvmlDeviceGetMaxPcieLinkGeneration")))
        samples.append((("pcie_max_width", ()), call(gpu, "pcie_max_width", "nvmlDeviceGetMaxPcieLinkWidth")))
        links = []
        if self.nvlink:
            for link in range(P.NVML_NVLINK_MAX_LINKS):
                if self._call(gpu, f"nvlink:{link}", "nvmlDeviceGetNvLinkState", link) is None:
                    break  # links are numbered from 0; the first unsupported one ends the list
                links.append(link)
        gpm = False
        if self.gpm:
            support = call(gpu, "gpm_support", "nvmlGpmQueryDeviceSupport")
            gpm = bool(support and support.isSupportedDevice)
            if gpm and not gpu.gpm_samples:
                gpu.gpm_samples = [n.nvmlGpmSampleAlloc(), n.nvmlGpmSampleAlloc()]
        return {"info": info,
                "samples": [Sample(key, float(v), labels) for (key, labels), v in samples if v is not None],
                "clock_event_mask": call(gpu, "clock_events_supported", "nvmlDeviceGetSupportedClocksEventReasons") or 0,
                "nvlinks": links, "gpm": gpm}

    def _read_dynamic(self, gpu: _Gpu, r: GpuReading, errors: ScrapeErrors) -> None:
        static = gpu.static

        def call(key, fn, *args, handle=None):
            return self._call(gpu, key, fn, *args, errors=errors, handle=handle)

        def add(key, value, *labels):
            if value is not None:
                r.samples.append(Sample(key, float(value), labels))

        mig = call("mig_mode", "nvmlDeviceGetMigMode")
        mig_mode = mig[0] if mig else None
        if gpu.mig_mode is not None and mig_mode != gpu.mig_mode:
            gpu.skip.clear()  # what is supported differs with and without MIG
        gpu.mig_mode = mig_mode
        r.info["mig_mode"] = {None: "unsupported", 0: "disabled", 1: "enabled"}.get(mig_mode, str(mig_mode))

        util = call("utilization", "nvmlDeviceGetUtilizationRates")
        if util is not None:
            add("utilization_gpu", util.gpu)
            add("utilization_memory", util.memory)
        memory = call("memory_v2", "nvmlDeviceGetMemoryInfo", P.nvmlMemory_v2)
        if memory is not None:
            add("memory_reserved", memory.reserved)
        else:  # v1: driver-reserved memory is counted in "used"
            memory = call("memory_v1", "nvmlDeviceGetMemoryInfo")
        if memory is not None:
            add("memory_total", memory.total)
            add("memory_used", memory.used)
            add("memory_free", memory.free)
        temperature = call("temperature", "nvmlDeviceGetTemperatureV", P.NVML_TEMPERATURE_GPU)
        if temperature is None:  # drivers before nvmlDeviceGetTemperatureV have only the deprecated call
            temperature = call("temperature_v0", "nvmlDeviceGetTemperature", P.NVML_TEMPERATURE_GPU)
        add("temperature", temperature)
        add("power", call("power", "nvmlDeviceGetPowerUsage"))
        add("power_limit", call("power_limit", "nvmlDeviceGetEnforcedPowerLimit"))
        for clock, name in CLOCKS:
            add("clock", call(f"clock:{name}", "nvmlDeviceGetClockInfo", clock), name)
        pstate = call("pstate", "nvmlDeviceGetPerformanceState")
        if pstate is not None and pstate <= 15:  # 32 means unknown
            add("pstate", pstate)
        reasons = call("clock_events", "nvmlDeviceGetCurrentClocksEventReasons")
        if reasons is not None:
            for bit, name in CLOCK_EVENT_REASONS:
                if static["clock_event_mask"] & bit:
                    add("clock_event_active", 1 if reasons & bit else 0, name)
        for error_type, error_name in ECC:
            for counter, key in ECC_COUNTERS:
                add(key, call(f"{key}:{error_name}", "nvmlDeviceGetTotalEccErrors", error_type, counter), error_name)
        remap = call("remapped_rows", "nvmlDeviceGetRemappedRows")
        if remap is not None:
            add("remapped_rows", remap[0], "correctable")
            add("remapped_rows", remap[1], "uncorrectable")
            add("remap_pending", 1 if remap[2] else 0)
            add("remap_failure", 1 if remap[3] else 0)
        add("pcie_generation", call("pcie_gen", "nvmlDeviceGetCurrPcieLinkGeneration"))
        add("pcie_width", call("pcie_width", "nvmlDeviceGetCurrPcieLinkWidth"))
        add("pcie_replays", call("pcie_replays", "nvmlDeviceGetPcieReplayCounter"))

        fields = self._fields(gpu, [f for f in (*SCALAR_FIELDS, *CLOCK_EVENT_FIELDS)], errors)
        for fid, value in fields.items():
            if fid in SCALAR_FIELDS:
                add(SCALAR_FIELDS[fid], value)
            else:
                add("clock_event_time", value, CLOCK_EVENT_FIELDS[fid])

        if static["nvlinks"]:
            self._read_nvlink(gpu, r, errors)
        if static["gpm"]:
            self._read_gpm(gpu, r)

        processes = call("processes", "nvmlDeviceGetComputeRunningProcesses")
        if processes is not None:
            r.processes = [(p.pid, p.usedGpuMemory) for p in processes]
            add("processes", len(processes))
        if mig_mode == 1:
            r.mig = self._read_mig(gpu)

    def _fields(self, gpu: _Gpu, ids: list, errors: ScrapeErrors) -> dict:
        """Field values in one call; each field has its own return code (NotSupported ones are remembered)."""
        wanted = [f for f in ids if ("field", f) not in gpu.skip]
        if not wanted or "fields" in gpu.skip:
            return {}
        values = self._call(gpu, "fields", "nvmlDeviceGetFieldValues", wanted, errors=errors)
        out = {}
        for fid, fv in zip(wanted, values or ()):
            if fv.nvmlReturn == P.NVML_SUCCESS:
                out[fid] = getattr(fv.value, _FIELD_VALUE.get(fv.valueType, "ullVal"))
            elif fv.nvmlReturn in SKIP_CODES:
                gpu.skip.add(("field", fid))
            elif fv.nvmlReturn in GPU_DOWN_CODES:
                raise P.NVMLError(fv.nvmlReturn)
        return out

    def _read_nvlink(self, gpu: _Gpu, r: GpuReading, errors: ScrapeErrors) -> None:
        links = gpu.static["nvlinks"]
        active = 0
        totals = {name: 0 for _, name in NVLINK_ERRORS}
        seen = set()
        for link in links:
            if self._call(gpu, "nvlink_state", "nvmlDeviceGetNvLinkState", link, errors=errors) == 1:
                active += 1
            for counter, name in NVLINK_ERRORS:
                value = self._call(gpu, f"nvlink_error:{name}", "nvmlDeviceGetNvLinkErrorCounter", link, counter,
                                   errors=errors)
                if value is not None:
                    totals[name] += value
                    seen.add(name)
        r.samples.append(Sample("nvlink_links", float(len(links))))
        r.samples.append(Sample("nvlink_links_active", float(active)))
        r.samples += [Sample("nvlink_errors", float(v), (k,)) for k, v in totals.items() if k in seen]
        ids = [(fid, link) for fid in (P.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX, P.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX)
               for link in links]
        values = self._fields(gpu, ids, errors)
        for fid, key in ((P.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX, "nvlink_tx"),
                         (P.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX, "nvlink_rx")):
            per_link = [v for (f, _), v in values.items() if f == fid]
            if len(per_link) == len(links):  # a partial sum would be a counter going backwards
                r.samples.append(Sample(key, float(sum(per_link))))

    def _read_gpm(self, gpu: _Gpu, r: GpuReading) -> None:
        """GPM activity averaged over the time since the previous scrape (two samples, swapped)."""
        n = self.nvml
        previous, current = gpu.gpm_samples
        try:
            n.nvmlGpmSampleGet(gpu.handle, current)
            if gpu.gpm_primed:
                request = P.c_nvmlGpmMetricsGet_t()
                request.version = P.NVML_GPM_METRICS_GET_VERSION
                request.numMetrics = len(GPM_METRICS)
                request.sample1, request.sample2 = previous, current
                for i, (metric_id, _) in enumerate(GPM_METRICS):
                    request.metrics[i].metricId = metric_id
                result = n.nvmlGpmMetricsGet(request)
                for i, (_, key) in enumerate(GPM_METRICS):
                    if result.metrics[i].nvmlReturn == P.NVML_SUCCESS:
                        r.samples.append(Sample(key, float(result.metrics[i].value)))
        except P.NVMLError as e:
            if _code(e) in GPU_DOWN_CODES or _code(e) in NVML_DOWN_CODES:
                raise
            log.warning("GPM read failed", extra={"gpu": gpu.index, "error": str(e)})
            gpu.gpm_primed = False
            return
        gpu.gpm_samples = [current, previous]
        gpu.gpm_primed = True

    def _free_gpm(self, gpu: _Gpu) -> None:
        for sample in gpu.gpm_samples:
            try:
                self.nvml.nvmlGpmSampleFree(sample)
            except Exception:
                pass
        gpu.gpm_samples = []

    def _read_mig(self, gpu: _Gpu) -> list[MigInstance]:
        n = self.nvml
        out = []
        count = self._call(gpu, "mig_count", "nvmlDeviceGetMaxMigDeviceCount") or 0
        for i in range(count):
            try:
                handle = n.nvmlDeviceGetMigDeviceHandleByIndex(gpu.handle, i)
            except P.NVMLError as e:
                if _code(e) in (P.NVML_ERROR_NOT_FOUND, P.NVML_ERROR_INVALID_ARGUMENT):
                    continue  # empty slot
                raise
            name = n.nvmlDeviceGetName(handle)
            memory = n.nvmlDeviceGetMemoryInfo(handle)
            out.append(MigInstance(gpu_instance_id=n.nvmlDeviceGetGpuInstanceId(handle),
                                   compute_instance_id=n.nvmlDeviceGetComputeInstanceId(handle),
                                   uuid=n.nvmlDeviceGetUUID(handle),
                                   profile=name.rsplit("MIG ", 1)[-1] if "MIG " in name else name,
                                   memory_total=memory.total, memory_used=memory.used))
        return sorted(out, key=lambda m: (m.gpu_instance_id, m.compute_instance_id))
