"""``llmwatch top``: a live terminal view of the stack, or one snapshot (``--once``) for scripts.

Reads the stack's Prometheus: by default the one ./scripts/up published on this host, with the
password from .env (LLMWATCH_PUBLISH_ADDRESS, PROMETHEUS_PORT, PROMETHEUS_PASSWORD); --url points
elsewhere. Missing series show as "–" (null in JSON), never as 0.

Keys in the live view: tab next pane, s next sort, / filter by model, container or GPU
(Enter keeps it, Esc clears it), q quit.

Examples:
  llmwatch top
  llmwatch top --once
  llmwatch top --once --json | jq '.models[] | {model, ttft_p95_seconds}'
  llmwatch top --url http://monitor-host:23001 --password-file ~/.prometheus-password
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from rich.console import Console

from llmwatch.core.checks import url_problem
from llmwatch.tools.top import render
from llmwatch.tools.top.source import Reader, Unavailable, default_env_file, resolve


def _url(text: str) -> str:
    problem = url_problem(text, example="http://127.0.0.1:23001")
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def _interval(text: str) -> float:
    value = float(text)
    if not 0.5 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{text}: between 0.5 and 3600 seconds")
    return value


def _time(text: str) -> float:
    """Unix seconds or an ISO 8601 time with its zone."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: unix seconds or an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r}: give the time zone (Z or +02:00)")
    return parsed.timestamp()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="llmwatch top", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", type=_url, help="Prometheus' base URL (default: from .env, http://127.0.0.1:23001)")
    p.add_argument("--user", help="basic-auth user (default: llmwatch; empty: no auth)")
    p.add_argument("--password-file", type=Path, help="file holding the password (default: PROMETHEUS_PASSWORD "
                   "from the environment or .env)")
    p.add_argument("--env-file", type=Path, help="the stack's .env (default: ./.env, else this checkout's)")
    p.add_argument("--interval", type=_interval, default=5.0, help="seconds between refreshes (default: 5)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for Prometheus (default: 5)")
    p.add_argument("--once", action="store_true", help="print one snapshot and exit (1 if Prometheus does not answer)")
    p.add_argument("--json", action="store_true", help="with --once: JSON instead of tables")
    p.add_argument("--time", type=_time, help="with --once: evaluate at this time (unix seconds or ISO 8601) "
                   "instead of now; alerts are always the current ones")
    p.add_argument("--width", type=int, help="with --once: table width (default: the terminal's, 200 in a pipe)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if (args.json or args.time is not None or args.width) and not args.once:
        parser().error("--json, --time and --width go with --once")
    env_file = args.env_file or default_env_file()
    try:
        target = resolve(args.url, args.user, args.password_file, env_file)
    except OSError as e:
        print(f"llmwatch top: cannot read {e.filename}: {e.strerror}", file=sys.stderr)
        return 2
    reader = Reader(target, timeout=args.timeout)
    try:
        if args.once:
            return _once(reader, args)
        if not sys.stdin.isatty() or not sys.stdout.isatty():
            print("llmwatch top: the live view needs a terminal; use --once (and --json) in scripts", file=sys.stderr)
            return 2
        from llmwatch.tools.top import live

        return live.run(reader, args.interval, Console())
    finally:
        reader.close()


def _once(reader: Reader, args) -> int:
    try:
        snap = reader.read(at=args.time)
    except Unavailable as e:
        print(f"llmwatch top: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(render.as_json(snap))
        return 0
    width = args.width or (None if sys.stdout.isatty() else 200)
    Console(width=width, highlight=False).print(render.snapshot_view(snap, render.View()))
    return 0
