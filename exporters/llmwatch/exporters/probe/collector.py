"""The probe loop and what a scrape shows of it.

Probes run on their own schedule, not at scrape time: a streamed completion takes seconds, and
the figures are distributions over many probes (histograms), as a user's requests would be. A
thread runs one asyncio loop; every ``interval`` seconds each target whose previous probe has
finished gets a new one (never two in flight on one target), at most ``concurrency`` at once.
A scrape reads the accumulated state under a lock: it never waits on an upstream.

A round only lists the targets; everything that waits on a target (reading its model list,
streaming) happens in that target's own turn, so a slow or dripping target delays nobody else.

A probe says what it is wherever it lands: ``User-Agent: llmwatch-probe/<version>`` and
``X-Llmwatch-Probe: 1`` on every request, ``user: "llmwatch-probe"`` in every OpenAI-style body
(LiteLLM's end user, Langfuse's trace user) and, through LiteLLM, request tags and Langfuse trace
and generation names in ``metadata`` (only LiteLLM reads it: vLLM would log a warning per request
for a field it does not know).

A model that answers it serves no chat or completions (``unsupported``: an embedding server) is
asked again only after ``models_seconds``; that answer is neither a success nor a failure, so it
sets no ``llmwatch_probe_success`` and leaves ``up`` alone.

Targets that leave (a container removed) take their series with them; ``llmwatch_probe_up``
says per target whether its latest probes all succeeded, and only while that success is recent
(:meth:`ProbeExporter.fresh_seconds`): a target whose turns have stopped ending reads 0, not
the ``1`` of long ago.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import httpx
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from llmwatch import __version__
from llmwatch.core.cache import ExpiringMap
from llmwatch.core.scrape import ExporterCollector, ScrapeErrors, natural_key, up_family
from llmwatch.upstreams.streaming import OUTCOMES, Outcome, request_body, route_missing, stream
from llmwatch.exporters.probe.targets import Probe, TargetSource

log = logging.getLogger(__name__)

# Each bucket is a series per target and model (30 pairs in the reference fleet), so only what is
# read: the TTFT p95 that ProbeTtftAboveSlo compares with each model's TTFT SLO, whose bounds are
# the SLO values the mixin accepts from 0.1 s up (VLLM_TTFT_BOUNDS) plus a tail. TPOT and the
# whole request are on no board or alert: a few bounds around the default SLOs (TPOT 0.1 s).
TTFT_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0)
TPOT_BUCKETS = (0.05, 0.1, 0.2, 0.5)
E2E_BUCKETS = (1.0, 5.0, 20.0, 60.0)
ERRORS = ("docker", "models", "probe_loop")
PROBE_USER = "llmwatch-probe"  # the OpenAI ``user``, LiteLLM request tag and Langfuse trace name
HEADERS = {"User-Agent": f"{PROBE_USER}/{__version__}", "X-Llmwatch-Probe": "1"}


def identification(api: str, via: str) -> dict:
    """What a probe's body adds to say it is one: ``user`` for OpenAI-style APIs (vLLM and LiteLLM
    accept it; LiteLLM records it as the end user, Langfuse as the trace's user) and, through
    LiteLLM, ``metadata`` with its request tag (spend logs, Langfuse tags) and Langfuse's trace and
    generation names. TGI and Ollama bodies stay as they are (they know no such fields)."""
    if api not in ("openai", "completions"):
        return {}
    marks: dict = {"user": PROBE_USER}
    if via == "litellm":
        marks["metadata"] = {"tags": [PROBE_USER], "trace_name": PROBE_USER, "generation_name": PROBE_USER,
                             "trace_user_id": PROBE_USER}
    return marks


class Buckets:
    """A cumulative histogram's counts (what HistogramMetricFamily wants)."""

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, int]]:
        out, total = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts):
            total += count
            out.append((floatToGoString(bound), total))
        return out


@dataclass
class Series:
    """Everything recorded for one (target, model)."""

    ttft: Buckets = field(default_factory=lambda: Buckets(TTFT_BUCKETS))
    tpot: Buckets = field(default_factory=lambda: Buckets(TPOT_BUCKETS))
    e2e: Buckets = field(default_factory=lambda: Buckets(E2E_BUCKETS))
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    last: Outcome | None = None
    last_time: float = 0.0

    @property
    def failed(self) -> bool:
        """The latest probe failed (an ``unsupported`` answer is no failure)."""
        return self.last is None or not (self.last.ok or self.last.outcome == "unsupported")

    def record(self, outcome: Outcome, when: float) -> None:
        self.outcomes[outcome.outcome] = self.outcomes.get(outcome.outcome, 0) + 1
        self.last, self.last_time = outcome, when
        if outcome.ok:
            self.ttft.observe(outcome.ttft)
            self.e2e.observe(outcome.e2e)
            if outcome.tpot is not None:
                self.tpot.observe(outcome.tpot)


class ProbeState:
    """What the loop writes and scrapes read."""

    def __init__(self):
        self.lock = threading.Lock()
        self.targets: dict[str, Probe] = {}  # as the latest round listed them
        self.models: dict[str, tuple[str, ...]] = {}  # per target, as its latest turn found them
        self.up: dict[str, bool] = {}
        self.last_success: dict[str, float] = {}  # when all of a target's latest probes last succeeded
        self.series: dict[tuple[str, str], Series] = {}
        self.skipped: dict[tuple[str, str], str] = {}  # (target, model) -> why it is not probed
        self.opted_out: list[str] = []  # vLLM containers labelled out of the probe

    def set_targets(self, probes: list[Probe], opted_out: list[str] = ()) -> None:
        with self.lock:
            self.targets = {p.target: p for p in probes}
            self.opted_out = list(opted_out)
            self.up = {name: self.up.get(name, False) for name in self.targets}
            self.last_success = {n: t for n, t in self.last_success.items() if n in self.targets}
            self.models = {n: m for n, m in self.models.items() if n in self.targets}
            self.skipped = {k: r for k, r in self.skipped.items() if k[0] in self.targets}
            for p in probes:
                if not p.list_models:
                    self._set_models(p)
            self._keep_series()

    def _set_models(self, probe: Probe) -> None:
        self.models[probe.target] = probe.models
        self.skipped = {k: r for k, r in self.skipped.items() if k[0] != probe.target}
        self.skipped.update({(probe.target, model): reason for model, reason in probe.skipped})

    def resolved(self, probe: Probe, when: float) -> None:
        """A turn read ``probe``'s models (or failed to: ``problem``). A target all of whose
        models are skipped (a proxy of embedding groups only) has nothing failing: up."""
        with self.lock:
            if probe.target not in self.targets:
                return
            self._set_models(probe)
            if probe.problem:
                self.up[probe.target] = False
            elif not probe.models:
                self.up[probe.target], self.last_success[probe.target] = True, when
            self._keep_series()

    def _keep_series(self) -> None:
        self.series = {key: s for key, s in self.series.items() if key[1] in self.models.get(key[0], ())}

    def record(self, target: str, model: str, outcome: Outcome, when: float) -> None:
        with self.lock:
            if target not in self.targets:  # left while its probe ran
                return
            self.series.setdefault((target, model), Series()).record(outcome, when)
            lasts = [self.series.get((target, m)) for m in self.models.get(target, ())]
            self.up[target] = all(s is not None and not s.failed for s in lasts)
            if self.up[target]:
                self.last_success[target] = when


class ProbeExporter:
    def __init__(self, source: TargetSource, *, interval: float, timeout: float, stall: float, prompt: str,
                 max_tokens: int, concurrency: int, now: Callable[[], float] = time.time, start: bool = True,
                 stream_clock: Callable[[], Callable[[], float]] = lambda: time.perf_counter):
        self.source = source
        self.interval, self.timeout, self.stall = interval, timeout, stall
        self.prompt, self.max_tokens, self.concurrency = prompt, max_tokens, concurrency
        self.now = now
        self.stream_clock = stream_clock  # a clock per probe (tests hand out stepping clocks)
        self.state = ProbeState()
        # (target, url, model) answered "unsupported": not asked again for models_seconds
        self.unsupported: ExpiringMap[tuple[str, str, str], bool] = ExpiringMap(source.models_seconds, now)
        self.collector = ExporterCollector("probe", self.scrape, reasons=ERRORS)
        self.rounds = 0  # finished rounds of target listing (tests wait on it)
        self.probes_done = 0
        self.turns = 0  # finished turns of all targets (tests wait on it)
        self._changed = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._main_task: asyncio.Task | None = None
        self._thread = threading.Thread(target=self._run, name="probe-loop", daemon=True)
        if start:
            self._thread.start()

    # -- the loop --------------------------------------------------------------------------------
    def _run(self) -> None:
        self._main_task = self._loop.create_task(self._main())
        try:
            self._loop.run_until_complete(self._main_task)
        except asyncio.CancelledError:  # close()
            pass
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())

    async def _main(self) -> None:
        """Rounds every ``interval`` until close() cancels this task, which cancels every turn."""
        limits = httpx.Limits(max_connections=max(self.concurrency * 2, 8), max_keepalive_connections=self.concurrency)
        running: dict[str, asyncio.Task] = {}
        gate = asyncio.Semaphore(self.concurrency)
        async with httpx.AsyncClient(limits=limits, headers=HEADERS, follow_redirects=False) as client:
            try:
                while True:
                    started = self._loop.time()
                    try:
                        await self._round(client, running, gate)
                    except Exception:
                        log.exception("probe round failed")
                        self.collector.errors.add("probe_loop")
                    with self._changed:
                        self.rounds += 1
                        self._changed.notify_all()
                    await asyncio.sleep(max(0.0, started + self.interval - self._loop.time()))
            finally:
                for task in running.values():
                    task.cancel()
                await asyncio.gather(*running.values(), return_exceptions=True)

    async def _round(self, client: httpx.AsyncClient, running: dict[str, asyncio.Task], gate) -> None:
        probes, failed, opted_out = await self.source.probes()
        for source in failed:
            self.collector.errors.add(source)
        self.state.set_targets(probes, opted_out)
        self.unsupported.keep((p.target, p.url, m) for p in probes for m in self.state.models.get(p.target, p.models))
        for probe in probes:
            task = running.get(probe.target)
            if task is not None and not task.done():
                continue  # one turn in flight per target: a slow target is probed less often
            running[probe.target] = asyncio.create_task(self._turn(client, probe, gate))
            running[probe.target].add_done_callback(self._turn_ended)
        for name in [n for n, t in running.items() if t.done()]:
            del running[name]

    def _turn_ended(self, _task: asyncio.Task) -> None:
        with self._changed:
            self.turns += 1
            self._changed.notify_all()

    async def _turn(self, client: httpx.AsyncClient, probe: Probe, gate: asyncio.Semaphore) -> None:
        """One target's turn: its model list when it needs one, then a probe of each model."""
        if probe.list_models:
            async with gate:
                probe = await self.source.resolve(client, probe)
            self.state.resolved(probe, self.now())
            if probe.problem:
                self.collector.errors.add("models")
                return
        for model in probe.models:
            if self.unsupported.fresh((probe.target, probe.url, model)):
                continue
            api = "completions" if model in probe.completions else probe.api
            _, body = request_body(api, model, self.prompt, self.max_tokens)
            body |= identification(api, probe.via)
            async with gate:
                outcome = await stream(client, probe.url, api, body, headers=dict(probe.headers),
                                       timeout=self.timeout, stall=self.stall, now=self.stream_clock())
            if probe.source in ("vllm", "docker") and route_missing(outcome):
                # a vLLM server whose /v1/models just answered, without the route: a pooling model
                outcome = replace(outcome, outcome="unsupported")
            if outcome.outcome == "unsupported":
                self.unsupported.set((probe.target, probe.url, model), True)
                log.info("model serves no completions; not probed again for a while",
                         extra={"target": probe.target, "model": model, "detail": outcome.detail})
            elif not outcome.ok:
                log.warning("probe failed", extra={"target": probe.target, "model": model,
                                                   "outcome": outcome.outcome, "detail": outcome.detail})
            self.state.record(probe.target, model, outcome, self.now())
            with self._changed:
                self.probes_done += 1
                self._changed.notify_all()

    def fresh_seconds(self) -> float:
        """How long a success keeps ``up`` at 1: a turn starts at most an interval after the last
        ended, and a listing plus a probe take at most about two timeouts."""
        return 2 * self.interval + 2 * self.timeout

    def wait_for(self, predicate: Callable[["ProbeExporter"], bool], timeout: float = 10.0) -> bool:
        """Block until ``predicate(self)`` holds (after a round or a probe), for tests and demo."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout)

    # -- a scrape --------------------------------------------------------------------------------
    def scrape(self, errors: ScrapeErrors) -> Iterable[Metric]:
        now, fresh = self.now(), self.fresh_seconds()
        with self.state.lock:
            targets = dict(self.state.targets)
            last_success = dict(self.state.last_success)
            up = {name: ok and now - last_success.get(name, -math.inf) <= fresh
                  for name, ok in self.state.up.items()}
            series = {key: (s, s.last, dict(s.outcomes), s.ttft.cumulative(), s.ttft.sum, s.tpot.cumulative(),
                            s.tpot.sum, s.e2e.cumulative(), s.e2e.sum, s.last_time)
                      for key, s in self.state.series.items()}
            skipped = dict(self.state.skipped) | {(name, ""): "label" for name in self.state.opted_out}
            skipped |= {key: "unsupported" for key, s in self.state.series.items()
                        if s.last is not None and s.last.outcome == "unsupported"}
        yield up_family("probe", "target", up, "1 when the latest probe of every model on the target succeeded, "
                        "within the last two intervals and two timeouts.")
        success = GaugeMetricFamily("llmwatch_probe_last_success_timestamp_seconds", "When the latest probes "
                                    "of every model on the target last all succeeded (unix time).", labels=["target"])
        for name in sorted(last_success, key=natural_key):
            success.add_metric([name], last_success[name])
        yield success
        info = GaugeMetricFamily("llmwatch_probe_target_info", "A probed target: how it is reached and where it "
                                 "came from (settings, vllm, docker, litellm).",
                                 labels=["target", "via", "api", "source", "url"])
        for name in sorted(targets, key=natural_key):
            p = targets[name]
            info.add_metric([name, p.via, p.api, p.source, p.url], 1)
        yield info
        yield GaugeMetricFamily("llmwatch_probe_interval_seconds", "How often each target is probed.",
                                value=self.interval)
        left_out = GaugeMetricFamily("llmwatch_probe_skipped_info", "A model (or, with model \"\", a vLLM "
                                     "container) the probe leaves alone, and why: mode_<mode> (LiteLLM's "
                                     "model_info.mode, e.g. mode_embedding), excluded (probe.litellm_exclude), "
                                     "unsupported (it answered that it serves no chat or completions), label "
                                     "(llmwatch.probe=false).", labels=["target", "model", "reason"])
        for (name, model), reason in sorted(skipped.items(), key=lambda kv: (natural_key(kv[0][0]), kv[0][1])):
            left_out.add_metric([name, model, reason], 1)
        yield left_out
        labels = ["target", "model"]
        fams = {
            "requests": CounterMetricFamily("llmwatch_probe_requests", "Probes by outcome (ok, connect, timeout, "
                                            "stalled, http_status, malformed, stream_error, empty, unsupported).",
                                            labels=labels + ["outcome"]),
            "success": GaugeMetricFamily("llmwatch_probe_success", "1 when the latest probe succeeded; absent while "
                                         "the model answers unsupported.", labels=labels),
            "ttft": HistogramMetricFamily("llmwatch_probe_ttft_seconds", "Time to first token seen by the probe "
                                          "client: proxy, network, queue and prefill.", labels=labels),
            "tpot": HistogramMetricFamily("llmwatch_probe_tpot_seconds", "Time per output token after the first, "
                                          "seen by the probe client.", labels=labels),
            "e2e": HistogramMetricFamily("llmwatch_probe_e2e_seconds", "Whole probe request, sent to last event.",
                                         labels=labels),
            "last_ttft": GaugeMetricFamily("llmwatch_probe_last_ttft_seconds", "TTFT of the latest successful "
                                           "probe.", labels=labels),
            "last_tokens": GaugeMetricFamily("llmwatch_probe_last_output_tokens", "Tokens the latest successful "
                                             "probe received.", labels=labels),
            "last_run": GaugeMetricFamily("llmwatch_probe_last_run_timestamp_seconds", "When the latest probe "
                                          "ended (unix time).", labels=labels),
        }
        last_ok: dict[tuple[str, str], Outcome] = {}
        for key in sorted(series, key=lambda k: (natural_key(k[0]), k[1])):
            s, last, outcomes, ttft, ttft_sum, tpot, tpot_sum, e2e, e2e_sum, last_time = series[key]
            values = list(key)
            for outcome in OUTCOMES:
                fams["requests"].add_metric(values + [outcome], outcomes.get(outcome, 0))
            if last is None or last.outcome != "unsupported":  # neither a success nor a failure
                fams["success"].add_metric(values, 1.0 if last is not None and last.ok else 0.0)
            fams["ttft"].add_metric(values, ttft, ttft_sum)
            fams["tpot"].add_metric(values, tpot, tpot_sum)
            fams["e2e"].add_metric(values, e2e, e2e_sum)
            fams["last_run"].add_metric(values, last_time)
            if last is not None and last.ok:
                last_ok[key] = last
        for key, last in last_ok.items():
            fams["last_ttft"].add_metric(list(key), last.ttft)
            fams["last_tokens"].add_metric(list(key), last.tokens)
        yield from fams.values()

    def close(self) -> None:
        """Cancel every probe in flight and stop the loop, within 2 s whatever a target does (the
        loop's thread is a daemon: a call that ignores cancellation cannot hold the process up)."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(lambda: self._main_task.cancel())
            self._thread.join(timeout=2)
        self.source.close()
