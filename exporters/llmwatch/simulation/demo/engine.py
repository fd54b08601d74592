"""The simulator's queueing model served in real time: a demo engine whose latency is the model's.

:mod:`llmwatch.queueing.engine` computes TTFT for a monolithic cluster in simulated time: a
request waits FIFO for one of ``gpus`` servers, holds it for ``prompt / prefill_tokens_per_s``
and then ``output / decode_tokens_per_s``, and sees its first token one decode step after its
prefill. :class:`LiveEngine` applies the same rules to real requests on the wall clock, with
``slots`` in the role of the GPUs (a vLLM replica serves many requests at once, each at a
per-request speed), and accounts each finished request into a simulated vLLM engine
(:class:`llmwatch.simulation.vllm.Engine`), so the demo's ``/metrics`` are the traffic it served.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

from llmwatch.queueing.config import MonoCluster
from llmwatch.simulation.vllm import Engine


class LiveEngine:
    """``tokens(prompt, output)`` yields each output token at the time the model says it is ready."""

    def __init__(self, engine: Engine, cluster: MonoCluster, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, load_window_seconds: float = 30.0,
                 gauges: bool = True):
        self.engine, self.cluster = engine, cluster
        self.gauges = gauges  # False: leave the engine's running/waiting/KV-cache figures as they are
        self.slots = cluster.gpus
        self.clock, self.sleep = clock, sleep
        self.lock = threading.Lock()  # guards the engine's numbers: /metrics renders under it too
        self._waiters: deque[threading.Event] = deque()
        self._busy = 0
        self.load_window_seconds = load_window_seconds
        self._busy_since = clock()  # integral of busy slots over time, for load()
        self._busy_area = 0.0
        self._window: deque[tuple[float, float]] = deque([(self._busy_since, 0.0)])  # (time, area) samples

    # -- slots, FIFO ------------------------------------------------------------------------
    def _account(self, now: float) -> None:
        self._busy_area += self._busy * (now - self._busy_since)
        self._busy_since = now

    def _gauges(self) -> None:
        if not self.gauges:
            return
        self.engine.running, self.engine.waiting = self._busy, len(self._waiters)
        self.engine.kv_cache_usage = round(0.9 * self._busy / self.slots, 4)

    def _acquire(self) -> None:
        with self.lock:
            if self._busy < self.slots and not self._waiters:
                self._account(self.clock())
                self._busy += 1
                self._gauges()
                return
            ticket = threading.Event()
            self._waiters.append(ticket)
            self._gauges()
        ticket.wait()  # _release hands its slot over: _busy stays counted

    def _release(self) -> None:
        with self.lock:
            if self._waiters:
                self._waiters.popleft().set()
            else:
                self._account(self.clock())
                self._busy -= 1
            self._gauges()

    def load(self) -> float:
        """Busy share of the slots over the last ``load_window_seconds`` (what a GPU's utilisation
        follows in the demo)."""
        with self.lock:
            now = self.clock()
            self._account(now)
            self._window.append((now, self._busy_area))
            while len(self._window) > 1 and self._window[1][0] <= now - self.load_window_seconds:
                self._window.popleft()
            start, area = self._window[0]
            if now - start <= 0:
                return self._busy / self.slots
            return min(1.0, (self._busy_area - area) / (now - start) / self.slots)

    # -- one request --------------------------------------------------------------------------
    def _sleep_until(self, deadline: float) -> None:
        wait = deadline - self.clock()
        if wait > 0:
            self.sleep(wait)

    def tokens(self, prompt_tokens: int, output_tokens: int) -> Iterator[int]:
        """Queue, prefill, then yield token indexes 0..output-1 on schedule.

        A consumer that stops early (the client went away) ends the request as an abort.
        """
        arrived = self.clock()
        self._acquire()
        started = self.clock()
        step = 1.0 / self.cluster.decode_tokens_per_s
        first = started + prompt_tokens / self.cluster.prefill_tokens_per_s + step
        sent = 0
        try:
            for k in range(output_tokens):
                self._sleep_until(first + k * step)
                yield k
                sent = k + 1
        finally:
            self._release()
            with self.lock:
                itl = step if sent > 1 else 0.0
                self.engine.finish(prompt=prompt_tokens, generated=sent, ttft=first - arrived, itl=itl,
                                   queue=started - arrived, reason="length" if sent == output_tokens else "abort")
