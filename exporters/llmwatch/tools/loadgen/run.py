"""Open-loop load: Poisson arrivals sent on schedule, each a streamed completion timed by the client.

The schedule (arrival times, prompt and output lengths) is drawn exactly as the simulator draws
its workload (:func:`llmwatch.queueing.engine.workload`), so a load test and a simulation of
the same config see the same requests. Sending is open-loop: a request goes out at its arrival
time whether or not earlier ones have finished, as users arrive; how late it really went out
(``lag``) is recorded per request, the generator's own timing error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import numpy as np

from llmwatch.upstreams.streaming import Outcome, request_body, stream
from llmwatch.queueing.config import SimConfig
from llmwatch.queueing.engine import workload

# Plain words that tokenizers split about 1.3 tokens each on average (see prompt_text).
_WORDS = ("the", "river", "carried", "small", "boats", "past", "old", "stone", "houses", "while", "people",
          "watched", "from", "bridges", "and", "talked", "about", "weather", "markets", "music")
TOKENS_PER_WORD = 1.3


@dataclass(frozen=True)
class Planned:
    at: float  # seconds after the start
    prompt_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Record:
    """One request's plan and what happened to it."""

    planned: Planned
    lag: float  # seconds between the planned and the real send time
    outcome: Outcome


@dataclass(frozen=True)
class Endpoint:
    name: str
    url: str
    api: str
    model: str
    headers: tuple[tuple[str, str], ...] = ()


def plan(config: SimConfig) -> list[Planned]:
    """The requests of one run: the simulator's workload for this config (its rate, duration, seed)."""
    arrivals, prompt, output = workload(config)
    return [Planned(float(a), int(round(p)), max(1, int(round(o)))) for a, p, o in zip(arrivals, prompt, output)]


def prompt_text(tokens: int, index: int = 0) -> str:
    """A prompt of about ``tokens`` tokens; ``index`` varies it so no two share a cached prefix."""
    words = max(1, round(tokens / TOKENS_PER_WORD))
    rotated = _WORDS[index % len(_WORDS):] + _WORDS[:index % len(_WORDS)]
    return f"{index} " + " ".join(rotated[i % len(rotated)] for i in range(words - 1))


async def drive(endpoint: Endpoint, planned: list[Planned], *, timeout: float, stall: float,
                concurrency_limit: int = 10_000, on_done: Callable[[Record], None] | None = None,
                client: httpx.AsyncClient | None = None) -> list[Record]:
    """Send every planned request at its time; return the records in plan order."""
    own = client is None
    if own:
        client = httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency_limit,
                                                       max_keepalive_connections=min(concurrency_limit, 512)),
                                   headers={"User-Agent": "llmwatch-loadgen"}, follow_redirects=False)
    loop = asyncio.get_running_loop()
    records: list[Record | None] = [None] * len(planned)
    bodies = [request_body(endpoint.api, endpoint.model, prompt_text(p.prompt_tokens, i), p.output_tokens,
                           exact=True)[1] for i, p in enumerate(planned)]
    headers = dict(endpoint.headers)

    async def one(i: int, due: float) -> None:
        outcome = await stream(client, endpoint.url, endpoint.api, bodies[i], headers=headers,
                               timeout=timeout, stall=stall)
        record = Record(planned[i], max(0.0, outcome.sent - due), outcome)
        records[i] = record
        if on_done:
            on_done(record)

    tasks = []
    start = time.perf_counter()
    try:
        for i, p in enumerate(planned):
            due = start + p.at
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            tasks.append(loop.create_task(one(i, due)))
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        if own:
            await client.aclose()
    return [r for r in records if r is not None]


def percentiles(values, qs=(50, 95, 99)) -> dict[str, float | None]:
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    return {f"p{q}": (float(np.percentile(arr, q)) if len(arr) else None) for q in qs}


def summarize(records: list[Record], *, wall_seconds: float, slo_ttft: float, slo_tpot: float) -> dict:
    """The figures of one endpoint's run: latency percentiles, throughput, errors, goodput, lag."""
    ok = [r.outcome for r in records if r.outcome.ok]
    errors: dict[str, int] = {}
    for r in records:
        if not r.outcome.ok:
            errors[r.outcome.outcome] = errors.get(r.outcome.outcome, 0) + 1
    good = [o for o in ok if o.ttft <= slo_ttft and (o.tpot is None or o.tpot <= slo_tpot)]
    tokens = sum(o.tokens for o in ok)
    n = len(records)
    return {
        "requests": n, "ok": len(ok), "errors": errors, "error_ratio": (n - len(ok)) / n if n else None,
        "wall_seconds": wall_seconds,
        "ttft_seconds": percentiles(o.ttft for o in ok), "tpot_seconds": percentiles(o.tpot for o in ok),
        "e2e_seconds": percentiles(o.e2e for o in ok),
        "throughput_requests_per_second": len(ok) / wall_seconds if wall_seconds > 0 else None,
        "throughput_output_tokens_per_second": tokens / wall_seconds if wall_seconds > 0 else None,
        # goodput: requests that met both SLOs, per second and as a share of all sent
        "goodput_requests_per_second": len(good) / wall_seconds if wall_seconds > 0 else None,
        "goodput_ratio": len(good) / n if n else None,
        "slo": {"ttft_seconds": slo_ttft, "tpot_seconds": slo_tpot},
        "send_lag_seconds": percentiles((r.lag for r in records), (50, 99, 100)),
    }
