"""``scripts/loadgen`` (``llmwatch loadgen``): drive OpenAI-compatible endpoints with load.

Requests arrive as a Poisson process at --rate per second for --duration seconds; prompt and
output lengths are drawn from the same distributions as the TTFT simulator (--config takes a
simulator YAML, or --prompt-tokens/--output-tokens give them inline). Each request is streamed
and timed from the client side. Several --url run one after the other with the same requests,
so vLLM, TGI and Ollama are compared on equal terms.

Prints TTFT/TPOT/end-to-end p50/p95/p99, throughput, errors and goodput (requests meeting the
default TTFT and TPOT SLOs of exporters/llmwatch/mixin.py, or --slo-ttft/--slo-tpot), and writes
summary.json, requests.csv and latency.png into a timestamped folder under --out.

Examples:
  scripts/loadgen --url http://localhost:8000 --rate 2 --duration 60
  scripts/loadgen --url vllm=http://gpu:8000 --url tgi=http://gpu:8080 --url ollama=http://gpu:11434 \\
                  --api-of tgi=tgi --api-of ollama=openai --model llama3.2 --rate 1 --duration 120
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
import os
import sys
import time
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from llmwatch.core.checks import url_problem
from llmwatch.tools.loadgen.run import Endpoint, Record, drive, plan, summarize
from llmwatch.upstreams.streaming import APIS
from llmwatch.exporters.probe.targets import model_ids
from llmwatch.queueing.config import ConfigError, SimConfig, TokenDist, load, parse_dist, size_problem

DEFAULT_PROMPT = TokenDist.lognormal_mean_std(512, 256, 8)
DEFAULT_OUTPUT = TokenDist.lognormal_p50_p90(128, 384)


def _dist(text: str) -> TokenDist:
    """``200`` (a constant), or ``mean=1024,std=512``, ``p50=200,p90=600``, ``mu=6,sigma=0.5``,
    ``mode=exponential,mean=300``, each with an optional ``min_value=``."""
    try:
        if "=" not in text:
            return parse_dist({"mode": "constant", "value": float(text)}, "tokens")
        table = {}
        for part in text.split(","):
            key, _, value = part.partition("=")
            table[key.strip()] = value.strip() if key.strip() == "mode" else float(value)
        return parse_dist(table, "tokens")
    except (ValueError, ConfigError) as e:
        raise argparse.ArgumentTypeError(f"bad token distribution {text!r}: {e}") from None


def _endpoint_arg(text: str) -> tuple[str, str]:
    name, sep, url = text.partition("=")
    if not sep:
        name, url = "", text
    problem = url_problem(url, example="http://gpu-host:8000")
    if problem:
        raise argparse.ArgumentTypeError(f"expected URL or NAME=URL with an http(s) base URL: {problem}")
    return name, url.rstrip("/")


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="llmwatch loadgen", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", action="append", type=_endpoint_arg, required=True,
                   help="endpoint base URL, or NAME=URL; repeat to compare endpoints")
    p.add_argument("--api", choices=APIS, default="openai", help="wire format of every endpoint (default openai)")
    p.add_argument("--api-of", action="append", type=_pair, default=[], help="NAME=API for one endpoint")
    p.add_argument("--model", help="model name (default: the first one /v1/models lists)")
    p.add_argument("--model-of", action="append", type=_pair, default=[], help="NAME=MODEL for one endpoint")
    p.add_argument("--api-key-env", help="environment variable holding a Bearer key for every endpoint")
    p.add_argument("--config", type=Path, help="simulator YAML: its arrival rate, duration, seed and token lengths")
    p.add_argument("--rate", type=_positive, help="requests per second (default 1, or the config's)")
    p.add_argument("--duration", type=_positive, help="seconds of arrivals (default 60, or the config's sim_seconds)")
    p.add_argument("--prompt-tokens", type=_dist, help="prompt lengths: 200, mean=1024,std=512, p50=..,p90=..")
    p.add_argument("--output-tokens", type=_dist, help="output lengths (same forms)")
    p.add_argument("--seed", type=int, help="random seed (default 42, or the config's)")
    p.add_argument("--timeout", type=_positive, default=120.0, help="one request at most, seconds (default 120)")
    p.add_argument("--stall", type=_positive, default=30.0, help="no data for this long fails a request (default 30)")
    p.add_argument("--slo-ttft", type=_positive, help="TTFT SLO for goodput (default: the mixin's default TTFT SLO)")
    p.add_argument("--slo-tpot", type=_positive, help="TPOT SLO for goodput (default: the mixin's default TPOT SLO)")
    p.add_argument("--out", type=Path, default=Path("results"), help="results go into OUT/loadgen-<time>/")
    p.add_argument("--no-plot", action="store_true", help="skip latency.png")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def workload_config(args) -> SimConfig:
    """The workload; ConfigError when it is bad or larger than one run can plan (MAX_REQUESTS)."""
    base = load(args.config) if args.config else SimConfig(
        mode="mono", sim_seconds=60.0, warmup_seconds=0.0, random_seed=42, arrival_rate_per_s=1.0,
        prompt_tokens=DEFAULT_PROMPT, output_tokens=DEFAULT_OUTPUT)
    changes = {k: v for k, v in (("arrival_rate_per_s", args.rate), ("sim_seconds", args.duration),
                                 ("random_seed", args.seed), ("prompt_tokens", args.prompt_tokens),
                                 ("output_tokens", args.output_tokens)) if v is not None}
    config = replace(base, **changes)
    if problem := size_problem(config.arrival_rate_per_s, config.sim_seconds, "--rate", "--duration"):
        raise ConfigError([problem])
    return config


def results_folder(out: Path) -> Path:
    """A new folder under ``out`` for this run's files, made before any request is sent, so an
    unwritable --out is found at once and not after the whole run (ConfigError naming it)."""
    folder = out / f"loadgen-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    while folder.exists():
        folder = folder.with_name(folder.name + "-1")
    try:
        folder.mkdir(parents=True)
    except OSError as e:
        raise ConfigError([f"--out {out}: cannot create {folder}: {e.strerror or e}"]) from None
    return folder


def slo_defaults() -> tuple[float, float]:
    """The default TTFT and TPOT SLOs of the mixin, so goodput here means what the dashboards mean."""
    from llmwatch.mixin import MIXIN

    slo = MIXIN.slo.default
    return slo.ttft_p95_seconds or 1.0, slo.tpot_p95_seconds or 0.1


def resolve_model(url: str, api: str, headers: dict[str, str]) -> str:
    if api == "tgi":
        return "tgi"
    response = httpx.get(url + "/v1/models", headers=headers, timeout=10)
    response.raise_for_status()
    return model_ids(response.content, base_only=True)[0]


def endpoints(args) -> list[Endpoint]:
    apis, models = dict(args.api_of), dict(args.model_of)
    headers = {}
    if args.api_key_env:
        key = os.environ.get(args.api_key_env)
        if not key:
            raise ConfigError([f"--api-key-env: environment variable {args.api_key_env} is not set"])
        headers["Authorization"] = f"Bearer {key}"
    names = [name or (httpx.URL(url).host + (f":{httpx.URL(url).port}" if httpx.URL(url).port else ""))
             for name, url in args.url]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:  # results, --api-of and --model-of are keyed by name: one would hide the other
        raise ConfigError([f"--url: endpoint name {name!r} is given more than once; name each endpoint "
                           f"with NAME=URL" for name in duplicates])
    bad_apis = [f"--api-of {name}={api}: api must be one of {', '.join(APIS)}"
                for name, api in apis.items() if api not in APIS]
    unknown = (set(apis) | set(models)) - set(names)
    if unknown:
        bad_apis.append(f"--api-of/--model-of name unknown endpoints: {', '.join(sorted(unknown))}")
    if bad_apis:
        raise ConfigError(bad_apis)
    out = []
    for name, (_, url) in zip(names, args.url):
        api = apis.get(name, args.api)
        model = models.get(name) or args.model
        if not model:
            try:
                model = resolve_model(url, api, headers)
            except (httpx.HTTPError, ValueError, KeyError) as e:
                raise SystemExit(f"loadgen: {name}: cannot read {url}/v1/models to pick a model ({e}); "
                                 f"give --model") from None
        out.append(Endpoint(name, url, api, model, tuple(headers.items())))
    return out


def write_results(folder: Path, config: SimConfig, results: dict[str, dict], records: dict[str, list[Record]],
                  plot: bool) -> None:
    workload = {"rate_per_s": config.arrival_rate_per_s, "duration_seconds": config.sim_seconds,
                "seed": config.random_seed, "prompt_tokens": asdict(config.prompt_tokens),
                "output_tokens": asdict(config.output_tokens)}
    (folder / "summary.json").write_text(json.dumps({"workload": workload, "endpoints": results}, indent=2) + "\n")
    with (folder / "requests.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["endpoint", "planned_at_s", "prompt_tokens", "output_tokens_planned", "send_lag_s",
                         "outcome", "status", "ttft_s", "tpot_s", "e2e_s", "output_tokens", "detail"])
        for name, rows in records.items():
            for r in rows:
                o = r.outcome
                writer.writerow([name, f"{r.planned.at:.6f}", r.planned.prompt_tokens, r.planned.output_tokens,
                                 f"{r.lag:.6f}", o.outcome, o.status, _num(o.ttft), _num(o.tpot), _num(o.e2e),
                                 o.tokens, o.detail])
    if plot:
        from llmwatch.tools.loadgen.plots import latency_plot

        latency_plot(records, results, folder / "latency.png")


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def print_table(console: Console, results: dict[str, dict]) -> None:
    table = Table(title="load test (milliseconds unless named)")
    table.add_column("")
    for name in results:
        table.add_column(name, justify="right")
    rows = []
    for metric in ("ttft", "tpot", "e2e"):
        for q in ("p50", "p95", "p99"):
            rows.append((f"{metric.upper()} {q}", [_ms(r[f"{metric}_seconds"][q]) for r in results.values()]))
    rows += [
        ("requests ok / sent", [f"{r['ok']} / {r['requests']}" for r in results.values()]),
        ("errors", [", ".join(f"{k} {v}" for k, v in sorted(r["errors"].items())) or "none" for r in results.values()]),
        ("requests/s", [f"{r['throughput_requests_per_second']:.2f}" for r in results.values()]),
        ("output tokens/s", [f"{r['throughput_output_tokens_per_second']:.0f}" for r in results.values()]),
        ("goodput (meets SLOs)", [f"{r['goodput_ratio'] * 100:.1f} %" if r["goodput_ratio"] is not None else "-"
                                  for r in results.values()]),
        ("send lag p99", [_ms(r["send_lag_seconds"]["p99"]) for r in results.values()]),
    ]
    for label, values in rows:
        table.add_row(label, *values)
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config = workload_config(args)
        targets = endpoints(args)
        folder = results_folder(args.out)
    except ConfigError as e:
        for problem in e.problems:
            print(f"loadgen: {problem}", file=sys.stderr)
        return 2
    slo_ttft, slo_tpot = slo_defaults()
    slo_ttft, slo_tpot = args.slo_ttft or slo_ttft, args.slo_tpot or slo_tpot
    planned = plan(config)
    console = Console(stderr=True)
    console.print(f"{len(planned)} requests at {config.arrival_rate_per_s:g}/s over {config.sim_seconds:g} s "
                  f"to {', '.join(f'{e.name} ({e.api}, {e.model})' for e in targets)}")
    results, records = {}, {}
    for endpoint in targets:
        with Progress(TextColumn(f"{endpoint.name}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TextColumn("{task.fields[failed]} failed"), console=console, disable=args.quiet,
                      transient=False) as progress:
            task = progress.add_task(endpoint.name, total=len(planned), failed=0)
            failed = 0

            def done(record: Record) -> None:
                nonlocal failed
                failed += 0 if record.outcome.ok else 1
                progress.update(task, advance=1, failed=failed)

            started = time.perf_counter()
            rows = asyncio.run(drive(endpoint, planned, timeout=args.timeout, stall=args.stall, on_done=done))
            wall = time.perf_counter() - started
        records[endpoint.name] = rows
        results[endpoint.name] = summarize(rows, wall_seconds=wall, slo_ttft=slo_ttft, slo_tpot=slo_tpot) | {
            "url": endpoint.url, "api": endpoint.api, "model": endpoint.model}
    print_table(Console(), results)
    write_results(folder, config, results, records, plot=not args.no_plot)
    print(f"results: {folder}")
    return 0
