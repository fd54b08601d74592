"""The simulator agrees with queueing theory where theory is exact (long runs, fixed seeds)."""

import pytest

from llmwatch.queueing import engine, theory
from llmwatch.queueing.config import parse

# decode_tokens_per_s so large that decode time vanishes: service = prompt_tokens / prefill rate.
FAST_DECODE = 1e12


def mono(rate, gpus, prompt, requests=60_000, seed=7):
    seconds = requests / rate
    return parse({"mode": "mono", "sim_seconds": seconds, "warmup_seconds": seconds / 20, "random_seed": seed,
                  "arrival": {"rate_per_s": rate}, "prompt_tokens": prompt,
                  "output_tokens": {"mode": "constant", "value": 1},
                  "cluster_mono": {"gpus": gpus, "prefill_tokens_per_s": 1000, "decode_tokens_per_s": FAST_DECODE}})


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_md1_matches_pollaczek_khinchine(rho):
    # 1000 tokens at 1000 tokens/s: service 1 s; rate rho.
    result = engine.run(mono(rho, 1, {"mode": "constant", "value": 1000}))
    assert result.queue_wait_mean_s == pytest.approx(theory.md1_wait(rho, 1.0), rel=0.05)
    assert result.gpu_utilization == pytest.approx(rho, rel=0.02)


@pytest.mark.parametrize("gpus, rho", [(4, 0.8), (8, 0.9)])
def test_mdc_matches_crommelin(gpus, rho):
    result = engine.run(mono(rho * gpus, gpus, {"mode": "constant", "value": 1000}))
    assert result.queue_wait_mean_s == pytest.approx(theory.mdc_wait(rho * gpus, 1.0, gpus), rel=0.06)


@pytest.mark.parametrize("gpus, rho", [(1, 0.7), (4, 0.85)])
def test_mmc_matches_erlang_c(gpus, rho):
    result = engine.run(mono(rho * gpus, gpus, {"mode": "exponential", "mean": 1000, "min_value": 0}))
    assert result.queue_wait_mean_s == pytest.approx(theory.mmc_wait(rho * gpus, 1.0, gpus), rel=0.06)


def test_crommelin_reduces_to_pollaczek_khinchine_for_one_server():
    for rho in (0.1, 0.5, 0.9):
        lam = rho / 2.0  # service 2 s
        assert theory.mdc_wait(lam, 2.0, 1) == pytest.approx(theory.md1_wait(lam, 2.0), rel=1e-6)


def test_erlang_c_known_value():
    # Classic call-centre example: 10 Erlangs on 12 agents -> P(wait) ~ 0.4494.
    assert theory.erlang_c(12, 10.0) == pytest.approx(0.4494, abs=5e-4)
    assert theory.mmc_wait(1.0, 1.0, 1) == float("inf")
