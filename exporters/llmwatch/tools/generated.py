"""Files generated from code (dashboards, rule files): write them, or report the stale ones.

Both generators are committed with their output; a test runs ``--check`` so code and files
cannot drift apart.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


def main(argv: list[str] | None, *, command: str, what: str, default_out: Path,
         render: Callable[[], dict[str, str]]) -> int:
    """``llmwatch <command> [--check] [--out DIR]``: exit 1 with --check when a file differs."""
    parser = argparse.ArgumentParser(prog=f"llmwatch {command}",
                                     description=f"Write (or --check) the {what} built by the code.")
    parser.add_argument("--out", type=Path, default=default_out, help=f"{what} directory (default: the repository's)")
    parser.add_argument("--check", action="store_true", help="only report files that differ from the code")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = args.out / name
        if path.exists() and path.read_text() == text:
            continue
        stale.append(name)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if args.check and stale:
        print(f"stale {what} (run llmwatch {command}): {', '.join(stale)}", file=sys.stderr)
        return 1
    for name in stale if not args.check else ():
        print(f"wrote {args.out / name}")
    return 0
