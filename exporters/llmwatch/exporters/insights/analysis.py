"""Pure functions of the insights exporter: prices, GPU attribution, advice, workload fitting.

Nothing here does I/O or reads a clock; the collector hands in query results and the time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

from llmwatch.queueing.config import MonoCluster, SimConfig, TokenDist

ADVICES = ("none", "scale_up", "scale_down", "consolidate")
# Why an advice was given (bounded: these become label values).
REASONS = ("kv_cache", "queue", "ttft_slo", "utilization", "low_load", "")


def price_for(gpu_name: str, prices: Iterable[tuple[str, float]], default: float) -> float:
    """$/hour of a GPU: the first table entry whose ``match`` is part of its name (case-insensitive)."""
    name = gpu_name.lower()
    return next((price for match, price in prices if match in name), default)


@dataclass(frozen=True)
class Gpu:
    index: str
    uuid: str
    name: str
    memory_total: float = math.nan
    memory_used: float = math.nan


@dataclass(frozen=True)
class Server:
    """One vLLM server (container) and the GPUs it was given or is seen using."""

    container: str
    model_name: str
    gpus: tuple[str, ...]  # GPU indexes


def server_gpus(container: str, assigned: Iterable[str], used_on: Iterable[str], gpus: list[Gpu]) -> tuple[str, ...]:
    """GPU indexes of a container: Docker's assignment (index, UUID or ``all``), else where it holds memory."""
    by_uuid = {g.uuid: g.index for g in gpus}
    indexes = {g.index for g in gpus}
    found: set[str] = set()
    for value in assigned:
        if value == "all":
            found |= indexes
        elif value in indexes:
            found.add(value)
        elif value in by_uuid:
            found.add(by_uuid[value])
    if not found:
        found = {g for g in used_on if g in indexes}
    return tuple(sorted(found, key=int))


def allocation(servers: Iterable[Server]) -> dict[tuple[str, str], float]:
    """(gpu, model_name) -> share of the GPU: a GPU serving n models counts 1/n for each."""
    models_on: dict[str, set[str]] = {}
    for server in servers:
        for gpu in server.gpus:
            models_on.setdefault(gpu, set()).add(server.model_name)
    return {(gpu, model): 1 / len(models) for gpu, models in models_on.items() for model in models}


@dataclass(frozen=True)
class Thresholds:
    up_kv_cache: float = 0.8
    up_queue_per_replica: float = 5.0
    up_utilization: float = 0.85
    down_utilization: float = 0.3
    down_kv_cache: float = 0.3
    hold_seconds: float = 600.0
    hysteresis: float = 0.1


@dataclass(frozen=True)
class Load:
    """What the advice looks at, per model. ``None``: not known (no data in Prometheus)."""

    kv_cache: float | None  # recent (5 m) average of the fullest replica
    queue_per_replica: float | None  # recent average of waiting requests per replica
    ttft_burning: bool  # the TTFT SLO's 1 h burn rate is above 1
    utilization: float | None  # recent average over the model's GPUs
    window_utilization: float | None  # average over the advice window
    window_kv_cache: float | None  # highest over the advice window
    replicas: int


@dataclass(frozen=True)
class Advice:
    advice: str = "none"
    reason: str = ""
    beside: str = ""  # consolidate: the model whose GPUs have room
    since: float = 0.0


def _over(value: float | None, limit: float) -> bool:
    return value is not None and value > limit


def _under(value: float | None, limit: float) -> bool:
    return value is not None and value < limit


def scale_up_reason(load: Load, th: Thresholds, easing: float = 0.0) -> str:
    """The first scale-up condition that holds; thresholds lowered by ``easing`` (to stay in the state)."""
    keep = 1 - easing
    if _over(load.kv_cache, th.up_kv_cache * keep):
        return "kv_cache"
    if _over(load.queue_per_replica, th.up_queue_per_replica * keep):
        return "queue"
    if load.ttft_burning:
        return "ttft_slo"
    if _over(load.utilization, th.up_utilization * keep):
        return "utilization"
    return ""


def is_quiet(load: Load, th: Thresholds, easing: float = 0.0) -> bool:
    """Low GPU use and a nearly empty KV cache for the whole window (thresholds raised by ``easing``)."""
    keep = 1 + easing
    return (_under(load.window_utilization, th.down_utilization * keep)
            and _under(load.window_kv_cache, th.down_kv_cache * keep)
            and not _over(load.queue_per_replica, 0.0) and not load.ttft_burning)


def decide(previous: Advice | None, load: Load, th: Thresholds, now: float, fits_beside: str = "") -> Advice:
    """The advice now, given the last one: hysteresis keeps an advice until its condition is clearly gone.

    Entering scale_up is immediate, and so is any change from ``none``; other changes wait until
    the standing advice is ``hold_seconds`` old. Leaving scale_up needs every trigger below its threshold by the
    hysteresis margin; leaving scale_down / consolidate needs load above theirs by the margin.
    """
    previous = previous or Advice(since=now)
    up = scale_up_reason(load, th)
    if previous.advice == "scale_up" and not up:
        up = scale_up_reason(load, th, th.hysteresis)
    low = previous.advice in ("scale_down", "consolidate")
    if up:
        want = Advice("scale_up", up)
    elif is_quiet(load, th, th.hysteresis if low else 0.0):
        if load.replicas <= 1 and fits_beside:
            want = Advice("consolidate", "low_load", fits_beside)
        else:
            want = Advice("scale_down", "low_load")
    else:
        want = Advice()
    if (want.advice, want.reason, want.beside) == (previous.advice, previous.reason, previous.beside):
        return previous
    if want.advice == previous.advice:  # same advice, another reason: it keeps its age
        return replace(want, since=previous.since)
    if want.advice == "scale_up" or previous.advice == "none" or now - previous.since >= th.hold_seconds:
        return replace(want, since=now)
    return previous


def fits_beside(model: str, servers: list[Server], gpus: dict[str, Gpu]) -> str:
    """Another model whose GPUs could also hold this model's memory: as many GPUs, each with room.

    This model's per-GPU need is the most it uses on any of its GPUs; the other model's GPUs must
    each have that much free. The first such model (by name) is returned, or "".
    """
    mine = sorted({g for s in servers if s.model_name == model for g in s.gpus})
    need = max((gpus[g].memory_used for g in mine if g in gpus), default=math.nan)
    if not mine or not math.isfinite(need):
        return ""
    for other in sorted({s.model_name for s in servers} - {model}):
        theirs = sorted({g for s in servers if s.model_name == other for g in s.gpus} - set(mine))
        free = [gpus[g].memory_total - gpus[g].memory_used for g in theirs if g in gpus]
        if len(free) >= len(mine) and sum(f >= need for f in free) >= len(mine):
            return other
    return ""


@dataclass(frozen=True)
class Workload:
    """A model's traffic over the fitting window, from vLLM's histograms."""

    request_rate: float  # requests/s now (5 m)
    prompt_p50: float
    prompt_p90: float
    output_p50: float
    output_p90: float
    prefill_tokens_per_s: float  # per request while in prefill: prompt tokens / prefill time
    decode_tokens_per_s: float  # per request while decoding: generated tokens / decode time
    replicas: int


def usable(workload: Workload) -> bool:
    values = (workload.prompt_p50, workload.prompt_p90, workload.output_p50, workload.output_p90,
              workload.prefill_tokens_per_s, workload.decode_tokens_per_s)
    return all(math.isfinite(v) and v > 0 for v in values) and workload.replicas > 0


def slots_per_replica(setting: int, most: int, by_kv: float | None, peak_running: float | None) -> int:
    """How many requests a replica serves at once in the forecast.

    ``setting`` > 0 is taken as given. Otherwise the KV cache decides: requests running on
    average / the share of the cache they fill is how many would fit when it is full (vLLM admits
    requests while blocks are free). Never below the most requests seen running, never above
    ``most`` (vLLM's max_num_seqs); with neither known, 1.
    """
    if setting > 0:
        return setting
    floor = max(1, int(peak_running or 0))
    if by_kv is None or not math.isfinite(by_kv):
        return min(most, floor)
    return max(1, min(most, max(floor, int(by_kv))))


def simulation(workload: Workload, slots_per_replica: int, requests: int, seed: int = 1) -> SimConfig:
    """The simulator config that mirrors a model: its replicas x slots as monolithic 'GPUs'.

    A slot serves one request at a time at the per-request prefill and decode speeds measured
    under today's batching; token counts are lognormal through the observed p50 and p90.
    """
    rate = max(workload.request_rate, 0.01)
    seconds = requests / rate
    return SimConfig(
        mode="mono", sim_seconds=seconds, warmup_seconds=seconds / 10, random_seed=seed, arrival_rate_per_s=rate,
        prompt_tokens=TokenDist.lognormal_p50_p90(workload.prompt_p50, max(workload.prompt_p90, workload.prompt_p50)),
        output_tokens=TokenDist.lognormal_p50_p90(workload.output_p50, max(workload.output_p90, workload.output_p50)),
        cluster_mono=MonoCluster(workload.replicas * slots_per_replica, workload.prefill_tokens_per_s,
                                 workload.decode_tokens_per_s))
