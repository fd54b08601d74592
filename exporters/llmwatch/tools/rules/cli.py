"""``llmwatch rules [--check] [--out DIR]``: write (or compare) config/prometheus/rules/*.yml."""

from __future__ import annotations

from pathlib import Path

from llmwatch.tools import generated
from llmwatch.tools.rules import render

DEFAULT_OUT = Path(__file__).resolve().parents[4] / "config" / "prometheus" / "rules"


def main(argv: list[str] | None = None) -> int:
    return generated.main(argv, command="rules", what="rule files", default_out=DEFAULT_OUT, render=render)
