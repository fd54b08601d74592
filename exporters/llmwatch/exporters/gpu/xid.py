"""XID errors from NVML's event API, counted by a dedicated thread.

XIDs are events, not state: a scrape-time read would miss them, and a "last XID" gauge hides a
repeat of the same code. So one thread waits on an NVML event set and counts every XID per GPU and
code, with the time it was last seen. It holds its own NVML reference (nvmlInit is reference
counted) and rebuilds its event set with back-off when the driver or a GPU goes away.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import pynvml as P

log = logging.getLogger(__name__)

WAIT_MS = 1000
BACKOFF_MIN, BACKOFF_MAX = 1.0, 30.0


@dataclass(frozen=True)
class XidSnapshot:
    running: bool  # an event set is registered and being waited on
    counts: dict[tuple[str, int], int]  # (gpu, xid) -> count
    last_seen: dict[tuple[str, int], float]  # (gpu, xid) -> unix time
    per_gpu: dict[str, int]  # gpu -> all XIDs, for every registered GPU (0 included)


class XidWatcher:
    def __init__(self, nvml, wall_clock=time.time):
        self.nvml = nvml
        self.wall_clock = wall_clock
        self.wait_ms = WAIT_MS  # also bounds how long stop() takes
        self._cond = threading.Condition()
        self._counts: dict[tuple[str, int], int] = {}
        self._last: dict[tuple[str, int], float] = {}
        self._per_gpu: dict[str, int] = {}
        self._running = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gpu-xid", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=self.wait_ms / 1000 + 1)

    def snapshot(self) -> XidSnapshot:
        with self._cond:
            return XidSnapshot(self._running, dict(self._counts), dict(self._last), dict(self._per_gpu))

    def wait_for(self, predicate, timeout: float) -> bool:
        """Block until ``predicate(snapshot)`` holds (for tests and callers that await an event)."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(XidSnapshot(self._running, dict(self._counts),
                                                                     dict(self._last), dict(self._per_gpu))),
                                       timeout)

    def _set_running(self, running: bool) -> None:
        with self._cond:
            self._running = running
            self._cond.notify_all()

    def _open(self):
        n = self.nvml
        n.nvmlInit()
        try:
            event_set = n.nvmlEventSetCreate()
            registered = []
            for i in range(n.nvmlDeviceGetCount()):
                try:
                    handle = n.nvmlDeviceGetHandleByIndex(i)
                    n.nvmlDeviceRegisterEvents(handle, P.nvmlEventTypeXidCriticalError, event_set)
                    registered.append(str(i))
                except P.NVMLError as e:
                    log.warning("XID events not available for GPU", extra={"gpu": i, "error": str(e)})
        except Exception:
            self._release(None)
            raise
        with self._cond:
            for gpu in registered:
                self._per_gpu.setdefault(gpu, 0)
        return event_set

    def _release(self, event_set) -> None:
        for action in ((lambda: self.nvml.nvmlEventSetFree(event_set)) if event_set is not None else None,
                       self.nvml.nvmlShutdown):
            if action:
                try:
                    action()
                except Exception:
                    pass

    def _run(self) -> None:
        backoff = BACKOFF_MIN
        event_set = None
        while not self._stop.is_set():
            if event_set is None:
                try:
                    event_set = self._open()
                except Exception as e:
                    log.warning("XID watcher cannot start; retrying", extra={"error": str(e), "retry_in": backoff})
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
                    continue
                backoff = BACKOFF_MIN
                self._set_running(True)
                log.info("XID watcher running")
            try:
                event = self.nvml.nvmlEventSetWait_v2(event_set, self.wait_ms)
            except P.NVMLError as e:
                if getattr(e, "value", None) == P.NVML_ERROR_TIMEOUT:
                    continue
                log.warning("XID wait failed; re-registering", extra={"error": str(e)})
                self._set_running(False)
                self._release(event_set)
                event_set = None
                self._stop.wait(backoff)
                continue
            if event.eventType & P.nvmlEventTypeXidCriticalError:
                self._record(event)
        self._set_running(False)
        if event_set is not None:
            self._release(event_set)

    def _record(self, event) -> None:
        try:
            gpu = str(self.nvml.nvmlDeviceGetIndex(event.device))
        except P.NVMLError:
            gpu = "unknown"  # e.g. XID 79: the GPU fell off the bus and cannot tell its index
        xid = int(event.eventData)
        now = self.wall_clock()
        log.error("XID error", extra={"gpu": gpu, "xid": xid})
        with self._cond:
            self._counts[(gpu, xid)] = self._counts.get((gpu, xid), 0) + 1
            self._last[(gpu, xid)] = now
            self._per_gpu[gpu] = self._per_gpu.get(gpu, 0) + 1
            self._cond.notify_all()
