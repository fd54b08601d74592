"""The soak test's verdict: pure functions from recorded scrapes, resource samples and exits to a
table and a list of problems (``scripts/soak`` records; this module judges).

A phase puts one fault in force for a while. A scrape belongs to the phase it starts in. Its
``up`` is judged when it starts after the phase's first ``settle`` seconds (an exporter may still
finish a scrape begun before the fault) and is answered before the phase ends (a later answer
describes the next phase): during a fault every faulted series must read 0 ("stale up 1" otherwise, flapping
excepted: it is half ok), every healthy one 1; during an ok phase every watched series must read
1 again ("not recovered"). Any non-200 answer, any scrape over ``HANG_SECONDS``, any traceback in
an exporter's output, RSS more than ``RSS_SLACK_BYTES`` above its pre-fault level after the huge
bodies, or a shutdown over ``SHUTDOWN_SECONDS`` is a problem.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

HANG_SECONDS = 15.0
SHUTDOWN_SECONDS = 5.0
RSS_SLACK_BYTES = 20 * 1000 * 1000
LEAK_SLACK = 50  # file descriptors or threads more at the end than before the faults

Labels = frozenset  # of (name, value) pairs
Series = tuple[str, Labels]

_SAMPLE = re.compile(r"^(llmwatch_\w+?_(?:up|errors_total|requests_total))(?:\{(.*)\})? (\S+)$", re.M)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Selector:
    """Series named ``name`` whose labels include ``labels``."""

    name: str
    labels: tuple[tuple[str, str], ...] = ()

    def matches(self, series: Series) -> bool:
        return series[0] == self.name and set(self.labels) <= series[1]

    def __str__(self) -> str:
        inside = ",".join(f'{k}="{v}"' for k, v in self.labels)
        return f"{self.name}{{{inside}}}" if inside else self.name


@dataclass(frozen=True)
class Scrape:
    exporter: str
    started: float  # seconds since the soak began
    seconds: float
    status: int  # 0: no answer (refused, reset, client timeout)
    ups: dict[Series, float] = field(default_factory=dict)  # every llmwatch_*_up series
    reasons: dict[str, float] = field(default_factory=dict)  # error reason -> count so far


@dataclass(frozen=True)
class Phase:
    name: str
    start: float
    end: float
    faults: dict[str, str]  # exporter -> the fault it sees ("ok" when none)
    faulted: dict[str, tuple[Selector, ...]]  # exporter -> series that must read 0 (or 1 when "ok")
    healthy: dict[str, tuple[Selector, ...]] = field(default_factory=dict)  # exporter -> must stay 1


@dataclass(frozen=True)
class Resources:
    at: float
    rss_bytes: int
    fds: int
    threads: int


@dataclass
class PhaseResult:
    phase: str
    fault: str
    scrapes: int = 0
    judged: int = 0
    up0: int = 0
    stale_up1: int = 0  # a faulted series read 1 during its fault
    not_recovered: int = 0  # a watched series read 0 (or was missing) during an ok phase
    healthy_down: int = 0  # a series that should not feel the fault read 0
    missing: int = 0  # a judged answer without the faulted series
    non_200: int = 0
    hangs: int = 0
    reasons: tuple[str, ...] = ()

    @property
    def up0_share(self) -> float:
        return self.up0 / self.judged if self.judged else math.nan


@dataclass
class ExporterReport:
    exporter: str
    phases: list[PhaseResult]
    p50: float
    p99: float
    max: float
    scrapes: int
    non_200: int
    hangs: int
    resources: dict[str, Resources | None]  # start, before faults, after huge, end
    tracebacks: int
    shutdown_seconds: float | None  # None: did not exit, killed
    problems: list[str]


# The fault schedule: (phase, proxy mode for every upstream, faults of the simulated GPU node).
SCHEDULE: tuple[tuple[str, str, dict], ...] = (
    ("baseline", "ok", {}),
    ("down", "down", {"lost": [1]}),
    ("hang", "hang", {"hung": [2]}),
    ("drip", "drip", {"driver_unloaded": True}),
    ("huge", "huge", {}),
    ("after-huge", "ok", {}),
    ("garbage", "garbage", {}),
    ("truncate", "truncate", {}),
    ("reset", "reset", {}),
    ("status-500", "status:500", {}),
    ("status-401", "status:401", {}),
    ("status-429", "status:429", {}),
    ("flap", "flap", {}),
    ("recovered", "ok", {}),
)
# The series behind each HTTP exporter's fault proxy (the vLLM target and probe targets are named
# by the soak script); the GPU exporter's follow the node's faults.
HTTP_UP = {
    "vllm": (Selector("llmwatch_vllm_up", (("container", "vllm-soak"),)),),
    "litellm": (Selector("llmwatch_litellm_up"),),
    "langfuse": (Selector("llmwatch_langfuse_up"),),
    "insights": (Selector("llmwatch_insights_up"),),
    "probe": (Selector("llmwatch_probe_up"),),
}
WATCHED_GPUS = (0, 1, 2)  # 1 is lost, 2 hangs, 0 must not notice


def gpu_up(index: int) -> Selector:
    return Selector("llmwatch_gpu_up", (("gpu", str(index)),))


def gpu_fault(faults: dict) -> str:
    """The GPU node's faults in words: ok, gpu-lost, gpu-hung, driver-unloaded (joined by +)."""
    words = [word for key, word in (("lost", "gpu-lost"), ("hung", "gpu-hung"), ("driver_unloaded", "driver-unloaded"))
             if faults.get(key)]
    return "+".join(words) or "ok"


def phase(name: str, proxy_mode: str, gpu_faults: dict, start: float, end: float) -> Phase:
    """A phase of :data:`SCHEDULE` with what each exporter sees and which of its series must read what."""
    faults = {exporter: proxy_mode for exporter in HTTP_UP} | {"gpu": gpu_fault(gpu_faults)}
    faulted = dict(HTTP_UP)
    healthy: dict[str, tuple[Selector, ...]] = {}
    if gpu_faults.get("driver_unloaded"):
        faulted["gpu"] = (Selector("llmwatch_gpu_nvml_up"),)
    elif gpu_faults:
        broken = [*gpu_faults.get("lost", ()), *gpu_faults.get("hung", ())]
        faulted["gpu"] = tuple(gpu_up(i) for i in broken)
        healthy["gpu"] = tuple(gpu_up(i) for i in WATCHED_GPUS if i not in broken)
    else:
        faulted["gpu"] = (Selector("llmwatch_gpu_nvml_up"), *(gpu_up(i) for i in WATCHED_GPUS))
    return Phase(name, start, end, faults, faulted, healthy)


def parse_exposition(text: str) -> tuple[dict[Series, float], dict[str, float]]:
    """``(up series -> value, error reason -> count)`` from an exporter's /metrics text.

    Reasons are the ``reason`` labels of ``*_errors_total`` counters, summed over their other
    labels, and the probe's failed outcomes (``outcome`` other than ok) of ``*_requests_total``.
    """
    ups: dict[Series, float] = {}
    reasons: dict[str, float] = {}
    for name, inside, raw in _SAMPLE.findall(text):
        try:
            value = float(raw)
        except ValueError:
            continue
        labels = dict(_LABEL.findall(inside or ""))
        if name.endswith("_up"):
            ups[(name, frozenset(labels.items()))] = value
        elif name.endswith("_errors_total") and "reason" in labels:
            reasons[labels["reason"]] = reasons.get(labels["reason"], 0.0) + value
        elif name.endswith("_requests_total") and labels.get("outcome", "ok") != "ok":
            key = f"probe_{labels['outcome']}"
            reasons[key] = reasons.get(key, 0.0) + value
    return ups, reasons


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _values(scrape: Scrape, selectors: tuple[Selector, ...]) -> list[float] | None:
    """The values of the series each selector picks; None when one selector finds none."""
    found = []
    for selector in selectors:
        values = [v for series, v in scrape.ups.items() if selector.matches(series)]
        if not values:
            return None
        found += values
    return found


def judge_phase(exporter: str, phase: Phase, scrapes: list[Scrape], settle: float) -> PhaseResult:
    """How ``exporter`` answered during ``phase`` (its scrapes, in start order)."""
    fault = phase.faults.get(exporter, "ok")
    result = PhaseResult(phase.name, fault)
    faulted, healthy = phase.faulted.get(exporter, ()), phase.healthy.get(exporter, ())
    inside = [s for s in scrapes if phase.start <= s.started < phase.end]
    result.scrapes = len(inside)
    result.non_200 = sum(s.status != 200 for s in inside)
    result.hangs = sum(s.seconds > HANG_SECONDS for s in inside)
    answered = [s for s in inside if s.status == 200 and s.started + s.seconds <= phase.end]
    if answered:
        first, last = answered[0].reasons, answered[-1].reasons
        result.reasons = tuple(sorted(r for r, n in last.items() if n > first.get(r, 0.0)))
    for scrape in answered:
        if scrape.started < phase.start + settle or not faulted:
            continue
        result.judged += 1
        values = _values(scrape, faulted)
        if values is None:
            result.missing += 1
            if fault == "ok":
                result.not_recovered += 1
            continue
        if all(v == 0 for v in values):
            result.up0 += 1
        if fault == "ok" and any(v != 1 for v in values):
            result.not_recovered += 1
        elif fault not in ("ok", "flap") and any(v == 1 for v in values):
            result.stale_up1 += 1
        healthy_values = _values(scrape, healthy) if healthy else []
        if healthy_values is None or any(v != 1 for v in healthy_values):
            result.healthy_down += 1
    return result


def resources_at(samples: list[Resources], moment: float) -> Resources | None:
    """The last sample taken at or before ``moment``."""
    before = [s for s in samples if s.at <= moment]
    return before[-1] if before else None


def report(exporter: str, phases: list[Phase], scrapes: list[Scrape], samples: list[Resources], *,
           settle: float, tracebacks: int, shutdown_seconds: float | None, signalled: float = math.inf,
           baseline_phase: str = "baseline", after_huge_phase: str = "after-huge",
           end_phase: str = "recovered") -> ExporterReport:
    """One exporter's row: latency, resources at the four moments, each phase judged, problems.

    Scrapes that start after the last phase or are still open at ``signalled`` (when SIGTERM was
    sent) belong to the shutdown, which is judged by its time alone."""
    last = max((p.end for p in phases), default=math.inf)
    scrapes = sorted((s for s in scrapes if s.exporter == exporter and s.started < last
                      and s.started + s.seconds <= signalled), key=lambda s: s.started)
    ends = {p.name: p.end for p in phases}
    moments = {"start": samples[0].at if samples else 0.0, "before faults": ends.get(baseline_phase, math.inf),
               "after huge": ends.get(after_huge_phase, math.inf), "end": ends.get(end_phase, math.inf)}
    resources = {name: resources_at(samples, at) for name, at in moments.items()}
    durations = [s.seconds for s in scrapes if s.status == 200]
    results = [judge_phase(exporter, phase, scrapes, settle) for phase in phases]
    problems = []
    for r in results:
        for count, what in ((r.stale_up1, "stale up 1"), (r.not_recovered, "up 0 or missing after recovery"),
                            (r.healthy_down, "a healthy series down"), (r.non_200, "non-200 answers"),
                            (r.hangs, f"scrapes over {HANG_SECONDS:g} s")):
            if count:
                problems.append(f"{exporter}: {count} {what} in phase {r.phase} ({r.fault})")
    base, huge, end = resources["before faults"], resources["after huge"], resources["end"]
    if base and huge and huge.rss_bytes - base.rss_bytes > RSS_SLACK_BYTES:
        problems.append(f"{exporter}: RSS {mb(huge.rss_bytes)} MB after the huge bodies, "
                        f"{mb(base.rss_bytes)} MB before the faults")
    if base and end:
        for kind in ("fds", "threads"):
            if getattr(end, kind) - getattr(base, kind) > LEAK_SLACK:
                problems.append(f"{exporter}: {kind} {getattr(base, kind)} before the faults, {getattr(end, kind)} at the end")
    if tracebacks:
        problems.append(f"{exporter}: {tracebacks} tracebacks in its output")
    if shutdown_seconds is None:
        problems.append(f"{exporter}: did not exit after SIGTERM (killed)")
    elif shutdown_seconds > SHUTDOWN_SECONDS:
        problems.append(f"{exporter}: took {shutdown_seconds:.1f} s to exit after SIGTERM")
    return ExporterReport(exporter, results, percentile(durations, 50), percentile(durations, 99),
                          max(durations, default=math.nan), len(scrapes), sum(s.status != 200 for s in scrapes),
                          sum(s.seconds > HANG_SECONDS for s in scrapes), resources, tracebacks,
                          shutdown_seconds, problems)


def mb(n: int) -> str:
    return f"{n / 1e6:.0f}"


def _ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def format_report(reports: list[ExporterReport]) -> str:
    """The table, one block per exporter, then the problems."""
    lines = []
    for rep in reports:
        shutdown = "killed" if rep.shutdown_seconds is None else f"{rep.shutdown_seconds:.1f} s"
        lines.append(f"== {rep.exporter}: {rep.scrapes} scrapes, p50 {_ms(rep.p50)}, p99 {_ms(rep.p99)}, "
                     f"max {_ms(rep.max)}; non-200 {rep.non_200}; hangs {rep.hangs}; tracebacks {rep.tracebacks}; "
                     f"shutdown {shutdown}")
        for kind, unit in (("rss_bytes", "RSS MB"), ("fds", "fds"), ("threads", "threads")):
            values = [("-" if r is None else mb(r.rss_bytes) if kind == "rss_bytes" else str(getattr(r, kind)))
                      for r in rep.resources.values()]
            lines.append(f"   {unit:<8} " + " -> ".join(f"{name} {v}" for name, v in zip(rep.resources, values)))
        lines.append(f"   {'phase':<12} {'fault':<16} {'scrapes':>7} {'up 0':>6} {'stale 1':>7} {'healthy 0':>9} "
                     f"{'not back':>8} {'non-200':>7} {'hangs':>5}  reasons")
        for r in rep.phases:
            share = "-" if math.isnan(r.up0_share) else f"{100 * r.up0_share:.0f}%"
            lines.append(f"   {r.phase:<12} {r.fault:<16} {r.scrapes:>7} {share:>6} {r.stale_up1:>7} "
                         f"{r.healthy_down:>9} {r.not_recovered:>8} {r.non_200:>7} {r.hangs:>5}  "
                         f"{','.join(r.reasons) or '-'}")
    problems = [p for rep in reports for p in rep.problems]
    lines.append("")
    lines.append(f"{len(problems)} problems" + (":" if problems else ""))
    lines += [f"  - {p}" for p in problems]
    return "\n".join(lines)
