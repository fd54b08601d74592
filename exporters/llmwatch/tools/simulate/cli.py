"""``llmwatch simulate [run|compare|sweep|capacity] --config FILE.yaml``.

run       one simulation; a table, or ``--json``; ``--plot`` writes the TTFT distribution.
compare   the same workload on the monolithic and the disaggregated cluster of the config.
sweep     TTFT percentiles over arrival rates (``--rates``) and/or prefill rates (``--prefill-rates``).
capacity  the highest arrival rate whose TTFT p95 (``--quantile``) meets ``--slo`` seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

from llmwatch.queueing import capacity, engine
from llmwatch.tools.simulate import plots
from llmwatch.queueing.config import MAX_REQUESTS, ConfigError, SimConfig, load

COMMANDS = ("run", "compare", "sweep", "capacity")
SHOWN = ("completed", "ttft_mean_s", "ttft_p50_s", "ttft_p90_s", "ttft_p95_s", "ttft_p99_s", "queue_wait_mean_s",
         "throughput_rps", "gpu_utilization", "offered_load", "prefill_utilization", "decode_utilization")


def _values(text: str) -> list[float]:
    """``1,2,5`` or ``START:STOP:COUNT`` (evenly spaced, both ends included)."""
    try:
        if ":" in text:
            start, stop, count = text.split(":")
            n = int(count)
            if n < 2:
                raise ValueError
            return [float(start) + (float(stop) - float(start)) * i / (n - 1) for i in range(n)]
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,2,5 or START:STOP:COUNT, got {text!r}") from None
    if not values or any(not math.isfinite(v) or v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"values must be positive numbers, got {text!r}")
    return values


def _request_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 < value <= MAX_REQUESTS:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_REQUESTS:,}, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmwatch simulate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", choices=COMMANDS, default="run")
    parser.add_argument("--config", required=True, type=Path, help="simulator YAML (keys: config/simulator/example.yaml)")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.add_argument("--plot", type=Path, help="write a PNG plot here")
    parser.add_argument("--mode", choices=("mono", "disagg"), help="override the config's mode")
    parser.add_argument("--rates", type=_values, help="sweep: arrival rates (requests/s)")
    parser.add_argument("--prefill-rates", type=_values, help="sweep: prefill tokens/s per GPU")
    parser.add_argument("--requests", type=_request_count,
                        help="sweep/capacity: requests per simulation (sim_seconds = requests / rate, 10%% warm-up)")
    parser.add_argument("--slo", type=float, default=1.0, help="capacity: TTFT bound in seconds (default 1)")
    parser.add_argument("--quantile", type=float, default=0.95, help="capacity: TTFT quantile (default 0.95)")
    return parser


def _table(rows: list[dict], title: str, *, across: bool) -> None:
    """One column per result (run, compare) or one row per result (sweep), whichever fits a terminal."""
    from rich.console import Console
    from rich.table import Table

    def shown(value) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    keys = [k for k in ("mode", "arrival_rate_per_s", "prefill_tokens_per_s", *SHOWN,
                        "max_rate_per_s", "saturation_rate_per_s") if any(k in r for r in rows)]
    table = Table(title=title)
    if across:
        table.add_column("")
        for _ in rows:
            table.add_column("", justify="right")
        for key in keys:
            table.add_row(key, *(shown(r.get(key, "")) for r in rows))
    else:
        keys = [k for k in keys if k in ("arrival_rate_per_s", "prefill_tokens_per_s", "ttft_p50_s", "ttft_p90_s",
                                         "ttft_p99_s", "gpu_utilization")]
        for key in keys:
            table.add_column(key.replace("_per_s", "/s").replace("_s", " s").replace("_", " "), justify="right")
        for r in rows:
            table.add_row(*(shown(r.get(k, "")) for k in keys))
    Console().print(table)


def _with_prefill_rate(config: SimConfig, rate: float) -> SimConfig:
    if config.mode == "mono":
        return replace(config, cluster_mono=replace(config.cluster_mono, prefill_tokens_per_s=rate))
    return replace(config, cluster_disagg=replace(config.cluster_disagg, prefill_tokens_per_s=rate))


def _sized(config: SimConfig, requests: int | None) -> SimConfig:
    if not requests:
        return config
    seconds = requests / config.arrival_rate_per_s
    return replace(config, sim_seconds=seconds, warmup_seconds=seconds / 10)


def sweep(config: SimConfig, rates: list[float], prefill_rates: list[float] | None, requests: int | None,
          progress: bool = True) -> list[dict]:
    from rich.console import Console
    from rich.progress import Progress

    points = [(p, r) for p in (prefill_rates or [None]) for r in rates]
    rows = []
    with Progress(console=Console(stderr=True), disable=not progress, transient=True) as bar:
        task = bar.add_task("simulating", total=len(points))
        for prefill_rate, rate in points:
            point = config if prefill_rate is None else _with_prefill_rate(config, prefill_rate)
            result = engine.run(_sized(point.with_rate(rate), requests))
            row = result.as_dict()
            if prefill_rate is not None:
                row["prefill_tokens_per_s"] = prefill_rate
                row["series"] = f"prefill {prefill_rate:g} tok/s"
            rows.append(row)
            bar.advance(task)
    return rows


def _refuse(problems: list[str]) -> int:
    for problem in problems:
        print(f"llmwatch simulate: {problem}", file=sys.stderr)
    return 2


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load(args.config)
    except ConfigError as e:
        return _refuse(e.problems)
    if args.mode:
        config = replace(config, mode=args.mode)
        cluster = config.cluster_mono if args.mode == "mono" else config.cluster_disagg
        if cluster is None:
            print(f"llmwatch simulate: --mode {args.mode} needs cluster_{args.mode} in {args.config}", file=sys.stderr)
            return 2

    try:
        if args.command == "run":
            result, trace = engine.run(config, trace=True)
            rows = [result.as_dict()]
            if args.plot:
                plots.ttft_distribution({config.mode: trace.ttft}, args.plot,
                                        f"TTFT at {config.arrival_rate_per_s:g} req/s ({config.mode})")
            out = rows[0]
        elif args.command == "compare":
            if config.cluster_mono is None or config.cluster_disagg is None:
                print(f"llmwatch simulate: compare needs both cluster_mono and cluster_disagg in {args.config}",
                      file=sys.stderr)
                return 2
            runs = {mode: engine.run(replace(config, mode=mode), trace=True) for mode in ("mono", "disagg")}
            rows = [r.as_dict() for r, _ in runs.values()]
            if args.plot:
                plots.ttft_distribution({m: t.ttft for m, (_, t) in runs.items()}, args.plot,
                                        f"Monolithic vs disaggregated at {config.arrival_rate_per_s:g} req/s")
            out = {m: r.as_dict() for m, (r, _) in runs.items()}
        elif args.command == "sweep":
            if not args.rates and not args.prefill_rates:
                print("llmwatch simulate: sweep needs --rates and/or --prefill-rates", file=sys.stderr)
                return 2
            rates = args.rates or [config.arrival_rate_per_s]
            rows = sweep(config, rates, args.prefill_rates, args.requests, progress=not args.json)
            if args.plot:
                by_prefill = args.prefill_rates and not args.rates
                plots.sweep(rows, args.plot, "prefill_tokens_per_s" if by_prefill else "arrival_rate_per_s",
                            "prefill tokens/s per GPU" if by_prefill else "arrival rate (requests/s)",
                            f"TTFT sweep ({config.mode})")
            out = rows
        else:
            if not 0 < args.quantile < 1 or args.slo <= 0:
                print("llmwatch simulate: --quantile must be in (0, 1) and --slo > 0", file=sys.stderr)
                return 2
            rate = capacity.max_rate(config, args.slo, args.quantile, args.requests or 4000)
            out = {"max_rate_per_s": rate, "saturation_rate_per_s": capacity.saturation_rate(config),
                   "slo_seconds": args.slo, "quantile": args.quantile, "mode": config.mode}
            rows = [out]
    except ConfigError as e:  # a sweep rate or --requests made a run too large
        return _refuse(e.problems)
    except OSError as e:  # --plot somewhere unwritable
        return _refuse([f"cannot write {e.filename or args.plot}: {e.strerror or e}"])

    if args.json:
        print(json.dumps(out, indent=2))
    else:
        _table(rows, f"llmwatch simulate {args.command}: {args.config}", across=args.command != "sweep")
    if args.plot:
        print(f"plot written to {args.plot}", file=sys.stderr)
    return 0
