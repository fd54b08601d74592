"""``llmwatch rules [--check] [--out DIR]``: write (or compare) config/prometheus/rules/*.yml (in DIR
with --out), the Loki ruler's config/loki/rules/fake/llmwatch.yml, the runbooks page Prometheus serves
(config/prometheus/consoles/runbooks.html) and the alert catalogue docs/alerts.md."""

from __future__ import annotations

from pathlib import Path

from llmwatch.tools import generated
from llmwatch.tools.rules import catalogue, console, render, render_loki

CONFIG = Path(__file__).resolve().parents[4] / "config"
DEFAULT_OUT = CONFIG / "prometheus" / "rules"
LOKI_OUT = CONFIG / "loki" / "rules"
DOCS = CONFIG.parent / "docs"
CONSOLES = CONFIG / "prometheus" / "consoles"


def main(argv: list[str] | None = None) -> int:
    prometheus = generated.main(argv, command="rules", what="rule files", default_out=DEFAULT_OUT, render=render)
    check = ["--check"] if argv and "--check" in argv else []
    loki = generated.main(check, command="rules", what="Loki rule files", default_out=LOKI_OUT, render=render_loki)
    runbooks = generated.main(check, command="rules", what="runbooks page", default_out=CONSOLES, render=console.render)
    # written last: it reads the rule files' tests and Alertmanager's inhibitions as committed
    alerts = generated.main(check, command="rules", what="alert catalogue", default_out=DOCS, render=catalogue.render)
    return max(prometheus, loki, runbooks, alerts)
