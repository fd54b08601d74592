"""Simulator configuration: the simulator's YAML, validated into frozen objects.

Every bad key is reported at once, named by its path (``prompt_tokens.p90``), so a config file is
fixed in one edit. Token counts are lognormal, given in one of three equivalent ways (log-space
``mu``/``sigma``; real-space ``mean``/``std``; real-space ``p50``/``p90``), or a constant, or
exponential (the case where queueing theory is exact, used to check the simulator).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from llmwatch.core.checks import Problems, read_yaml

MODES = ("mono", "disagg")
DIST_MODES = ("log", "real_mean_std", "real_p50_p90", "constant", "exponential")
# z such that P(Z <= z) = 0.9 for a standard normal: p90 = exp(mu + Z90 * sigma).
Z90 = 1.2815515655446004


# Requests one simulation or load test draws up front (about 400 bytes each with the event
# queue): two million is a few hundred MB and minutes of simulation; 1e8 seconds at 1/s would
# have tried to allocate 745 GiB.
MAX_REQUESTS = 2_000_000


class ConfigError(Problems):
    """An invalid simulator config. ``problems`` holds one line per bad key."""


def size_problem(rate: float, seconds: float, rate_name: str = "arrival.rate_per_s",
                 seconds_name: str = "sim_seconds") -> str | None:
    """Why ``rate`` requests/s for ``seconds`` is more than one run can hold, or None."""
    expected = rate * seconds
    if expected <= MAX_REQUESTS:
        return None
    return (f"{rate_name} x {seconds_name} = {rate:g}/s x {seconds:g} s = {expected:.3g} requests, more than "
            f"the {MAX_REQUESTS:,} one run holds in memory; lower {rate_name} or {seconds_name}")


@dataclass(frozen=True)
class TokenDist:
    """Tokens per request. ``kind`` is lognormal (mu, sigma in log space), constant or exponential."""

    kind: str
    mu: float = 0.0
    sigma: float = 0.0
    value: float = 0.0  # constant: the value; exponential: the mean
    min_value: float = 1.0

    @property
    def mean(self) -> float:
        """Mean before ``min_value`` is applied."""
        if self.kind == "lognormal":
            return math.exp(self.mu + self.sigma ** 2 / 2)
        return self.value

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.kind == "constant":
            values = np.full(n, self.value)
        elif self.kind == "exponential":
            values = rng.exponential(self.value, n)
        else:
            values = rng.lognormal(self.mu, self.sigma, n)
        return np.maximum(values, self.min_value)

    @classmethod
    def lognormal_mean_std(cls, mean: float, std: float, min_value: float = 1.0) -> "TokenDist":
        if std == 0:
            return cls("constant", value=mean, min_value=min_value)
        sigma2 = math.log1p((std / mean) ** 2)
        return cls("lognormal", mu=math.log(mean) - sigma2 / 2, sigma=math.sqrt(sigma2), min_value=min_value)

    @classmethod
    def lognormal_p50_p90(cls, p50: float, p90: float, min_value: float = 1.0) -> "TokenDist":
        if p90 == p50:
            return cls("constant", value=p50, min_value=min_value)
        return cls("lognormal", mu=math.log(p50), sigma=(math.log(p90) - math.log(p50)) / Z90, min_value=min_value)


@dataclass(frozen=True)
class MonoCluster:
    """GPUs that each serve one request at a time: prefill, then decode, on the same GPU."""

    gpus: int
    prefill_tokens_per_s: float
    decode_tokens_per_s: float


@dataclass(frozen=True)
class DisaggCluster:
    """A prefill pool handing requests over to a decode pool."""

    prefill_gpus: int
    decode_gpus: int
    prefill_tokens_per_s: float
    decode_tokens_per_s: float


@dataclass(frozen=True)
class SimConfig:
    mode: str
    sim_seconds: float
    warmup_seconds: float
    random_seed: int
    arrival_rate_per_s: float
    prompt_tokens: TokenDist
    output_tokens: TokenDist
    cluster_mono: MonoCluster | None = None
    cluster_disagg: DisaggCluster | None = None

    def with_rate(self, rate: float) -> "SimConfig":
        return replace(self, arrival_rate_per_s=rate)


class _Reader:
    """Reads typed values out of nested dicts, collecting one problem per bad key."""

    def __init__(self):
        self.problems: list[str] = []

    def table(self, raw: Any, path: str, required: bool = True) -> dict | None:
        if raw is None:
            if required:
                self.problems.append(f"{path}: missing (a table)")
            return None
        if not isinstance(raw, dict):
            self.problems.append(f"{path}: must be a table, got {raw!r}")
            return None
        return raw

    def number(self, table: dict, key: str, path: str, *, default: float | None = None, minimum: float = 0.0,
               above: bool = False, integer: bool = False) -> float:
        where = f"{path}.{key}" if path else key
        value = table.get(key, default)
        if value is None:
            self.problems.append(f"{where}: missing")
            return math.nan
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.problems.append(f"{where}: must be a number, got {value!r}")
            return math.nan
        if integer and value != int(value):
            self.problems.append(f"{where}: must be a whole number, got {value!r}")
            return math.nan
        if value < minimum or (above and value <= minimum):
            self.problems.append(f"{where}: must be {'>' if above else '>='} {minimum}, got {value!r}")
            return math.nan
        return int(value) if integer else float(value)

    def unknown(self, table: dict, known: set[str], path: str) -> None:
        for key in table:
            if key not in known:
                where = f"{path}.{key}" if path else str(key)
                self.problems.append(f"{where}: unknown key (known: {', '.join(sorted(known))})")


def _dist(r: _Reader, raw: Any, path: str) -> TokenDist | None:
    table = r.table(raw, path)
    if table is None:
        return None
    mode = table.get("mode")
    if mode is None:  # older configs name no mode: infer it from the keys
        mode = next((m for m, keys in (("log", "mu"), ("real_mean_std", "mean"), ("real_p50_p90", "p50"),
                                       ("constant", "value")) if keys in table), None)
    if mode not in DIST_MODES:
        r.problems.append(f"{path}.mode: must be one of {', '.join(DIST_MODES)}, got {table.get('mode')!r}")
        return None
    keys = {"log": ("mu", "sigma"), "real_mean_std": ("mean", "std"), "real_p50_p90": ("p50", "p90"),
            "constant": ("value",), "exponential": ("mean",)}[mode]
    r.unknown(table, {"mode", "min_value", *keys}, path)
    before = len(r.problems)
    min_value = r.number(table, "min_value", path, default=1.0)
    if mode == "log":
        mu = r.number(table, "mu", path, minimum=-math.inf)
        sigma = r.number(table, "sigma", path)
        dist = TokenDist("lognormal", mu=mu, sigma=sigma, min_value=min_value) if sigma else \
            TokenDist("constant", value=math.exp(mu), min_value=min_value)
    elif mode == "real_mean_std":
        mean = r.number(table, "mean", path, above=True)
        std = r.number(table, "std", path)
        dist = TokenDist.lognormal_mean_std(mean, std, min_value) if len(r.problems) == before else None
    elif mode == "real_p50_p90":
        p50 = r.number(table, "p50", path, above=True)
        p90 = r.number(table, "p90", path, above=True)
        if len(r.problems) == before and p90 < p50:
            r.problems.append(f"{path}.p90: must be >= p50 ({p50}), got {p90}")
        dist = TokenDist.lognormal_p50_p90(p50, p90, min_value) if len(r.problems) == before else None
    elif mode == "constant":
        dist = TokenDist("constant", value=r.number(table, "value", path), min_value=min_value)
    else:
        dist = TokenDist("exponential", value=r.number(table, "mean", path, above=True), min_value=min_value)
    return dist if len(r.problems) == before else None


def parse(raw: Any, source: str = "config") -> SimConfig:
    """Validate a loaded YAML document; raise ConfigError naming every bad key."""
    r = _Reader()
    if not isinstance(raw, dict):
        raise ConfigError([f"{source}: must be a YAML mapping, got {type(raw).__name__}"])
    r.unknown(raw, {"mode", "sim_seconds", "warmup_seconds", "random_seed", "arrival", "prompt_tokens",
                    "output_tokens", "cluster_mono", "cluster_disagg"}, "")
    mode = raw.get("mode", "mono")
    if mode not in MODES:
        r.problems.append(f"mode: must be one of {', '.join(MODES)}, got {mode!r}")
    sim_seconds = r.number(raw, "sim_seconds", "", above=True)
    warmup = r.number(raw, "warmup_seconds", "", default=0.0)
    if sim_seconds == sim_seconds and warmup == warmup and warmup >= sim_seconds:
        r.problems.append(f"warmup_seconds: must be < sim_seconds ({sim_seconds}), got {warmup}")
    seed = r.number(raw, "random_seed", "", default=0, integer=True)
    arrival = r.table(raw.get("arrival"), "arrival")
    rate = math.nan
    if arrival is not None:
        r.unknown(arrival, {"rate_per_s"}, "arrival")
        rate = r.number(arrival, "rate_per_s", "arrival", above=True)
    prompt = _dist(r, raw.get("prompt_tokens"), "prompt_tokens")
    output = _dist(r, raw.get("output_tokens"), "output_tokens")

    mono = disagg = None
    if "cluster_mono" in raw or mode == "mono":
        table = r.table(raw.get("cluster_mono"), "cluster_mono")
        if table is not None:
            r.unknown(table, {"gpus", "prefill_tokens_per_s", "decode_tokens_per_s"}, "cluster_mono")
            mono = MonoCluster(r.number(table, "gpus", "cluster_mono", minimum=1, integer=True),
                               r.number(table, "prefill_tokens_per_s", "cluster_mono", above=True),
                               r.number(table, "decode_tokens_per_s", "cluster_mono", above=True))
    if "cluster_disagg" in raw or mode == "disagg":
        table = r.table(raw.get("cluster_disagg"), "cluster_disagg")
        if table is not None:
            r.unknown(table, {"prefill_gpus", "decode_gpus", "prefill_tokens_per_s", "decode_tokens_per_s"},
                      "cluster_disagg")
            disagg = DisaggCluster(r.number(table, "prefill_gpus", "cluster_disagg", minimum=1, integer=True),
                                   r.number(table, "decode_gpus", "cluster_disagg", minimum=1, integer=True),
                                   r.number(table, "prefill_tokens_per_s", "cluster_disagg", above=True),
                                   r.number(table, "decode_tokens_per_s", "cluster_disagg", above=True))
    if not r.problems and (problem := size_problem(rate, sim_seconds)):
        r.problems.append(problem)
    if r.problems:
        raise ConfigError([f"{source}: {p}" for p in r.problems])
    return SimConfig(mode=mode, sim_seconds=sim_seconds, warmup_seconds=warmup, random_seed=seed,
                     arrival_rate_per_s=rate, prompt_tokens=prompt, output_tokens=output,
                     cluster_mono=mono, cluster_disagg=disagg)


def load(path: Path) -> SimConfig:
    try:
        raw = read_yaml(path)
    except Problems as e:
        raise ConfigError(e.problems) from None
    return parse(raw, str(path))


def parse_dist(raw: Any, path: str) -> TokenDist:
    """One token distribution (a table as in the YAML); raise ConfigError naming the bad keys."""
    r = _Reader()
    dist = _dist(r, raw, path)
    if r.problems or dist is None:
        raise ConfigError(r.problems or [f"{path}: not a token distribution"])
    return dist
