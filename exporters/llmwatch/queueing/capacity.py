"""The highest arrival rate whose simulated TTFT quantile still meets an SLO.

TTFT grows with the arrival rate (more queueing), so the limit is found by bisection between zero
and the rate that saturates the GPUs. Each probe is a whole simulation of ``requests`` requests
(10 % of them warm-up), with the config's seed, so the answer is repeatable.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from llmwatch.queueing import engine
from llmwatch.queueing.config import SimConfig


def saturation_rate(config: SimConfig) -> float:
    """Requests/s at which the busiest pool is 100 % busy (mean service from a large sample)."""
    rng = np.random.default_rng(config.random_seed)
    prompt = config.prompt_tokens.sample(rng, 20_000).mean()
    output = config.output_tokens.sample(rng, 20_000).mean()
    if config.mode == "mono":
        c = config.cluster_mono
        return c.gpus / (prompt / c.prefill_tokens_per_s + output / c.decode_tokens_per_s)
    c = config.cluster_disagg
    return min(c.prefill_gpus / (prompt / c.prefill_tokens_per_s), c.decode_gpus / (output / c.decode_tokens_per_s))


def ttft_quantile(config: SimConfig, rate: float, quantile: float, requests: int) -> float:
    seconds = requests / rate
    result = engine.run(replace(config, arrival_rate_per_s=rate, sim_seconds=seconds, warmup_seconds=seconds / 10),
                        trace=True)[1]
    return float(np.quantile(result.ttft, quantile)) if len(result.ttft) else float("inf")


def max_rate(config: SimConfig, slo_seconds: float, quantile: float = 0.95, requests: int = 4000,
             steps: int = 12) -> float:
    """Largest rate (requests/s, within 1/2**steps of saturation) with TTFT quantile <= slo_seconds; 0 if none."""
    high = saturation_rate(config)
    low = 0.0
    if ttft_quantile(config, high * 1e-3, quantile, min(requests, 500)) > slo_seconds:
        return 0.0  # even an idle cluster misses the SLO: prefill alone is too slow
    for _ in range(steps):
        mid = (low + high) / 2
        if ttft_quantile(config, mid, quantile, requests) <= slo_seconds:
            low = mid
        else:
            high = mid
    return low
