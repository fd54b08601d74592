"""A demo engine that batches as vLLM does: decode steps shared by every running request.

vLLM serves many requests at once: each engine step decodes one token for every running
request (and prefills the prompts of the ones just admitted, chunked into the same step), so
throughput grows with concurrency until its sequence slots are full. :class:`ContinuousBatch`
is that schedule, free of clocks and threads:

- a request waits FIFO until one of ``slots`` is free, then joins at the next step;
- one step takes ``(1 + batch_cost * (running - 1)) / decode_tokens_per_s`` plus
  ``prompt / prefill_tokens_per_s`` for each prompt admitted in it. Decode is memory-bound: the
  weights are read once per step for the whole batch and each more sequence adds its KV-cache
  reads, a few per cent of a step (``batch_cost``), so 8 requests get ~6.5x the tokens of one;
- at the end of a step every running request has one token more: a new one its first.

:class:`LiveEngine` runs that schedule on the wall clock in one thread and accounts each
finished request into a simulated vLLM engine (:class:`llmwatch.simulation.vllm.Engine`), so
the demo's ``/metrics`` are the traffic it served. :func:`replay` runs it in simulated time,
for tests and for choosing the demo's load; :meth:`LiveEngine.serve_simulated` does the same
with a live engine's accounting, so a test can read its ``/metrics`` at simulated scrape times
(hours of demo in seconds: tests/demo/test_demo_alerts.py).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from llmwatch.queueing.config import MonoCluster
from llmwatch.simulation.vllm import Engine

BATCH_COST = 0.03  # share of a one-request decode step each further running request adds


@dataclass(eq=False)
class Request:
    prompt: int
    output: int
    arrived: float
    started: float | None = None  # when it joined the batch
    token_times: list[float] | None = None  # when each token was ready
    aborted: bool = False

    @property
    def sent(self) -> int:
        return len(self.token_times or ())

    @property
    def done(self) -> bool:
        return self.aborted or self.sent >= self.output


class ContinuousBatch:
    """The step schedule: :meth:`begin` admits waiting requests and says how long the step takes,
    :meth:`end` hands each running request its token and returns the ones that finished."""

    def __init__(self, cluster: MonoCluster, slots: int, batch_cost: float = BATCH_COST):
        self.cluster, self.slots, self.batch_cost = cluster, slots, batch_cost
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []

    def step_seconds(self, running: int, prefill_tokens: int = 0) -> float:
        decode = (1 + self.batch_cost * (running - 1)) / self.cluster.decode_tokens_per_s
        return decode + prefill_tokens / self.cluster.prefill_tokens_per_s

    def begin(self, now: float) -> float:
        """Admit FIFO into free slots at ``now``; the step's duration (0: nothing to run)."""
        self.running = [r for r in self.running if not r.done]
        while self.waiting and self.waiting[0].aborted:
            self.waiting.popleft()
        admitted = 0
        while self.waiting and len(self.running) < self.slots:
            request = self.waiting.popleft()
            if request.aborted:
                continue
            request.started, request.token_times = now, []
            self.running.append(request)
            admitted += request.prompt
        return self.step_seconds(len(self.running), admitted) if self.running else 0.0

    def end(self, now: float) -> list[Request]:
        finished, running = [], []
        for request in self.running:  # one pass: hours of simulated demo step through here
            times = request.token_times
            if request.aborted or len(times) >= request.output:
                continue
            times.append(now)
            (finished if len(times) >= request.output else running).append(request)
        self.running = running
        return finished


def replay(cluster: MonoCluster, slots: int, arrivals: Sequence[tuple[float, int, int]],
           batch_cost: float = BATCH_COST) -> list[Request]:
    """Serve ``(time, prompt, output)`` arrivals in simulated time; the requests, served."""
    batch = ContinuousBatch(cluster, slots, batch_cost)
    pending = deque(sorted(arrivals))
    requests, now = [], 0.0
    while pending or batch.waiting or batch.running:
        if not batch.waiting and not batch.running and pending:
            now = max(now, pending[0][0])
        while pending and pending[0][0] <= now:
            at, prompt, output = pending.popleft()
            requests.append(Request(prompt, output, at))
            batch.waiting.append(requests[-1])
        now += batch.begin(now)
        batch.end(now)
    return requests


class LiveEngine:
    """``tokens(prompt, output)`` yields each output token once the engine's step produced it."""

    def __init__(self, engine: Engine, cluster: MonoCluster, *, slots: int | None = None,
                 batch_cost: float = BATCH_COST, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 load_window_seconds: float = 30.0, gauges: bool = True):
        self.engine, self.cluster = engine, cluster
        self.gauges = gauges  # False: leave the engine's running/waiting/KV-cache figures as they are
        self.slots = slots or cluster.gpus
        self.batch = ContinuousBatch(cluster, self.slots, batch_cost)
        self.clock, self.sleep = clock, sleep
        self.lock = threading.Lock()  # guards the batch and the engine's numbers: /metrics renders under it too
        self._changed = threading.Condition(self.lock)  # a request arrived, a step ended
        self._stepper: threading.Thread | None = None
        self.load_window_seconds = load_window_seconds
        self._busy = False
        self._busy_since = clock()  # integral of stepping time, for load()
        self._busy_area = 0.0
        self._window: deque[tuple[float, float]] = deque([(self._busy_since, 0.0)])  # (time, area) samples

    def _account(self, now: float) -> None:
        self._busy_area += self._busy * (now - self._busy_since)
        self._busy_since = now

    def _gauges(self) -> None:
        if not self.gauges:
            return
        running = sum(not r.done for r in self.batch.running)
        self.engine.running, self.engine.waiting = running, len(self.batch.waiting)
        self.engine.kv_cache_usage = round(0.9 * running / self.slots, 4)

    def load(self) -> float:
        """Share of the last ``load_window_seconds`` the engine was stepping (what a GPU's
        utilisation follows: a vLLM GPU is busy whenever any request runs)."""
        with self.lock:
            now = self.clock()
            self._account(now)
            self._window.append((now, self._busy_area))
            while len(self._window) > 1 and self._window[1][0] <= now - self.load_window_seconds:
                self._window.popleft()
            start, area = self._window[0]
            if now - start <= 0:
                return float(self._busy)
            return min(1.0, (self._busy_area - area) / (now - start))

    # -- the stepping thread ------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self.lock:
                now = self.clock()
                duration = self.batch.begin(now)
                self._account(now)
                self._busy = duration > 0
                self._gauges()
                if not duration:
                    self._stepper = None  # the next request starts a new one
                    return
            self.sleep(duration)
            with self.lock:
                finished = self.batch.end(now + duration)
                for request in finished:
                    self._finish(request)
                self._changed.notify_all()

    def _finish(self, request: Request) -> None:
        times, sent = request.token_times or [], request.sent
        itl = (times[-1] - times[0]) / (sent - 1) if sent > 1 else 0.0
        first = times[0] if times else self.clock()
        started = request.started if request.started is not None else first
        self.engine.finish(prompt=request.prompt, generated=sent, ttft=first - request.arrived, itl=itl,
                           queue=started - request.arrived, reason="abort" if request.aborted else "length")

    # -- simulated time -----------------------------------------------------------------------
    def serve_simulated(self, arrivals: Sequence[tuple[float, int, int]], *, until: float, every: float,
                        observe: Callable[[float], None]) -> None:
        """Serve ``(time, prompt, output)`` arrivals on simulated time from 0 (the wall clock and the
        stepping thread unused), accounting every request into the engine as :meth:`tokens` does,
        and call ``observe(t)`` at ``every``, ``2 * every``... up to ``until`` with the engine's
        numbers as a scrape at ``t`` would see them."""
        pending = deque(sorted(arrivals))
        batch, now, due = self.batch, 0.0, every
        while due <= until:
            while pending and pending[0][0] <= now:
                at, prompt, output = pending.popleft()
                batch.waiting.append(Request(prompt, output, at))
            duration = batch.begin(now)
            if not duration:  # idle: on to the next arrival or scrape
                now = min(pending[0][0] if pending else until, due)
            if due <= now + duration:  # a scrape during the step sees it running
                self._gauges()
                while due <= now + duration:
                    observe(due)
                    due += every
            if duration:
                now += duration
                for request in batch.end(now):
                    self._finish(request)

    # -- one request --------------------------------------------------------------------------
    def tokens(self, prompt_tokens: int, output_tokens: int) -> Iterator[int]:
        """Queue, then yield token indexes 0..output-1 as the steps produce them.

        A consumer that stops early (the client went away) ends the request as an abort.
        """
        with self.lock:
            request = Request(prompt_tokens, output_tokens, self.clock())
            self.batch.waiting.append(request)
            self._gauges()
            if self._stepper is None:
                self._stepper = threading.Thread(target=self._run, name="demo-engine", daemon=True)
                self._stepper.start()
        yielded = 0
        try:
            while yielded < output_tokens:
                with self.lock:
                    while request.sent <= yielded:
                        self._changed.wait()
                    ready = request.sent
                for k in range(yielded, ready):
                    yield k
                    yielded = k + 1
        finally:
            if yielded < output_tokens:
                with self.lock:
                    if not request.done:
                        request.aborted = True
                        self._finish(request)
                        self._gauges()
