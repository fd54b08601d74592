"""Small builders for Prometheus rule files, and a writer that keeps them readable.

Rule modules build plain dicts with :func:`record` and :func:`alert`; :func:`write_file` turns a
file's groups into YAML with the module's comments kept (block scalars for multi-line
expressions, a blank line between alerts), so the generated files read like hand-written ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from llmwatch.mixin import RUNBOOKS_PAGE, fmt, percent

RUNBOOKS = "docs/runbooks.md"
# The runbooks as Prometheus serves them (a console template generated from RUNBOOKS; compose gives
# Prometheus --web.console.templates): an alert's runbook_url is absolute at Prometheus' external
# URL, so it works wherever the alert shows (Prometheus, Alertmanager, Grafana, notifications),
# offline too.
CONSOLE = RUNBOOKS_PAGE


@dataclass
class Rule:
    body: dict  # record/alert, expr, for, labels, annotations: exactly what Prometheus reads
    comment: str = ""  # written as "# ..." lines above the rule


@dataclass
class Group:
    name: str
    rules: list[Rule] = field(default_factory=list)
    interval: str = ""


def record(name: str, expr: str, *, labels: dict | None = None, comment: str = "") -> Rule:
    body = {"record": name, "expr": expr}
    if labels:
        body["labels"] = dict(labels)
    return Rule(body, comment)


def runbook_url(anchor: str, *, served: bool = True) -> str:
    """Where an alert's runbook section is: at Prometheus' external URL (CONSOLE), or, for rules that
    are not Prometheus' (Loki's ruler knows no such page), the section of docs/runbooks.md, which
    the notifications turn into a link (config/alertmanager/templates/links.tmpl)."""
    return f"{{{{ $externalURL }}}}/{CONSOLE}#{anchor}" if served else f"{RUNBOOKS}#{anchor}"


# Every description starts by naming the host the alert is about, when its series carry one (issue 25:
# a second GPU host has its own GPU 0 and its own vllm-a); with one host and no host label it
# adds nothing, so the single-host text is unchanged.
ON_HOST = "{{ with $labels.host }}On {{ . }}: {{ end }}"


def alert(name: str, expr: str, *, for_: str, severity: str, summary: str, description: str,
          runbook: str | None = None, labels: dict | None = None, comment: str = "", served: bool = True) -> Rule:
    """An alert with the annotations every llmwatch alert carries (the description prefixed with
    :data:`ON_HOST`); ``runbook`` defaults to the alert's own section of the runbooks (:func:`runbook_url`)."""
    body: dict = {"alert": name, "expr": expr}
    if for_:
        body["for"] = for_
    body["labels"] = {"severity": severity, **(labels or {})}
    body["annotations"] = {"summary": summary, "description": ON_HOST + description,
                           "runbook_url": runbook_url(runbook or name.lower(), served=served)}
    return Rule(body, comment)


def error_alerts(prefix: str, *, server_ratio: str, client_ratio: str, traffic: str, limits, client_limit: float,
                 server_summary: str, server_description: str, client_summary: str, client_description: str) -> list[Rule]:
    """An API's error alerts: server-side failures warn after 10 minutes over ``limits.warning`` and
    page after 5 over ``limits.critical``; the client's own errors (4xx) are information only. All of
    them need ``traffic`` (a PromQL ``and`` clause), so a trickle of requests never pages.
    ``server_summary`` names the limit as ``{percent}``."""
    return [
        *(alert(f"{prefix}ErrorRate", f"{server_ratio} > {fmt(limit)} {traffic}", for_=for_, severity=severity,
                summary=server_summary.format(percent=percent(limit)),
                description=server_description)
          for severity, limit, for_ in (("warning", limits.warning, "10m"), ("critical", limits.critical, "5m"))),
        alert(f"{prefix}ClientErrors", f"{client_ratio} > {fmt(client_limit)} {traffic}", for_="15m", severity="info",
              summary=client_summary, description=client_description),
    ]


def _scalar(value) -> str:
    """One YAML scalar on one line, quoted only when YAML needs it."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, float)):
        return yaml.safe_dump(value).removesuffix("\n...\n").strip()
    text = yaml.safe_dump(value, width=float("inf"), allow_unicode=True, default_flow_style=False)
    return text.removesuffix("\n...\n").rstrip("\n")


def _entry(key: str, value, indent: str) -> list[str]:
    if isinstance(value, str) and "\n" in value.rstrip("\n"):
        body = value if value.endswith("\n") else value + "\n"
        return [f"{indent}{key}: |"] + [f"{indent}  {line}" if line else "" for line in body.splitlines()]
    if isinstance(value, dict):
        lines = [f"{indent}{key}:"]
        for k, v in value.items():
            lines += _entry(k, v, indent + "  ")
        return lines
    return [f"{indent}{key}: {_scalar(value)}"]


def render_file(header: str, groups: list[Group]) -> str:
    """The YAML text of one rule file, comments included."""
    lines = [f"# {line}".rstrip() for line in header.strip("\n").splitlines()]
    lines.append("groups:")
    for n, g in enumerate(groups):
        if n:
            lines.append("")
        lines.append(f"  - name: {_scalar(g.name)}")
        if g.interval:
            lines.append(f"    interval: {g.interval}")
        lines.append("    rules:")
        for i, rule in enumerate(g.rules):
            if i and "alert" in rule.body:
                lines.append("")
            lines += [f"      # {line}".rstrip() for line in rule.comment.strip("\n").splitlines() if rule.comment]
            first, *rest = rule.body.items()
            lines += _entry(*first, "      - ")
            for key, value in rest:
                lines += _entry(key, value, "        ")
    return "\n".join(lines) + "\n"


def as_data(groups: list[Group]) -> dict:
    """What Prometheus reads from the file (comments aside)."""
    out = []
    for g in groups:
        entry: dict = {"name": g.name}
        if g.interval:
            entry["interval"] = g.interval
        entry["rules"] = [rule.body for rule in g.rules]
        out.append(entry)
    return {"groups": out}


def matching(series: str, matcher: str) -> str:
    """``series{matcher}``, or the bare series when the matcher is empty."""
    return f"{series}{{{matcher}}}" if matcher else series
