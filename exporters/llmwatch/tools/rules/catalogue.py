"""docs/alerts.md: every alert with its severity, ``for``, inhibitions and tests, built from the code.

The on-call engineer's question "what can page me, after how long, what silences what, and is it
tested?" has its answer spread over the rule builders, Alertmanager's inhibit rules and the promtool
test files. This module gathers it into one table, written by ``llmwatch rules`` beside the rule
files, so it goes stale (and a test fails) whenever one of the three changes without it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from llmwatch.tools import rules

REPO = Path(__file__).resolve().parents[4]
ALERTMANAGER = REPO / "config" / "alertmanager" / "alertmanager.yml"
TESTS = REPO / "config" / "prometheus" / "tests"
# Labels an inhibition's ``equal`` holds only so that one deployment or host never silences
# another's alerts (the demo's, issue 25's second GPU host): left out of "same ..." in the table,
# which says what else the two alerts must share.
DEPLOYMENT_LABELS = ("simulated", "host")
MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"(.*)"\s*')


@dataclass
class Entry:
    name: str
    source: str  # "Prometheus" or "Loki"
    severity: str
    for_: str
    firing: list[str] = field(default_factory=list)
    quiet: list[str] = field(default_factory=list)
    silenced_by: list[str] = field(default_factory=list)
    silences: list[str] = field(default_factory=list)


def _matches(matchers: list[str], labels: dict[str, str]) -> tuple[bool, list[str]]:
    """Whether an alert with these static labels can match; the matchers on other labels (job...),
    which depend on the series, as conditions."""
    conditions = []
    for text in matchers:
        name, op, value = MATCHER.fullmatch(text).groups()
        if name not in labels:
            conditions.append(f"{name}{op}{value}")
            continue
        hit = re.fullmatch(value, labels[name]) if "~" in op else labels[name] == value
        if bool(hit) == op.startswith("!"):
            return False, []
    return True, conditions


def alert_entries() -> list[Entry]:
    """One entry per alert name, severity and ``for``, in rule-file order."""
    found: dict[tuple, Entry] = {}
    for source, rendered in (("Prometheus", rules.render()), ("Loki", rules.render_loki())):
        for text in rendered.values():
            for group in yaml.safe_load(text)["groups"]:
                for rule in group["rules"]:
                    if "alert" in rule:
                        key = (rule["alert"], rule["labels"]["severity"], rule.get("for", "0s"))
                        found.setdefault(key, Entry(*key[:1], source, *key[1:]))
    return list(found.values())


def _add_tests(entries: list[Entry]) -> None:
    """Test names (file: test) that show each alert firing, per severity, or staying quiet."""
    for path in sorted(TESTS.glob("*_test.yml")):
        for number, test in enumerate(yaml.safe_load(path.read_text())["tests"], 1):
            title = f"{path.name}: {test.get('name', f'test {number}')}"
            for case in test.get("alert_rule_test", []):
                severities = {a.get("exp_labels", {}).get("severity") for a in case.get("exp_alerts") or []}
                for entry in entries:
                    if entry.name != case["alertname"]:
                        continue
                    target = entry.firing if entry.severity in severities else entry.quiet if not severities else None
                    if target is not None and title not in target:
                        target.append(title)


def _add_inhibitions(entries: list[Entry]) -> None:
    """Per target, each alert that can silence it (expanded); per source, the inhibit rules it is
    the source of, as written (ExporterDown silences dozens)."""
    config = yaml.safe_load(ALERTMANAGER.read_text())
    for rule in config.get("inhibit_rules", []):
        equal = rule.get("equal", [])
        own = "alertname" in equal  # the same alert at another severity
        named = [e for e in equal if e not in DEPLOYMENT_LABELS]
        same = "same labels" if own else "same " + "/".join(named) if named else ""
        for source in entries:
            hit, conditions = _matches(rule["source_matchers"], {"alertname": source.name, "severity": source.severity})
            if not hit:
                continue
            targets = []
            for target in entries:
                if (own and source.name != target.name) or (source.name, source.severity) == (target.name, target.severity):
                    continue
                if _matches(rule["target_matchers"], {"alertname": target.name, "severity": target.severity})[0]:
                    targets.append(target)
            if not targets:
                continue
            how = ", ".join(conditions + ([same] if same else []))
            what = "its " + "/".join(sorted({t.severity for t in targets})) if own else \
                ", ".join(m.replace(" ", "") for m in rule["target_matchers"])
            source.silences.append(f"{what}{f' ({how})' if how else ''}")
            for target in targets:
                by = f"{source.name} ({source.severity}{', ' + how if how else ''})"
                if by not in target.silenced_by:
                    target.silenced_by.append(by)


def entries() -> list[Entry]:
    found = alert_entries()
    _add_tests(found)
    _add_inhibitions(found)
    return found


def _cell(items: list[str]) -> str:
    return "<br>".join(item.replace("|", "\\|") for item in items) or "–"


def render_markdown() -> str:
    found = entries()
    names = {e.name for e in found}
    firing = {e.name for e in found if e.firing}
    quiet = {e.name for e in found if e.quiet}
    lines = [
        "# Alert catalogue",
        "",
        "Generated by `llmwatch rules` from the rule builders (exporters/llmwatch/tools/rules/), the",
        "inhibit rules of config/alertmanager/alertmanager.yml and the promtool tests in",
        "config/prometheus/tests/; a test fails while this file is stale. What each alert means and what",
        "to do: [runbooks.md](runbooks.md). Loki's alerts have no promtool test: their LogQL is checked",
        "with Grafana's grammar (tests/dashboards/test_structure.py). Inhibitions also need the same `host` and",
        "`simulated` where Alertmanager's rules say so (not repeated here). That the demo at its default load",
        "fires only the Watchdog is shown by tests/demo/test_demo_alerts.py.",
        "",
        f"{len(names)} alerts ({len(found)} with their severities), {len(firing)} shown firing in a test, "
        f"{len(quiet)} shown staying quiet in one.",
        "",
        "| Alert | Rules | Severity | For | Silenced by | Silences | Firing in | Quiet in |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in found:
        lines.append(f"| [{e.name}](runbooks.md#{e.name.lower()}) | {e.source} | {e.severity} | {e.for_} | "
                     f"{_cell(e.silenced_by)} | {_cell(e.silences)} | {_cell(e.firing)} | {_cell(e.quiet)} |")
    return "\n".join(lines) + "\n"


def render() -> dict[str, str]:
    """The catalogue by file name relative to docs/."""
    return {"alerts.md": render_markdown()}
