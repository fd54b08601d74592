"""Drill-down between the boards: from a series that names a container or a model to the boards
about that container or model and to its logs, for the same time range; and, at the top of each
board, links to the related boards carrying the time range and the variables they share.

Why a pass over finished panels rather than links written panel by panel: a container or a model
appears in dozens of legends, and a link forgotten on one of them is a dead end for whoever is
chasing an incident. :func:`drill` reads each panel's legends (and a table's ``by`` labels) and
adds the links that fit, so a new panel gets them too. Also here: the "No traffic" text that
replaces NaN and empty on models without requests.
"""

from __future__ import annotations

import re

UIDS = {"vllm": "llmwatch-vllm", "containers": "llmwatch-containers", "gpu": "llmwatch-gpu",
        "logs": "llmwatch-logs", "litellm": "llmwatch-litellm", "langfuse": "llmwatch-langfuse",
        "system": "llmwatch-system", "cost": "llmwatch-cost", "overview": "llmwatch-overview"}
TITLES = {"vllm": "vLLM", "containers": "Docker containers", "gpu": "GPU", "logs": "Logs", "litellm": "LiteLLM",
          "langfuse": "Langfuse analytics", "system": "System health", "cost": "Cost & capacity",
          "overview": "Overview"}
TIME = "${__url_time_range}"
NO_TRAFFIC = "No traffic"
# A query over request rates: rate() itself, or a recorded rate or percentile (…:rate5m, …:p95_5m).
RATES = re.compile(r"\brate\(|:\w*rate\w*\b|:p\d+_\w+\b|histogram_quantile\(")


def _url(board: str, variable: str, value: str) -> str:
    return f"/d/{UIDS[board]}?var-{variable}={value}&{TIME}"


def container_links(value: str) -> list[dict]:
    """A container (``value``: how the panel spells its name) on the vLLM, Docker containers and
    GPU boards, and its logs, for the panel's time range."""
    return [{"title": f"{title} {value}", "url": _url(board, "container", value), "targetBlank": False}
            for board, title in (("logs", "Logs of"), ("containers", "Container"), ("vllm", "vLLM server"),
                                 ("gpu", "GPUs of"))]


def model_links(value: str) -> list[dict]:
    """A vLLM model (``model_name``) on the vLLM board, for the panel's time range."""
    return [{"title": f"vLLM model {value}", "url": _url("vllm", "model", value), "targetBlank": False}]


def model_group_links(value: str) -> list[dict]:
    """A LiteLLM model group (``requested_model``, ``model_group``) on the LiteLLM board."""
    return [{"title": f"LiteLLM model group {value}", "url": _url("litellm", "model", value), "targetBlank": False}]


# Label -> links, for each label that names a container, a vLLM model or a LiteLLM model group.
# cAdvisor calls the container ``name``; Grafana substitutes ``${__field.labels.x}`` in a series'
# links and ``${__data.fields.x}`` in a table row's.
BY_LABEL = {"container": container_links, "name": container_links, "model_name": model_links,
            "requested_model": model_group_links, "model_group": model_group_links}


def _labels(panel: dict) -> list[str]:
    """Labels that name what a panel's series are about: from legends, or a table's ``by (...)``."""
    found = []
    for target in panel.get("targets", []):
        if panel["type"] == "table":
            for group in re.findall(r"\bby \(([^)]*)\)", target.get("expr", "")):
                found += [label.strip() for label in group.split(",")]
        else:
            found += re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", ""))
    return [label for label in dict.fromkeys(found) if label in BY_LABEL]


def drill(panels: list[dict], *, skip: tuple[str, ...] = ()) -> list[dict]:
    """``panels`` with data links added to every panel whose series name a container, a model or
    a model group; links already there (same URL) are kept once. ``skip``: boards not to link to
    (a board does not link to itself for the same thing it filters on)."""
    for panel in panels:
        if panel["type"] in ("row", "logs"):
            continue
        defaults = panel["fieldConfig"]["defaults"]
        links = [dict(known) for known in defaults.get("links", [])  # panels may share one list: copy it
                 # a table row has fields, not series labels: such links go nowhere
                 if panel["type"] != "table" or "${__field.labels." not in known["url"]]
        for label in _labels(panel):
            value = f"${{__data.fields.{label}}}" if panel["type"] == "table" else f"${{__field.labels.{label}}}"
            for extra in BY_LABEL[label](value):
                if not any(extra["url"].startswith(f"/d/{UIDS[board]}?") for board in skip) \
                        and all(extra["url"] != known["url"] for known in links):
                    links.append(extra)
        if links:
            defaults["links"] = links
    return panels


def related(*boards: str) -> list[dict]:
    """Links at the top of a board to the related ``boards``, carrying the time range and the
    variables (Grafana adds ``var-x=...`` for every variable; a board ignores those it lacks)."""
    return [{"type": "link", "title": TITLES[board], "url": f"/d/{UIDS[board]}", "keepTime": True,
             "includeVars": True, "targetBlank": False, "asDropdown": False, "icon": "dashboard", "tags": [],
             "tooltip": f"{TITLES[board]}, same time range and variables"} for board in boards]


def no_traffic(panels: list[dict], text: str = NO_TRAFFIC) -> list[dict]:
    """``text`` instead of "No data" or NaN on panels whose queries read request rates, raw or
    recorded (a ratio or a percentile of an idle model divides zero by zero), so an idle model
    reads as idle."""
    for panel in panels:
        exprs = [t.get("expr", "") for t in panel.get("targets", [])]
        defaults = panel.get("fieldConfig", {}).get("defaults", {})
        if panel["type"] in ("row", "logs", "table") or "noValue" in defaults or not any(RATES.search(e) for e in exprs):
            continue
        defaults["noValue"] = text
        defaults["mappings"] = defaults.get("mappings", []) + [
            {"type": "special", "options": {"match": "nan", "result": {"text": text, "index": len(defaults.get(
                "mappings", []))}}}]
    return panels
