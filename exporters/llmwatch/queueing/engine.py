"""Discrete-event TTFT simulation (SimPy): Poisson arrivals queueing FIFO for GPUs.

Monolithic: a request waits for a free GPU and holds it for its prefill
(prompt_tokens / prefill_tokens_per_s) and then its whole decode (output_tokens /
decode_tokens_per_s); its TTFT ends after the prefill and one decode token.

Disaggregated: a request waits for a prefill GPU, holds it for the prefill, then waits for a
decode GPU and holds it for the decode; its TTFT ends after the first decode token on the decode
GPU (the hand-over itself is instantaneous: no KV transfer cost is modelled).

A GPU serves one request at a time: no batching, no preemption (the simplified queueing model).
Randomness is drawn up front from one seeded generator, so a config and seed give one result.
Arrivals stop at ``sim_seconds``; the run then drains, so every measured request completes.
Requests arriving before ``warmup_seconds`` are served but not measured.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import simpy

from llmwatch.queueing.config import ConfigError, SimConfig, size_problem


@dataclass(frozen=True)
class Result:
    mode: str
    arrival_rate_per_s: float
    completed: int  # measured requests (arrived after the warm-up)
    ttft_mean_s: float
    ttft_p50_s: float
    ttft_p90_s: float
    ttft_p95_s: float
    ttft_p99_s: float
    queue_wait_mean_s: float  # time waiting for a GPU (both pools when disaggregated)
    throughput_rps: float  # requests finished per second of the measured window
    gpu_utilization: float  # busy share of all GPUs over the measured window
    offered_load: float  # work arriving per GPU-second; >= 1 means the queue grows without bound
    prefill_utilization: float | None = None
    decode_utilization: float | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Trace:
    """Per measured request, in arrival order (for plots and raw exports)."""

    arrival: np.ndarray
    ttft: np.ndarray
    wait: np.ndarray
    finish: np.ndarray


def workload(config: SimConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arrival times in [0, sim_seconds) and token counts, drawn from the config's seed.

    Raises ConfigError when the run would hold more than MAX_REQUESTS requests: a sweep's rates
    and ``--requests`` change the size after the config was checked."""
    if problem := size_problem(config.arrival_rate_per_s, config.sim_seconds):
        raise ConfigError([problem])
    rng = np.random.default_rng(config.random_seed)
    expected = config.arrival_rate_per_s * config.sim_seconds
    chunk = int(expected + 6 * np.sqrt(expected) + 16)
    gaps = rng.exponential(1.0 / config.arrival_rate_per_s, chunk)
    arrivals = np.cumsum(gaps)
    while arrivals[-1] < config.sim_seconds:  # rare: top up, still from the same stream
        more = np.cumsum(rng.exponential(1.0 / config.arrival_rate_per_s, chunk)) + arrivals[-1]
        arrivals = np.concatenate([arrivals, more])
    arrivals = arrivals[arrivals < config.sim_seconds]
    n = len(arrivals)
    return arrivals, config.prompt_tokens.sample(rng, n), config.output_tokens.sample(rng, n)


def _busy_in_window(start: np.ndarray, end: np.ndarray, lo: float, hi: float) -> float:
    return float(np.clip(np.minimum(end, hi) - np.maximum(start, lo), 0, None).sum())


def run(config: SimConfig, trace: bool = False) -> Result | tuple[Result, Trace]:
    arrivals, prompt, output = workload(config)
    n = len(arrivals)
    env = simpy.Environment()
    ttft = np.zeros(n)
    wait = np.zeros(n)
    finish = np.zeros(n)

    if config.mode == "mono":
        cluster = config.cluster_mono
        pools = {"gpu": cluster.gpus}
        prefill = prompt / cluster.prefill_tokens_per_s
        decode = output / cluster.decode_tokens_per_s
        first_token = 1.0 / cluster.decode_tokens_per_s
        start = np.zeros(n)
        gpus = simpy.Resource(env, cluster.gpus)

        def request(i: int):
            with gpus.request() as slot:
                yield slot
                now = env.now
                start[i] = now
                wait[i] = now - arrivals[i]
                ttft[i] = now + prefill[i] + first_token - arrivals[i]
                yield env.timeout(prefill[i] + decode[i])
                finish[i] = env.now

        service_per_gpu = (prefill + decode).sum() / cluster.gpus
        spans = lambda: {"gpu": (start, start + prefill + decode)}
    else:
        cluster = config.cluster_disagg
        pools = {"prefill": cluster.prefill_gpus, "decode": cluster.decode_gpus}
        prefill = prompt / cluster.prefill_tokens_per_s
        decode = output / cluster.decode_tokens_per_s
        first_token = 1.0 / cluster.decode_tokens_per_s
        p_start = np.zeros(n)
        d_start = np.zeros(n)
        prefill_pool = simpy.Resource(env, cluster.prefill_gpus)
        decode_pool = simpy.Resource(env, cluster.decode_gpus)

        def request(i: int):
            with prefill_pool.request() as slot:
                yield slot
                p_start[i] = env.now
                yield env.timeout(prefill[i])
            handed_over = env.now
            with decode_pool.request() as slot:
                yield slot
                d_start[i] = env.now
                yield env.timeout(decode[i])
                finish[i] = env.now
            wait[i] = (p_start[i] - arrivals[i]) + (d_start[i] - handed_over)
            ttft[i] = d_start[i] + first_token - arrivals[i]

        service_per_gpu = max(prefill.sum() / cluster.prefill_gpus, decode.sum() / cluster.decode_gpus)
        spans = lambda: {"prefill": (p_start, p_start + prefill), "decode": (d_start, d_start + decode)}

    def source():
        last = 0.0
        for i in range(n):
            yield env.timeout(arrivals[i] - last)
            last = arrivals[i]
            env.process(request(i))

    env.process(source())
    env.run()

    window = config.sim_seconds - config.warmup_seconds
    lo, hi = config.warmup_seconds, config.sim_seconds
    measured = arrivals >= lo
    utilization = {pool: _busy_in_window(s[0], s[1], lo, hi) / (pools[pool] * window) for pool, s in spans().items()}
    busy_all = sum(utilization[p] * pools[p] for p in pools) / sum(pools.values())
    t = ttft[measured]
    q = np.percentile(t, [50, 90, 95, 99]) if len(t) else [np.nan] * 4
    result = Result(
        mode=config.mode, arrival_rate_per_s=config.arrival_rate_per_s, completed=int(measured.sum()),
        ttft_mean_s=float(t.mean()) if len(t) else np.nan,
        ttft_p50_s=float(q[0]), ttft_p90_s=float(q[1]), ttft_p95_s=float(q[2]), ttft_p99_s=float(q[3]),
        queue_wait_mean_s=float(wait[measured].mean()) if len(t) else np.nan,
        throughput_rps=float(((finish >= lo) & (finish < hi)).sum() / window),
        gpu_utilization=busy_all,
        offered_load=float(service_per_gpu / config.sim_seconds),
        prefill_utilization=utilization.get("prefill"), decode_utilization=utilization.get("decode"))
    if trace:
        return result, Trace(arrivals[measured], t, wait[measured], finish[measured])
    return result
