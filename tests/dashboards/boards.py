"""The committed dashboards as the tests see them: panels, queries, variables, and Grafana's
variable expansion reproduced for running the queries outside Grafana."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from tests.procs import REPO

DASHBOARDS = REPO / "dashboards"

# What Grafana puts in for its built-in variables when the check runs the queries. The stack test
# scrapes every second, so a 30 s rate window holds ~30 samples (Grafana computes
# $__rate_interval from the 30 s scrape interval: at least 2 minutes in production).
BUILTINS = {"__rate_interval": "30s", "__interval": "15s", "__range_s": "600", "__range": "10m", "__auto": "1m"}


@dataclass(frozen=True)
class Query:
    board: str
    panel: str
    language: str  # promql or logql
    expr: str


def load() -> dict[str, dict]:
    """Every committed dashboard, by path relative to dashboards/."""
    return {str(path.relative_to(DASHBOARDS)): json.loads(path.read_text())
            for path in sorted(DASHBOARDS.rglob("*.json"))}


def panels(board: dict) -> list[dict]:
    """Panels with a query (rows left out), including panels nested in collapsed rows."""
    found = []
    for panel in board["panels"]:
        found += [p for p in panel.get("panels", [])]
        if panel["type"] != "row":
            found.append(panel)
    return found


def language(datasource: dict) -> str:
    return {"prometheus": "promql", "loki": "logql"}[datasource["type"]]


def queries(board: dict) -> list[Query]:
    return [Query(board["title"], panel["title"], language(target.get("datasource", panel["datasource"])),
                  target["expr"])
            for panel in panels(board) for target in panel["targets"]]


def variable_names(board: dict) -> set[str]:
    return {v["name"] for v in board["templating"]["list"]}


_REFERENCE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def referenced(expr: str) -> set[str]:
    """Variable names an expression uses, in any of Grafana's three spellings."""
    return {a or b or c for a, b, c in _REFERENCE.findall(expr)}


def prometheus_regex(value: str) -> str:
    """A variable value as Grafana writes it into a PromQL regex matcher (escaped, in a string)."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\\\1", value)


def expand(expr: str, values: dict[str, str]) -> str:
    """``expr`` with variables and built-ins replaced; an unknown variable raises KeyError."""
    every = {**BUILTINS, **values}
    return _REFERENCE.sub(lambda m: every[m.group(1) or m.group(2) or m.group(3)], expr)


# Variables that may list nothing: ``host`` where the series carry no host label (one host, before
# the label), ``environment`` while the Langfuse exporter labels no environments (its default). Grafana
# then offers only "All" (``.*``), which every query must still answer.
MAY_BE_EMPTY = {"host", "environment"}

# Panels whose series exist only where a feature is on that the stack does not run, and why: their
# queries must still run (a syntax or type error fails), but may return nothing. Each such panel
# says in its noValue text which feature it needs (tests/dashboards/test_panels.py).
NEEDS_A_FEATURE = {
    ("System health", "Hardware temperatures"): "hwmon sensors: none inside a VM or container like the test machine",
    ("System health", "Network errors and drops per interface"): "packets on a physical interface: the test "
                                                                  "machine's sees none for seconds (0 / 0)",
    ("LiteLLM", "Response cache hits"): "a LiteLLM response cache; the stack's proxy has none",
    ("LiteLLM", "Upstream rate limit left"): "an upstream sending x-ratelimit-remaining-* headers; vLLM sends none",
    ("LiteLLM", "Redis and database calls failing"): "service_callback prometheus_system with Redis or Postgres; "
                                                     "the stack's proxy runs with neither",
}
