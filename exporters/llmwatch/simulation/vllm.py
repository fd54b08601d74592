"""A simulated vLLM server: ``/metrics`` as four generations of vLLM write it, plus the JSON endpoints.

Written from vLLM's metric definitions (V0 ``vllm/engine/metrics.py``, V1
``vllm/v1/metrics/loggers.py`` and ``buckets.py``; as vLLM defines them), not from its
code. One :class:`Engine` holds the state of a serving engine in vLLM's newest terms; a
:class:`Generation` says how a given vLLM version names and shapes it: V0 has no ``engine`` label
and no ``*_created`` lines, older buckets, ``gpu_cache_usage_perc``; the transition releases
send old and new names side by side; the newest adds the 2026 families. Label order varies the
way real outputs do. Used by the tests, the benchmark and the demo.
"""

from __future__ import annotations

import json
import random
from bisect import bisect_left
from dataclasses import dataclass, field

from prometheus_client.utils import floatToGoString

from llmwatch.simulation.server import FakeServer

# ---- buckets (vLLM's values) -------------------------------------------------------------------

TTFT_OLD = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
TTFT_NEW = TTFT_OLD + (20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_OLD = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
ITL_NEW = ITL_OLD + (5.0, 7.5, 10.0, 20.0, 40.0, 80.0)
LATENCY_OLD = (1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0)
LATENCY_NEW = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
               480.0, 960.0, 1920.0, 7680.0)
ITERATION_OLD = (1.0, 2.0, 4.0, *map(float, range(8, 513, 8)))  # CUDA-graph batch sizes (~v0.6.4)
ITERATION_NEW = (1.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0)
PARAMS_N = (1.0, 2.0, 5.0, 10.0, 20.0)
PREEMPTIONS = (1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0)
HTTP_DURATION = (0.1, 0.5, 1.0)
HTTP_DURATION_HIGHR = (0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0,
                       7.5, 10.0, 30.0, 60.0)


def tokens_buckets(max_model_len: int) -> tuple[float, ...]:
    """vLLM's 1-2-5 series up to the context length (so each container has its own set)."""
    out, mantissa, exponent = [], [1, 2, 5], 0
    while True:
        for m in mantissa:
            value = m * 10 ** exponent
            if value > max_model_len:
                return tuple(map(float, out))
            out.append(value)
        exponent += 1


class Histogram:
    """Counts over the union of every bucket set a generation may print."""

    def __init__(self, *bucket_sets: tuple[float, ...]):
        self.bounds = sorted(set().union(*bucket_sets))
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float, n: int = 1) -> None:
        self.counts[bisect_left(self.bounds, value)] += n
        self.sum += value * n

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self, bounds: tuple[float, ...]) -> list[tuple[str, int]]:
        running, total, out = 0, [], []
        for i, count in enumerate(self.counts[:-1]):
            running += count
            total.append(running)
        for b in bounds:
            out.append((floatToGoString(b), total[self.bounds.index(b)]))
        out.append(("+Inf", self.count))
        return out


@dataclass
class Engine:
    """One engine's state in the newest vocabulary; the numbers a scrape would show."""

    model_name: str = "qwen3-32b"
    root: str = "Qwen/Qwen3-32B"
    max_model_len: int = 32768
    running: int = 0
    waiting: int = 0
    waiting_deferred: int = 0
    kv_cache_usage: float = 0.0
    prompt_tokens: int = 0
    generation_tokens: int = 0
    cached_prompt_tokens: int = 0
    preemptions: int = 0
    finished: dict[str, int] = field(default_factory=lambda: {"stop": 0, "length": 0, "abort": 0})
    lora_adapters: tuple[str, ...] = ()
    speculative_tokens: int = 0  # draft tokens proposed per step (num_speculative_tokens); 0: none
    spec_drafts: int = 0
    spec_accepted: list[int] = field(default_factory=list)  # accepted draft tokens, by position in the draft
    started: float = 1_793_000_000.0
    histograms: dict[str, Histogram] = field(default_factory=dict)

    def __post_init__(self):
        lengths = tokens_buckets(self.max_model_len)
        for name, sets in {"ttft": (TTFT_OLD, TTFT_NEW), "itl": (ITL_OLD, ITL_NEW), "tpot": (ITL_NEW,),
                           "e2e": (LATENCY_OLD, LATENCY_NEW), "queue": (LATENCY_OLD, LATENCY_NEW),
                           "prefill": (LATENCY_OLD, LATENCY_NEW), "decode": (LATENCY_OLD, LATENCY_NEW),
                           "inference": (LATENCY_OLD, LATENCY_NEW), "prompt_len": (lengths,),
                           "generation_len": (lengths,), "max_generation": (lengths,), "max_tokens": (lengths,),
                           "prefill_kv": (lengths,), "params_n": (PARAMS_N,), "iteration": (ITERATION_OLD, ITERATION_NEW),
                           "request_preemptions": (PREEMPTIONS,)}.items():
            self.histograms.setdefault(name, Histogram(*sets))

    def finish(self, *, prompt: int, generated: int, ttft: float, itl: float, queue: float, cached: int = 0,
               reason: str = "stop") -> None:
        """Account one finished request, as vLLM does when it completes."""
        h = self.histograms
        decode = itl * max(generated - 1, 0)
        self.prompt_tokens += prompt
        self.generation_tokens += generated
        self.cached_prompt_tokens += cached
        self.finished[reason] = self.finished.get(reason, 0) + 1
        h["ttft"].observe(ttft)
        h["itl"].observe(itl, max(generated - 1, 1))
        h["tpot"].observe(itl)
        h["e2e"].observe(ttft + decode)
        h["queue"].observe(queue)
        h["prefill"].observe(max(ttft - queue, 0.0))
        h["decode"].observe(decode)
        h["inference"].observe(max(ttft - queue, 0.0) + decode)
        h["prompt_len"].observe(prompt)
        h["generation_len"].observe(generated)
        h["max_generation"].observe(generated)
        h["max_tokens"].observe(min(self.max_model_len, max(generated, 256)))
        h["prefill_kv"].observe(prompt - cached)
        h["params_n"].observe(1)
        h["iteration"].observe(min(prompt, 8192))
        if self.speculative_tokens:
            self._speculate(generated)

    def _speculate(self, generated: int) -> None:
        """Drafts for one request: each step proposes ``speculative_tokens`` tokens and keeps a
        prefix of them, position i with probability 0.8^(i+1); each step also emits one token of
        its own, so the steps are the generated tokens over the expected tokens per step."""
        keep = [0.8 ** (i + 1) for i in range(self.speculative_tokens)]
        drafts = max(1, round(generated / (1 + sum(keep))))
        self.spec_drafts += drafts
        if len(self.spec_accepted) < len(keep):
            self.spec_accepted += [0] * (len(keep) - len(self.spec_accepted))
        for i, share in enumerate(keep):
            self.spec_accepted[i] += round(drafts * share)


def busy_engine(seed: int = 1, requests: int = 300, **kwargs) -> Engine:
    """An engine after ``requests`` requests with lognormal lengths and latencies (repeatable)."""
    rng = random.Random(seed)
    engine = Engine(**kwargs)
    for _ in range(requests):
        prompt = min(int(rng.lognormvariate(6.5, 0.8)) + 1, engine.max_model_len // 2)
        generated = min(int(rng.lognormvariate(5.0, 0.7)) + 1, engine.max_model_len - prompt)
        queue = rng.expovariate(20)
        reason = "length" if rng.random() < 0.05 else ("abort" if rng.random() < 0.01 else "stop")
        engine.finish(prompt=prompt, generated=generated, ttft=queue + prompt / 9000 + rng.uniform(0.01, 0.05),
                      itl=rng.uniform(0.012, 0.03), queue=queue, cached=int(prompt * rng.uniform(0, 0.4)),
                      reason=reason)
    engine.running, engine.waiting, engine.kv_cache_usage = 4, 1, 0.37
    engine.preemptions = 2
    return engine


# ---- generations --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Generation:
    version: str
    v1: bool  # V1 engine: `engine` label, *_created lines
    new_buckets: bool  # TTFT to 2560 s, ITL to 80 s, latency to 7680 s (~v0.8.5)
    families: frozenset[str]  # which families of FAMILY_NAMES this version sends
    label_order: str = "declared"  # "declared": model_name, engine, ..., le last; "sorted": as multiprocess mode
    http_metrics: bool = True


_ALWAYS = {"num_requests_running", "num_requests_waiting", "num_preemptions", "prompt_tokens", "generation_tokens",
           "request_success", "ttft", "e2e", "prompt_len", "generation_len", "params_n", "cache_config"}
_V0 = {"num_requests_swapped", "gpu_cache_usage_perc", "cpu_cache_usage_perc", "gpu_prefix_cache_hit_rate",
       "cpu_prefix_cache_hit_rate", "time_per_output_token", "queue", "prefill", "decode", "inference",
       "max_generation", "max_tokens", "iteration", "time_in_queue_requests", "lora_requests_info",
       "spec_decode"}
_V1_COMMON = {"queue", "prefill", "decode", "inference", "max_generation", "max_tokens", "iteration",
              "lora_requests_info", "spec_decode"}

GENERATIONS = {
    # V0, fresh start: HELP/TYPE without samples for labelled metrics, the throughput gauges
    "0.5.3": Generation("0.5.3", v1=False, new_buckets=False, http_metrics=False,
                        families=frozenset(_ALWAYS | {"num_requests_swapped", "gpu_cache_usage_perc",
                                                      "cpu_cache_usage_perc", "avg_throughput",
                                                      "time_per_output_token"})),
    "0.6.4": Generation("0.6.4", v1=False, new_buckets=False, families=frozenset(_ALWAYS | _V0)),
    # transition: both KV-cache names and both prefix-cache counter names
    "0.10.1": Generation("0.10.1", v1=True, new_buckets=True,
                         families=frozenset(_ALWAYS | _V1_COMMON | {"gpu_cache_usage_perc", "kv_cache_usage_perc",
                                                                    "gpu_prefix_cache", "prefix_cache",
                                                                    "time_per_output_token"})),
    # 0.11: inter-token latency arrives beside the deprecated time_per_output_token
    "0.11.0": Generation("0.11.0", v1=True, new_buckets=True, label_order="sorted",
                         families=frozenset(_ALWAYS | _V1_COMMON | {"kv_cache_usage_perc", "prefix_cache",
                                                                    "time_per_output_token", "itl", "tpot"})),
    "0.28.0": Generation("0.28.0", v1=True, new_buckets=True, label_order="sorted",
                         families=frozenset(_ALWAYS | _V1_COMMON | {
                             "kv_cache_usage_perc", "prefix_cache", "itl", "tpot", "waiting_by_reason",
                             "sleep_state", "prompt_tokens_by_source", "prompt_tokens_cached", "prefill_kv",
                             "request_preemptions"})),
}
NEWEST = "0.28.0"


class _Writer:
    def __init__(self, gen: Generation, engines: list[Engine], now: float):
        self.gen, self.engines, self.now = gen, engines, now
        self.lines: list[str] = []

    def labels(self, engine_index: int, engine: Engine, extra: dict[str, str] | None = None,
               le: str | None = None) -> str:
        pairs = [("model_name", engine.model_name)]
        if self.gen.v1:
            pairs.append(("engine", str(engine_index)))
        pairs += list((extra or {}).items())
        if self.gen.label_order == "sorted":
            pairs.sort()
            if le is not None:
                pairs.insert(0, ("le", le))
        elif le is not None:
            pairs.append(("le", le))
        return "{" + ",".join(f'{k}="{v}"' for k, v in pairs) + "}"

    def header(self, name: str, type_: str, help_: str) -> None:
        self.lines += [f"# HELP {name} {help_}", f"# TYPE {name} {type_}"]

    def created(self, name: str, help_: str, series: list[str]) -> None:
        if self.gen.v1:
            self.header(name + "_created", "gauge", help_)
            self.lines += [f"{name}_created{s} {floatToGoString(e.started)}" for s, e in series]

    def gauge(self, name: str, help_: str, value, extra=None) -> None:
        self.header(name, "gauge", help_)
        for i, e in enumerate(self.engines):
            for labels, v in (value(e) if extra else [({}, value(e))]):
                self.lines.append(f"{name}{self.labels(i, e, labels)} {floatToGoString(v)}")

    def counter(self, name: str, help_: str, value, by: str | None = None) -> None:
        self.header(name + "_total", "counter", help_)
        series = []
        for i, e in enumerate(self.engines):
            for label_value, v in (value(e).items() if by else [(None, value(e))]):
                labels = self.labels(i, e, {by: label_value} if by else None)
                self.lines.append(f"{name}_total{labels} {floatToGoString(v)}")
                series.append((labels, e))
        self.created(name, help_, series)

    def histogram(self, name: str, help_: str, key: str, bounds) -> None:
        self.header(name, "histogram", help_)
        series = []
        for i, e in enumerate(self.engines):
            h = e.histograms[key]
            chosen = bounds(e) if callable(bounds) else bounds
            for le, count in h.cumulative(chosen):
                self.lines.append(f"{name}_bucket{self.labels(i, e, le=le)} {floatToGoString(count)}")
            plain = self.labels(i, e)
            self.lines += [f"{name}_count{plain} {floatToGoString(h.count)}",
                           f"{name}_sum{plain} {floatToGoString(round(h.sum, 6))}"]
            series.append((plain, e))
        self.created(name, help_, series)


def render_metrics(version: str, engines: list[Engine], *, fresh: bool = False, now: float = 1_795_000_000.0) -> str:
    """The ``/metrics`` body a vLLM ``version`` would serve for these engines (data-parallel ranks).

    ``fresh`` renders a just-started V0 server, whose labelled metrics have HELP/TYPE but no samples.
    """
    gen = GENERATIONS[version]
    w = _Writer(gen, engines, now)
    has = gen.families.__contains__
    new = gen.new_buckets
    if fresh:
        for name, type_ in (("vllm:num_requests_running", "gauge"), ("vllm:prompt_tokens_total", "counter"),
                            ("vllm:time_to_first_token_seconds", "histogram")):
            w.header(name, type_, "Declared, not yet observed.")
        return "\n".join(w.lines) + "\n"

    w.gauge("vllm:num_requests_running", "Number of requests in model execution batches.", lambda e: e.running)
    if has("num_requests_swapped"):
        w.gauge("vllm:num_requests_swapped", "Number of requests swapped to CPU.", lambda e: 0)
    w.gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", lambda e: e.waiting)
    if has("waiting_by_reason"):
        w.gauge("vllm:num_requests_waiting_by_reason", "Number of requests waiting, by reason.",
                lambda e: [({"reason": "capacity"}, e.waiting - e.waiting_deferred),
                           ({"reason": "deferred"}, e.waiting_deferred)], extra=True)
    if has("sleep_state"):
        w.gauge("vllm:engine_sleep_state", "Engine sleep state; 1 for the current state.",
                lambda e: [({"sleep_state": s}, 1 if s == "awake" else 0)
                           for s in ("awake", "weights_offloaded", "discard_all")], extra=True)
    if has("gpu_cache_usage_perc"):
        w.gauge("vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage.",
                lambda e: e.kv_cache_usage)
    if has("cpu_cache_usage_perc"):
        w.gauge("vllm:cpu_cache_usage_perc", "CPU KV-cache usage. 1 means 100 percent usage.", lambda e: 0)
    if has("kv_cache_usage_perc"):
        w.gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", lambda e: e.kv_cache_usage)
    if has("gpu_prefix_cache_hit_rate"):
        w.gauge("vllm:gpu_prefix_cache_hit_rate", "GPU prefix cache block hit rate.",
                lambda e: round(e.cached_prompt_tokens / max(e.prompt_tokens, 1), 6))
        w.gauge("vllm:cpu_prefix_cache_hit_rate", "CPU prefix cache block hit rate.", lambda e: 0)
    if has("avg_throughput"):
        w.gauge("vllm:avg_prompt_throughput_toks_per_s", "Average prefill throughput in tokens/s.", lambda e: 812.5)
        w.gauge("vllm:avg_generation_throughput_toks_per_s", "Average generation throughput in tokens/s.",
                lambda e: 203.1)
    for prefix in ("gpu_prefix_cache", "prefix_cache"):
        if has(prefix):
            w.counter(f"vllm:{prefix}_queries", "Prefix cache queries, in terms of number of queried tokens.",
                      lambda e: e.prompt_tokens)
            w.counter(f"vllm:{prefix}_hits", "Prefix cache hits, in terms of number of cached tokens.",
                      lambda e: e.cached_prompt_tokens)
    w.counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.", lambda e: e.preemptions)
    w.counter("vllm:prompt_tokens", "Number of prefill tokens processed.", lambda e: e.prompt_tokens)
    if has("prompt_tokens_by_source"):
        w.counter("vllm:prompt_tokens_by_source", "Number of prompt tokens by source.",
                  lambda e: {"local_compute": e.prompt_tokens - e.cached_prompt_tokens,
                             "local_cache_hit": e.cached_prompt_tokens, "external_kv_transfer": 0}, by="source")
    if has("prompt_tokens_cached"):
        w.counter("vllm:prompt_tokens_cached", "Number of cached prompt tokens (local and external).",
                  lambda e: e.cached_prompt_tokens)
    w.counter("vllm:generation_tokens", "Number of generation tokens processed.", lambda e: e.generation_tokens)
    w.counter("vllm:request_success", "Count of successfully processed requests.", lambda e: e.finished,
              by="finished_reason")
    lengths = lambda e: tokens_buckets(e.max_model_len)  # noqa: E731
    w.histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", "ttft",
                TTFT_NEW if new else TTFT_OLD)
    if has("time_per_output_token"):
        w.histogram("vllm:time_per_output_token_seconds", "Histogram of time per output token in seconds.", "itl",
                    ITL_NEW if new else ITL_OLD)
    if has("itl"):
        w.histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", "itl", ITL_NEW)
    if has("tpot"):
        w.histogram("vllm:request_time_per_output_token_seconds",
                    "Histogram of time_per_output_token_seconds per request.", "tpot", ITL_NEW)
    latency = LATENCY_NEW if new else LATENCY_OLD
    w.histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", "e2e", latency)
    for key, name in (("queue", "queue"), ("inference", "inference"), ("prefill", "prefill"), ("decode", "decode")):
        if has(key):
            w.histogram(f"vllm:request_{name}_time_seconds", f"Histogram of time spent in {name.upper()} phase.",
                        key, latency)
    if has("time_in_queue_requests"):
        w.histogram("vllm:time_in_queue_requests", "Histogram of time the request spent in the queue in seconds.",
                    "queue", latency)
    w.histogram("vllm:request_prompt_tokens", "Number of prefill tokens processed.", "prompt_len", lengths)
    w.histogram("vllm:request_generation_tokens", "Number of generation tokens processed.", "generation_len", lengths)
    if has("max_generation"):
        w.histogram("vllm:request_max_num_generation_tokens", "Histogram of maximum number of requested generation "
                    "tokens.", "max_generation", lengths)
    if has("max_tokens"):
        w.histogram("vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.",
                    "max_tokens", lengths)
    if has("prefill_kv"):
        w.histogram("vllm:request_prefill_kv_computed_tokens", "Histogram of new KV tokens computed during prefill.",
                    "prefill_kv", lengths)
    w.histogram("vllm:request_params_n", "Histogram of the n request parameter.", "params_n", PARAMS_N)
    if has("iteration"):
        w.histogram("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.", "iteration",
                    ITERATION_NEW if new else ITERATION_OLD)
    if has("request_preemptions"):
        w.histogram("vllm:request_num_preemptions", "Number of preemptions per finished request.",
                    "request_preemptions", PREEMPTIONS)
    _cache_config(w)
    if has("spec_decode") and any(e.speculative_tokens for e in engines):
        _spec_decode(w)
    if has("lora_requests_info") and any(e.lora_adapters for e in engines):
        w.header("vllm:lora_requests_info", "gauge", "Running stats on lora requests.")
        adapters = ",".join(dict.fromkeys(a for e in engines for a in e.lora_adapters))  # one series, no engine label
        w.lines.append(f'vllm:lora_requests_info{{max_lora="4",running_lora_adapters="{adapters}",'
                       f'waiting_lora_adapters=""}} {floatToGoString(now)}')
    if gen.http_metrics:
        _http(w, engines)
    _process(w, engines)
    return "\n".join(w.lines) + "\n"


def _cache_config(w: _Writer) -> None:
    w.header("vllm:cache_config_info", "gauge", "Information of the LLMEngine CacheConfig")
    for i, e in enumerate(w.engines):
        fields = {"block_size": "16", "cache_dtype": "auto", "enable_prefix_caching": str(w.gen.v1),
                  "gpu_memory_utilization": "0.9", "num_gpu_blocks": str(41000 - 1000 * i)}
        if not w.gen.v1:
            fields |= {"num_cpu_blocks": "2048", "swap_space_bytes": "4294967296"}
        else:
            fields["engine"] = str(i)
        w.lines.append("vllm:cache_config_info{" + ",".join(f'{k}="{v}"' for k, v in sorted(fields.items()))
                       + "} 1.0")


def _spec_decode(w: _Writer) -> None:
    """Speculative decoding, only on servers started with a speculative config: V1's counters
    (vllm/v1/spec_decode/metrics.py), or V0's counters and gauges (vllm/engine/metrics.py)."""
    drafted = lambda e: e.spec_drafts * e.speculative_tokens  # noqa: E731
    if w.gen.v1:
        w.counter("vllm:spec_decode_num_drafts", "Number of spec decoding drafts.", lambda e: e.spec_drafts)
        w.counter("vllm:spec_decode_num_draft_tokens", "Number of draft tokens.", drafted)
        w.counter("vllm:spec_decode_num_accepted_tokens", "Number of accepted tokens.", lambda e: sum(e.spec_accepted))
        w.counter("vllm:spec_decode_num_accepted_tokens_per_pos", "Accepted tokens per draft position.",
                  lambda e: {str(i): n for i, n in enumerate(e.spec_accepted)}, by="position")
        return
    emitted = lambda e: sum(e.spec_accepted) + e.spec_drafts  # noqa: E731
    w.gauge("vllm:spec_decode_draft_acceptance_rate", "Speculative token acceptance rate.",
            lambda e: round(sum(e.spec_accepted) / max(drafted(e), 1), 6))
    w.gauge("vllm:spec_decode_efficiency", "Speculative decoding system efficiency.",
            lambda e: round(emitted(e) / max(e.spec_drafts * (e.speculative_tokens + 1), 1), 6))
    w.counter("vllm:spec_decode_num_accepted_tokens", "Number of accepted tokens.", lambda e: sum(e.spec_accepted))
    w.counter("vllm:spec_decode_num_draft_tokens", "Number of draft tokens.", drafted)
    w.counter("vllm:spec_decode_num_emitted_tokens", "Number of emitted tokens.", emitted)


def _http(w: _Writer, engines: list[Engine]) -> None:
    """prometheus-fastapi-instrumentator's families, as vLLM's API server exposes them."""
    served = sum(sum(e.finished.values()) for e in engines)
    handlers = [("/v1/chat/completions", "POST", served), ("/v1/completions", "POST", served // 7),
                ("/metrics", "GET", 1200), ("/health", "GET", 2400), ("/v1/models", "GET", 60)]
    w.header("http_requests_total", "counter", "Total number of requests by method, status and handler.")
    for handler, method, count in handlers:
        for status, share in (("2xx", 0.98), ("4xx", 0.015), ("5xx", 0.005)):
            w.lines.append(f'http_requests_total{{handler="{handler}",method="{method}",status="{status}"}} '
                           f'{floatToGoString(float(int(count * share)))}')
    w.header("http_request_duration_highr_seconds", "histogram", "Latency with many buckets but no API specific labels.")
    total = sum(c for _, _, c in handlers)
    for i, b in enumerate(HTTP_DURATION_HIGHR):
        w.lines.append(f'http_request_duration_highr_seconds_bucket{{le="{floatToGoString(b)}"}} '
                       f'{floatToGoString(float(int(total * min(1.0, 0.5 + i * 0.03))))}')
    w.lines += [f'http_request_duration_highr_seconds_bucket{{le="+Inf"}} {floatToGoString(float(total))}',
                f"http_request_duration_highr_seconds_count {floatToGoString(float(total))}",
                f"http_request_duration_highr_seconds_sum {floatToGoString(total * 0.8)}"]
    w.header("http_request_duration_seconds", "histogram", "Latency with only few buckets by handler.")
    for handler, method, count in handlers:
        labels = f'handler="{handler}",method="{method}"'
        for i, b in enumerate(HTTP_DURATION):
            w.lines.append(f'http_request_duration_seconds_bucket{{{labels},le="{floatToGoString(b)}"}} '
                           f'{floatToGoString(float(int(count * (0.4 + 0.2 * i))))}')
        w.lines += [f'http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {floatToGoString(float(count))}',
                    f"http_request_duration_seconds_count{{{labels}}} {floatToGoString(float(count))}",
                    f"http_request_duration_seconds_sum{{{labels}}} {floatToGoString(count * 0.8)}"]


def _process(w: _Writer, engines: list[Engine]) -> None:
    """python_* and process_* families, which the exporter does not re-expose by default."""
    w.header("python_gc_objects_collected_total", "counter", "Objects collected during gc")
    w.lines += [f'python_gc_objects_collected_total{{generation="{g}"}} {floatToGoString(1000.0 * (g + 1))}'
                for g in range(3)]
    w.header("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.")
    w.lines.append("process_resident_memory_bytes 4.2e+09")
    w.header("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.")
    w.lines.append(f"process_start_time_seconds {floatToGoString(engines[0].started)}")


def models_json(engine: Engine, version: str) -> dict:
    """``/v1/models``: the base model, then one card per LoRA adapter (parent = base model)."""
    card = {"id": engine.model_name, "object": "model", "created": int(engine.started), "owned_by": "vllm",
            "root": engine.root, "parent": None, "max_model_len": engine.max_model_len, "permission": []}
    if version.startswith("0.5"):  # the early protocol had no max_model_len
        card.pop("max_model_len")
    cards = [card] + [{**card, "id": name, "root": f"/adapters/{name}", "parent": engine.model_name}
                      for name in engine.lora_adapters]
    return {"object": "list", "data": cards}


# ---- HTTP server --------------------------------------------------------------------------------

class FakeVllmServer(FakeServer):
    """A vLLM server on loopback. ``mode``: ok, garbage, error (500 everywhere), hang, unhealthy.

    ``latency`` delays every answer; ``hang`` holds requests until :meth:`release` or close.
    ``body`` overrides the /metrics text (a fixture file, say).
    """

    def __init__(self, version: str = NEWEST, engines: list[Engine] | None = None, *, mode: str = "ok",
                 latency: float = 0.0, body: str | None = None, host: str = "127.0.0.1", port: int = 0):
        super().__init__(hang=mode == "hang", latency=latency, host=host, port=port)
        self.version, self.engines = version, engines or [busy_engine()]
        self.mode, self.body = mode, body

    def answer(self, path: str, headers: dict[str, str]) -> tuple[int, str, bytes]:
        if self.mode == "error":
            return 500, "text/plain", b"Internal Server Error"
        path = path.split("?", 1)[0]
        if path == "/metrics":
            if self.mode == "garbage":
                return 200, "text/html", b"<html><body>\x00\xff{not: metrics}\nvllm:broken{le=} x y z\n</body></html>"
            text = self.body if self.body is not None else render_metrics(self.version, self.engines)
            return 200, "text/plain; version=0.0.4; charset=utf-8", text.encode()
        if path == "/health":
            return (503, "application/json", b'{"error": "EngineDeadError"}') if self.mode == "unhealthy" else \
                (200, "application/json", b"")
        if path == "/version":
            return 200, "application/json", json.dumps({"version": self.version}).encode()
        if path == "/v1/models":
            return 200, "application/json", json.dumps(models_json(self.engines[0], self.version)).encode()
        return 404, "application/json", b'{"detail": "Not Found"}'
