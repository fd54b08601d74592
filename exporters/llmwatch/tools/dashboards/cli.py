"""llmwatch dashboards [--check] [--out DIR]: write (or compare) the dashboard JSON."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llmwatch.tools.dashboards import render

DEFAULT_OUT = Path(__file__).resolve().parents[4] / "dashboards"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmwatch dashboards", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="dashboards directory (default: the repo's)")
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
        print(f"stale dashboards (run llmwatch dashboards): {', '.join(stale)}", file=sys.stderr)
        return 1
    for name in stale if not args.check else ():
        print(f"wrote {args.out / name}")
    return 0


