"""Small builders for Grafana dashboard JSON (the classic schema Grafana provisions from files).

Why code and not hand-edited JSON: nine boards share one datasource variable, one set of links,
one way to write thresholds, and every panel must carry a unit and a description. Builders make
those rules hard to forget; the JSON they write is committed and is what Grafana loads
(``python -m llmwatch.tools.dashboards`` rewrites it; a test fails when it is stale).
"""

from __future__ import annotations

import copy
import re

PROMETHEUS = {"type": "prometheus", "uid": "${datasource}"}
LOKI = {"type": "loki", "uid": "loki"}
SCHEMA_VERSION = 41
TAG = "llmwatch"

# Palette shared by every threshold, so "orange" means the same thing on every board.
OK, WARN, BAD, INFO = "green", "orange", "red", "blue"


def steps(*pairs) -> dict:
    """Absolute thresholds: ``steps(OK, (WARN, 0.8), (BAD, 0.95))``; the first colour is the base."""
    base, *rest = pairs
    return {"mode": "absolute", "steps": [{"color": base, "value": None}]
            + [{"color": color, "value": value} for color, value in rest]}


def prom(expr: str, legend: str = "", *, instant: bool = False, table: bool = False, heatmap: bool = False,
         min_step: str = "") -> dict:
    """A Prometheus target; ``min_step`` (Grafana's "Min step") keeps Grafana from asking for points
    closer than that, e.g. "5m" for series that are 5-minute rates anyway."""
    target = {"datasource": PROMETHEUS, "expr": expr, "legendFormat": legend or "__auto", "range": not instant,
              "instant": instant}
    if min_step:
        target["interval"] = min_step
    if table:
        target["format"] = "table"
    if heatmap:
        target["format"] = "heatmap"
        target["legendFormat"] = "{{le}}"
    return target


def loki(expr: str, legend: str = "") -> dict:
    return {"datasource": LOKI, "expr": expr, "legendFormat": legend, "queryType": "range"}


def _panel(kind: str, title: str, description: str, targets: list[dict], unit: str, w: int, h: int, *,
           thresholds: dict | None = None, minimum=None, maximum=None, links=None, decimals=None,
           overrides=None, custom=None, options=None, mappings=None, color=None, time_from=None) -> dict:
    defaults = {"unit": unit, "thresholds": thresholds or steps(OK), "mappings": mappings or []}
    for key, value in (("min", minimum), ("max", maximum), ("decimals", decimals), ("links", links),
                       ("custom", custom), ("color", color)):
        if value is not None:
            defaults[key] = value
    datasource = targets[0]["datasource"]
    panel = {"type": kind, "title": title, "description": description, "datasource": datasource,
             "gridPos": {"w": w, "h": h},
             "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
             "options": options or {},
             "targets": [dict(t, refId=chr(ord("A") + i)) for i, t in enumerate(targets)]}
    if time_from:
        panel["timeFrom"] = time_from
        panel["hideTimeOverride"] = False
    return panel


def timeseries(title: str, description: str, targets: list[dict], unit: str, *, w: int = 12, h: int = 8,
               thresholds: dict | None = None, threshold_lines: bool = False, minimum=None, maximum=None,
               stack: bool = False, links=None, overrides=None, decimals=None, bars: bool = False) -> dict:
    custom = {"drawStyle": "bars" if bars else "line", "lineWidth": 1, "fillOpacity": 60 if stack or bars else 10,
              "showPoints": "never", "spanNulls": False,
              "stacking": {"mode": "normal" if stack else "none", "group": "A"},
              "thresholdsStyle": {"mode": "dashed" if threshold_lines else "off"}}
    return _panel("timeseries", title, description, targets, unit, w, h, thresholds=thresholds, minimum=minimum,
                  maximum=maximum, links=links, overrides=overrides, decimals=decimals, custom=custom,
                  color={"mode": "palette-classic"},
                  options={"legend": {"displayMode": "table" if len(targets) > 2 else "list",
                                      "placement": "bottom", "showLegend": True, "calcs": ["lastNotNull", "max"]},
                           "tooltip": {"mode": "multi", "sort": "desc"}})


def one_number(targets: list[dict]) -> list[dict]:
    """Targets as instant queries: a panel that shows only the latest value needs one evaluation, not
    one per step of the range (issue 23: a 24 h stat of ``increase(...[$__range])`` evaluated at
    every step read the whole day 1440 times). Loki targets are left as they are."""
    return [dict(t, instant=True, range=False) if t["datasource"] == PROMETHEUS else t for t in targets]


def stat(title: str, description: str, targets: list[dict], unit: str, *, w: int = 4, h: int = 4,
         thresholds: dict | None = None, links=None, decimals=None, mappings=None, graph: bool = True,
         color_mode: str = "background", time_from: str | None = None, text_mode: str = "auto") -> dict:
    """A single number (per series); without a sparkline (``graph=False``), or when it sums over the
    whole range (``$__range``), it is an instant query."""
    if not graph or any("$__range" in t["expr"] for t in targets):
        targets, graph = one_number(targets), False
    return _panel("stat", title, description, targets, unit, w, h, thresholds=thresholds, links=links,
                  decimals=decimals, mappings=mappings, color={"mode": "thresholds"}, time_from=time_from,
                  options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                           "colorMode": color_mode, "graphMode": "area" if graph else "none",
                           "textMode": text_mode, "justifyMode": "auto", "orientation": "auto",
                           "showPercentChange": False, "wideLayout": True})


def gauge(title: str, description: str, targets: list[dict], unit: str, *, w: int = 6, h: int = 6,
          thresholds: dict | None = None, minimum=0, maximum=1, links=None) -> dict:
    return _panel("gauge", title, description, one_number(targets), unit, w, h, thresholds=thresholds, minimum=minimum,
                  maximum=maximum, links=links, color={"mode": "thresholds"},
                  options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                           "showThresholdMarkers": True, "showThresholdLabels": False})


def bargauge(title: str, description: str, targets: list[dict], unit: str, *, w: int = 12, h: int = 8,
             thresholds: dict | None = None, minimum=0, maximum=None, links=None) -> dict:
    return _panel("bargauge", title, description, one_number(targets), unit, w, h, thresholds=thresholds, minimum=minimum,
                  maximum=maximum, links=links, color={"mode": "thresholds"},
                  options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                           "displayMode": "gradient", "orientation": "horizontal", "showUnfilled": True,
                           "valueMode": "color", "namePlacement": "auto", "sizing": "auto"})


def table(title: str, description: str, targets: list[dict], unit: str, *, w: int = 24, h: int = 8,
          thresholds: dict | None = None, hide: tuple[str, ...] = ("Time",), rename: dict | None = None,
          overrides=None, links=None, merge: bool = False) -> dict:
    """Instant query results as rows; ``hide`` drops columns, ``rename`` titles them."""
    panel = _panel("table", title, description, targets, unit, w, h, thresholds=thresholds, overrides=overrides,
                   links=links, custom={"align": "auto", "cellOptions": {"type": "auto"}, "filterable": True},
                   options={"showHeader": True, "cellHeight": "sm"})
    panel["transformations"] = ([{"id": "merge", "options": {}}] if merge else []) + [
        {"id": "organize", "options": {"excludeByName": {name: True for name in hide},
                                       "renameByName": rename or {}, "indexByName": {}}}]
    return panel


# A heatmap's columns: Grafana's step is the range over "max data points" (default: the panel's width in
# pixels), so a day is drawn in 10-minute cells, an hour at the min step. Finer cells of 5-minute rates
# add nothing to the eye and were the vLLM board's slowest queries (issue 23).
HEATMAP_CELLS = 150


def heatmap(title: str, description: str, expr: str, unit: str, *, w: int = 12, h: int = 8,
            min_step: str = "") -> dict:
    """A latency/length distribution from histogram buckets (``expr`` yields per-``le`` increases)."""
    panel = _panel("heatmap", title, description, [prom(expr, heatmap=True, min_step=min_step)], unit, w, h,
                  custom={"scaleDistribution": {"type": "linear"}, "hideFrom": {"legend": False, "tooltip": False,
                                                                                "viz": False}},
                  options={"calculate": False, "cellGap": 1, "yAxis": {"axisPlacement": "left", "unit": unit},
                           "color": {"mode": "scheme", "scheme": "Oranges", "exponent": 0.5, "steps": 64,
                                     "fill": "dark-orange", "reverse": False},
                           "rowsFrame": {"layout": "auto"}, "tooltip": {"mode": "single", "yHistogram": True},
                           "legend": {"show": True}, "filterValues": {"le": 1e-9}})
    panel["maxDataPoints"] = HEATMAP_CELLS
    return panel


def state_timeline(title: str, description: str, targets: list[dict], unit: str, *, w: int = 12, h: int = 8,
                   thresholds: dict | None = None, mappings=None, links=None) -> dict:
    return _panel("state-timeline", title, description, targets, unit, w, h, thresholds=thresholds,
                  mappings=mappings, color={"mode": "thresholds"}, links=links,
                  custom={"fillOpacity": 80, "lineWidth": 0},
                  options={"showValue": "never", "mergeValues": True, "rowHeight": 0.9, "alignValue": "left",
                           "legend": {"displayMode": "list", "placement": "bottom", "showLegend": False},
                           "tooltip": {"mode": "single", "sort": "none"}})


def logs(title: str, description: str, expr: str, *, w: int = 24, h: int = 12) -> dict:
    """A log panel: no unit applies (it shows lines, not numbers)."""
    panel = _panel("logs", title, description, [loki(expr)], "none", w, h,
                   options={"showTime": True, "wrapLogMessage": True, "sortOrder": "Descending",
                            "enableLogDetails": True, "dedupStrategy": "none", "prettifyLogMessage": False,
                            "showLabels": False, "showCommonLabels": False})
    return panel


def row(title: str) -> dict:
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "gridPos": {"w": 24, "h": 1}}


def value_text(mapping: dict[str, tuple[str, str]]) -> list[dict]:
    """Value mappings ``{"1": ("up", OK)}``: show text instead of a number, coloured."""
    return [{"type": "value", "options": {value: {"text": text, "color": color, "index": i}
                                          for i, (value, (text, color)) in enumerate(mapping.items())}}]


def link(title: str, uid: str, params: str = "") -> dict:
    """A link to another llmwatch board, keeping the time range (and ``params``, e.g. variables)."""
    return {"title": title, "url": f"/d/{uid}?${{__url_time_range}}{'&' + params if params else ''}",
            "targetBlank": False}


def override(field: str, **properties) -> dict:
    """Per-series settings for series named ``field`` (regex), e.g. dashed threshold lines."""
    return {"matcher": {"id": "byRegexp", "options": field},
            "properties": [{"id": key.replace("__", "."), "value": value} for key, value in properties.items()]}


DASHED = {"dash": [10, 10], "fill": "dash"}


def datasource_variable() -> dict:
    return {"type": "datasource", "name": "datasource", "label": "Prometheus", "query": "prometheus",
            "current": {"text": "Prometheus", "value": "prometheus"}, "hide": 0, "refresh": 1, "regex": "",
            "options": [], "skipUrlSync": False}


def query_variable(name: str, label: str, query: str, *, multi: bool = True, include_all: bool = True) -> dict:
    """A label_values() variable on the Prometheus datasource; ``All`` matches every value (``.*``)."""
    return {"type": "query", "name": name, "label": label, "datasource": PROMETHEUS,
            "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery",
                      "qryType": 1},
            "definition": query, "refresh": 2, "sort": 1, "multi": multi, "includeAll": include_all,
            "allValue": ".*" if include_all else None, "regex": "", "hide": 0, "options": [],
            "current": {"text": ["All"], "value": ["$__all"]} if include_all else {}, "skipUrlSync": False}


def loki_label_variable(name: str, label: str, loki_label: str, *, all_value: str = ".+") -> dict:
    """A Loki label's values; ``All`` is ``all_value`` (``.+``: a stream selector needs one matcher
    that matches no empty value; ``.*`` for a label some streams lack, next to such a matcher)."""
    return {"type": "query", "name": name, "label": label, "datasource": LOKI,
            "query": {"type": 1, "label": loki_label, "stream": "", "refId": "LokiVariableQueryEditor-VariableQuery"},
            "definition": f"label_values({loki_label})", "refresh": 2, "sort": 1, "multi": True,
            "includeAll": True, "allValue": all_value, "regex": "", "hide": 0, "options": [],
            "current": {"text": ["All"], "value": ["$__all"]}, "skipUrlSync": False}


def textbox_variable(name: str, label: str, default: str = "") -> dict:
    return {"type": "textbox", "name": name, "label": label, "query": default, "hide": 0,
            "current": {"text": default, "value": default}, "options": [], "skipUrlSync": False}


def annotation(name: str, expr: str, color: str, title: str, text: str = "") -> dict:
    return {"name": name, "datasource": PROMETHEUS, "enable": True, "hide": False, "iconColor": color,
            "expr": expr, "step": "60s", "titleFormat": title, "textFormat": text, "useValueForTime": False}


FIRING_ALERTS = annotation("Critical alerts", 'ALERTS{alertstate="firing", severity="critical"}', "red",
                           "{{alertname}}", "{{instance}} {{container}} {{gpu}}")


def layout(items: list[dict]) -> list[dict]:
    """Place panels left to right in Grafana's 24-column grid, a row header starting a new line."""
    placed, x, y, line_height = [], 0, 0, 0
    for number, item in enumerate(copy.deepcopy(items), start=1):
        w, h = item["gridPos"]["w"], item["gridPos"]["h"]
        if item["type"] == "row" or x + w > 24:
            x, y, line_height = 0, y + line_height, 0
        item["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
        item["id"] = number
        x, line_height = x + w, max(line_height, h)
        if item["type"] == "row":
            x, y, line_height = 0, y + h, 0
        placed.append(item)
    return placed


# The host filter every Prometheus query of every board gets (issue 25): the ``host`` variable,
# whose "All" is ``.*``, which also matches series without a host label (one host, before the
# label existed), so with one host the boards show what they showed before.
HOST_MATCHER = 'host=~"$host"'
# Recorded series that span hosts (a model's requests, latency and SLOs over its servers on every
# host; the fleet's cost): no host label, so the filter leaves them alone (it would hide them).
FLEET_LEVELS = ("model_name", "cluster", "requested_model", "project")
_AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
                 "topk", "quantile", "limitk", "limit_ratio"}
_LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_WORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}
_TOKEN = re.compile(r'''"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`|\[[^\]]*\]|\$\{?\w+\}?|\d[\w.]*|[A-Za-z_:][\w:]*|\{|\(|\S''')


def _closing(expr: str, start: int, opening: str, closing: str) -> int:
    """The index just past the bracket that closes the one at ``start``, strings skipped."""
    depth = 0
    for token in _TOKEN.finditer(expr, start):
        depth += {opening: 1, closing: -1}.get(token.group(), 0)
        if depth == 0:
            return token.end()
    raise ValueError(f"unbalanced {opening} in {expr!r}")


def with_host(expr: str, matcher: str = HOST_MATCHER) -> str:
    """``expr`` with ``matcher`` added to every vector selector that has no host matcher yet.

    Why a pass over finished queries rather than a selector written into each: boards hold a
    hundred-odd hand-written queries, and one left without the filter shows every host's data
    while the variable says otherwise. The scan knows enough PromQL for that: strings, ranges and
    the label lists of by/on/without/ignoring/group_* are skipped, a name followed by "(" or an
    aggregation is a function, a keyword is not a metric, a recorded series of a
    :data:`FLEET_LEVELS` level is left alone, and everything else is a selector."""
    out, pos, skip, label_list = [], 0, 0, False
    for token in _TOKEN.finditer(expr):
        text, end = token.group(), token.end()
        if token.start() < skip:
            continue
        if text == "(" and label_list:
            skip, label_list = _closing(expr, token.start(), "(", ")"), False
            continue
        if text == "{":
            skip = _closing(expr, token.start(), "{", "}")
            if not re.search(r"[{,]\s*host\s*(=|!=|=~|!~)", expr[token.start():skip]):
                inner = expr[end:skip - 1].strip()
                out += [expr[pos:end], matcher + (", " if inner else "")]
                pos = end
            continue
        if not re.match(r"[A-Za-z_:]", text):
            continue
        if text in _LABEL_LISTS:
            label_list = True
            continue
        rest = expr[end:].lstrip()
        if text in _WORDS or text in _AGGREGATIONS or rest.startswith("("):
            continue
        if text.split(":")[0] in FLEET_LEVELS and ":" in text:
            if rest.startswith("{"):
                skip = _closing(expr, expr.index("{", end), "{", "}")
            continue
        if not rest.startswith("{"):
            out += [expr[pos:end], "{" + matcher + "}"]
            pos = end
    return "".join(out) + expr[pos:]


# Labels that name a thing on one machine: a board's aggregation or join that keeps one of them
# keeps the host too, since two hosts can both have GPU 0 or a container named vllm-a.
MACHINE_LABELS = ("container", "name", "gpu", "instance", "device", "mountpoint", "target")


def keep_host(expr: str) -> str:
    """``expr`` with ``host`` added to every ``by (...)`` and ``on (...)`` list that keeps a
    machine's own label (:data:`MACHINE_LABELS`) and not the host yet; lists by model stay as they
    are (a model's requests and latency span its servers on every host)."""
    def add(match: re.Match) -> str:
        labels = [label.strip() for label in match.group(2).split(",") if label.strip()]
        if "host" in labels or not set(labels) & set(MACHINE_LABELS):
            return match.group(0)
        return f"{match.group(1)} ({match.group(2)}, host)"
    return re.sub(r"\b(by|on) \(([^()]*)\)", add, expr)


def per_host(expr: str) -> str:
    """A board's query filtered on the host variable and kept apart per host (:func:`with_host`,
    :func:`keep_host`)."""
    return keep_host(with_host(expr))


def host_variable() -> dict:
    """The ``host`` variable every Prometheus board has, first so the others list only its
    containers, GPUs and models; its "All" (``.*``) matches series without a host label too."""
    return query_variable("host", "Host", "label_values(up, host)")


def _host_filtered(variable: dict) -> dict:
    """A label_values() variable listing only the selected hosts' values."""
    match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable.get("definition", ""))
    if variable.get("type") != "query" or variable["datasource"] != PROMETHEUS or not match \
            or variable["name"] == "host":
        return variable
    query = f"label_values({with_host(match.group(1))}, {match.group(2)})"
    return dict(variable, definition=query, query=dict(variable["query"], query=query))


def dashboard(uid: str, title: str, description: str, panels: list[dict], *, variables: list[dict] | None = None,
              annotations: list[dict] = (), refresh: str = "30s", time_from: str = "now-6h",
              prometheus: bool = True, related: list[dict] = ()) -> dict:
    """A board; ``prometheus=False`` leaves out the Prometheus datasource picker (Loki-only boards);
    ``related``: links to related boards at the top (drill.related). A Prometheus board gets the
    ``host`` variable, and every Prometheus query is filtered on it (:func:`per_host`)."""
    builtin = {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
               "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard"}
    if prometheus:
        panels = [dict(panel, targets=[dict(target, expr=per_host(target["expr"]))
                                       if target["datasource"] == PROMETHEUS else target
                                       for target in panel["targets"]]) if "targets" in panel else panel
                  for panel in panels]
        annotations = [dict(a, expr=per_host(a["expr"])) if a["datasource"] == PROMETHEUS else a for a in annotations]
        variables = [host_variable(), *(_host_filtered(v) for v in variables or [])]
    return {
        "uid": uid, "title": title, "description": description, "tags": [TAG], "editable": False,
        "graphTooltip": 1, "timezone": "browser", "refresh": refresh, "schemaVersion": SCHEMA_VERSION,
        "time": {"from": time_from, "to": "now"}, "timepicker": {}, "fiscalYearStartMonth": 0, "liveNow": False,
        "links": [{"type": "dashboards", "tags": [TAG], "asDropdown": False, "title": "llmwatch",
                   "includeVars": False, "keepTime": True, "targetBlank": False, "icon": "external link",
                   "tooltip": "The other llmwatch boards"},
                  *related],
        "annotations": {"list": [builtin, *annotations]},
        "templating": {"list": [datasource_variable()] * prometheus + [*(variables or [])]},
        "panels": layout(panels),
    }
