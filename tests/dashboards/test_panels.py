"""The panels users of the well-known boards (vLLM's, dcgm-exporter's, node-exporter-full, LiteLLM's)
look for, the numbers they draw, and the drill-down between boards — checked on the committed JSON.
(That their queries return data is tests/dashboards/test_queries.py.)"""

from __future__ import annotations

import re

import pytest
import yaml

from llmwatch import mixin
from tests.dashboards.boards import load, panels, queries
from tests.procs import REPO

BOARDS = {board["title"]: board for board in load().values()}
UIDS = {board["uid"] for board in BOARDS.values()}
CATALOG = (REPO / "docs" / "metrics.md").read_text()
RULES = REPO / "config" / "prometheus" / "rules"
RECORDED = {rule["record"] for path in RULES.glob("*.yml") for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"] if "record" in rule}

# Every panel the comparison with the well-known boards found missing (issue 23), by board.
EXPECTED = {
    "vLLM": ["Prefill and decode time per request", "Max generation tokens per request",
             "Speculative decoding acceptance", "LoRA adapters in use"],
    "System health": ["Network errors and drops per interface", "CPU per core", "Disk IOPS", "Disk latency",
                      "Inodes used", "File descriptors", "Hardware temperatures"],
    "LiteLLM": ["Total vs LLM API time", "Proxy overhead", "Time to first token through the proxy",
                "Response cache hits", "Upstream rate limit left", "Deployments cooled down",
                "Redis and database calls failing"],
    "Langfuse analytics": ["Traces/s per project and environment", "Cost per project and environment",
                           "Traces by name", "Traces by release"],
    "GPU": ["Tensor-core activity per GPU", "SM activity per GPU", "PCIe traffic per GPU", "NVLink traffic per GPU"],
}
# Panels whose series exist only where a feature is on: they say so instead of "No data".
FEATURE_PANELS = {("vLLM", "Speculative decoding acceptance"), ("vLLM", "LoRA adapters in use"),
                  ("System health", "Hardware temperatures"), ("LiteLLM", "Response cache hits"),
                  ("System health", "Network errors and drops per interface"),
                  ("LiteLLM", "Upstream rate limit left"), ("LiteLLM", "Redis and database calls failing"),
                  ("GPU", "Tensor-core activity per GPU"), ("GPU", "SM activity per GPU")}
# Exporters llmwatch runs but does not write, whose names it does not catalogue (pinned versions).
UPSTREAM = ("node_", "container_", "prometheus_", "alertmanager_", "scrape_")
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right",
            "inf", "nan", "Inf", "NaN"}


def panel(board: str, title: str) -> dict:
    found = [p for p in panels(BOARDS[board]) if p["title"] == title]
    assert len(found) == 1, f"{board}: {len(found)} panels titled {title!r}"
    return found[0]


def line_values(p: dict) -> list[float]:
    return [step["value"] for step in p["fieldConfig"]["defaults"]["thresholds"]["steps"][1:]]


def alert_number(name: str) -> float:
    """The number an alert compares with: the last literal after > or < in its expression."""
    for path in RULES.glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == name:
                    return float(re.findall(r"[<>]\s*([0-9.]+)", rule["expr"])[-1])
    raise AssertionError(f"no alert {name}")


def metric_names(expr: str) -> set[str]:
    """Series names a PromQL expression reads (strings, matchers, windows and grouping labels left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    return {name for name in re.findall(r"(?<![\w:$.])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()", text)} - KEYWORDS


@pytest.mark.parametrize("board,title", [(b, t) for b, titles in EXPECTED.items() for t in titles])
def test_the_missing_panels_exist_with_a_unit_and_what_bad_looks_like(board, title):
    p = panel(board, title)
    assert p["fieldConfig"]["defaults"]["unit"] not in ("", None)
    assert "Bad:" in p["description"] or "bad" in p["description"].lower()


@pytest.mark.parametrize("board,title", sorted(FEATURE_PANELS))
def test_a_panel_that_needs_a_feature_says_so_when_empty(board, title):
    no_value = panel(board, title)["fieldConfig"]["defaults"].get("noValue", "")
    assert no_value and no_value != "No traffic", "say which feature is off, not 'No data'"


def test_host_panels_draw_the_host_alerts_numbers():
    m = mixin.MIXIN
    assert line_values(panel("System health", "Network errors and drops per interface")) \
        == [m.network_error_ratio] == [alert_number("HostNetworkErrors")]
    assert line_values(panel("System health", "Inodes used")) \
        == [round(1 - m.inodes_free_ratio, 6)] == [round(1 - alert_number("HostInodesAlmostExhausted"), 6)]


def test_litellm_ttft_draws_the_slo_the_probe_alert_uses():
    slo = mixin.MIXIN.slo.default.ttft_p95_seconds
    assert line_values(panel("LiteLLM", "Time to first token through the proxy")) == [slo]
    assert alert_number("ProbeTtftAboveSlo") == slo


def test_overview_ttft_draws_each_models_slo_not_the_defaults_alert_limits():
    """The default model's alert lines (1.5 s, 3 s) drawn under every model read as everyone's SLO:
    each model gets its own dashed SLO line, and the alert factors are said in words."""
    p = panel("Overview", "TTFT p95 against the SLO")
    assert any(t["expr"] == "model_name:llmwatch_slo_ttft_p95_seconds:target" for t in p["targets"])
    assert p["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "off"
    assert any(o["properties"][0]["id"] == "custom.lineStyle" for o in p["fieldConfig"]["overrides"])
    factors = mixin.MIXIN.ttft_alert_factor
    assert f"{factors.warning:g}x" in p["description"] and f"{factors.critical:g}x" in p["description"]


def test_money_per_hour_is_not_drawn_as_a_plain_amount():
    """$/h with a bare currency unit reads as dollars spent; per-hour money carries its unit."""
    for board in BOARDS.values():
        for p in panels(board):
            if any("per_hour" in t.get("expr", "") or "* 3600" in t.get("expr", "") for t in p["targets"]):
                if "cost_dollars_per_million_tokens" in str(p["targets"]) or "/ 24)" in str(p["targets"]):
                    continue  # per 1M tokens: the title says per what
                assert p["fieldConfig"]["defaults"]["unit"] == "suffix: $/h", (board["title"], p["title"])


def test_cost_board_has_no_heartbeat_remap():
    """The heartbeat stat was average utilisation remapped to 40-150: nothing the board does not show."""
    assert not any("heartbeat" in t["expr"] for p in panels(BOARDS["Cost & capacity"]) for t in p["targets"])


def test_every_board_shows_the_critical_alerts():
    for board in BOARDS.values():
        annotations = [a for a in board["annotations"]["list"] if "expr" in a]
        assert any('severity="critical"' in a["expr"] and a["datasource"]["type"] == "prometheus"
                   for a in annotations), board["title"]


def test_idle_models_read_no_traffic_not_nan():
    for title in ("TTFT p95", "Requests/s", "Time to first token", "API errors (5xx share)"):
        defaults = panel("vLLM", title)["fieldConfig"]["defaults"]
        assert defaults["noValue"] == "No traffic"
        assert any(m["type"] == "special" and m["options"]["match"] == "nan"
                   and m["options"]["result"]["text"] == "No traffic" for m in defaults["mappings"])


LABEL_TARGETS = {"container": ("llmwatch-logs", "container"), "name": ("llmwatch-logs", "container"),
                 "model_name": ("llmwatch-vllm", "model"), "requested_model": ("llmwatch-litellm", "model")}


@pytest.mark.parametrize("title", sorted(BOARDS))
def test_series_naming_a_container_or_model_drill_down_for_the_same_time_range(title):
    checked = 0
    for p in panels(BOARDS[title]):
        if p["type"] in ("logs", "heatmap"):
            continue
        links = p["fieldConfig"]["defaults"].get("links", [])
        for label, (uid, variable) in LABEL_TARGETS.items():
            if p["type"] == "table":
                named = any(re.search(rf"\bby \([^)]*\b{label}\b", t["expr"]) for t in p["targets"])
                value = f"${{__data.fields.{label}}}"
            else:
                named = any(f"{{{{{label}}}}}" in t.get("legendFormat", "") for t in p["targets"])
                value = f"${{__field.labels.{label}}}"
            if named:
                checked += 1
                assert f"/d/{uid}?var-{variable}={value}&${{__url_time_range}}" in [link["url"] for link in links], \
                    (p["title"], label)
                if p["type"] == "table":
                    assert not any("${__field.labels." in link["url"] for link in links), p["title"]
    if title not in ("Langfuse analytics", "System health"):
        assert checked, "a board about containers or models has series naming them"


@pytest.mark.parametrize("title", sorted(BOARDS))
def test_boards_link_their_related_boards_with_time_and_variables(title):
    related = [link for link in BOARDS[title]["links"] if link["type"] == "link"]
    assert related
    for link in related:
        assert link["keepTime"] is True and link["includeVars"] is True
        assert re.fullmatch(r"/d/([\w-]+)", link["url"]).group(1) in UIDS - {BOARDS[title]["uid"]}


def test_every_metric_a_panel_reads_is_catalogued_or_recorded():
    """llmwatch's, vLLM's and LiteLLM's names are in docs/metrics.md, recording rules in the rule
    files; node-exporter, cAdvisor and Prometheus names are theirs (the stack test runs them)."""
    missing = set()
    for board in BOARDS.values():
        for query in queries(board):
            if query.language != "promql":
                continue
            for name in metric_names(query.expr):
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                if name in ("up", "ALERTS") or name.startswith(UPSTREAM):
                    continue
                if ":" in name and not name.startswith("vllm:"):
                    ok = name in RECORDED
                else:
                    ok = f"`{name}`" in CATALOG or f"`{base}`" in CATALOG
                if not ok:
                    missing.add((board["title"], name))
    assert not missing


def test_metric_names_are_read_from_queries():
    assert metric_names('sum by (le, model_name) (rate(vllm:x_bucket{a="b"}[$__rate_interval])) / 3.6e6 '
                        '* on (gpu) group_left (c) y_total + $__range_s') == {"vllm:x_bucket", "y_total"}
