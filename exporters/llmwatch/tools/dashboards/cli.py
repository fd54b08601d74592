"""``llmwatch dashboards [--check] [--out DIR]``: write (or compare) the dashboard JSON."""

from __future__ import annotations

from pathlib import Path

from llmwatch.tools import generated
from llmwatch.tools.dashboards import render

DEFAULT_OUT = Path(__file__).resolve().parents[4] / "dashboards"


def main(argv: list[str] | None = None) -> int:
    return generated.main(argv, command="dashboards", what="dashboards", default_out=DEFAULT_OUT, render=render)
