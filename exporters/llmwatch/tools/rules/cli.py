"""``llmwatch rules [--check] [--out DIR]``: write (or compare) config/prometheus/rules/*.yml (in DIR
with --out) and the Loki ruler's config/loki/rules/fake/llmwatch.yml."""

from __future__ import annotations

from pathlib import Path

from llmwatch.tools import generated
from llmwatch.tools.rules import render, render_loki

CONFIG = Path(__file__).resolve().parents[4] / "config"
DEFAULT_OUT = CONFIG / "prometheus" / "rules"
LOKI_OUT = CONFIG / "loki" / "rules"


def main(argv: list[str] | None = None) -> int:
    prometheus = generated.main(argv, command="rules", what="rule files", default_out=DEFAULT_OUT, render=render)
    check = ["--check"] if argv and "--check" in argv else []
    loki = generated.main(check, command="rules", what="Loki rule files", default_out=LOKI_OUT, render=render_loki)
    return max(prometheus, loki)
