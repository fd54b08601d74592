"""The dashboards as files: what Grafana would refuse or show wrongly, checked without Grafana.
(That every query returns data is tests/dashboards/test_queries.py.)"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from llmwatch.tools.dashboards import BOARDS, FOLDER, render
from llmwatch.tools.dashboards import cli as dashboards_main
from tests.dashboards.boards import DASHBOARDS, BUILTINS, expand, load, panels, queries, referenced, variable_names
from tests.procs import REPO

BOARDS_ON_DISK = load()
PROVISIONING = REPO / "config" / "grafana" / "provisioning"
DATASOURCE_UIDS = {d["uid"]: d["type"] for d in
                   yaml.safe_load((PROVISIONING / "datasources" / "datasources.yml").read_text())["datasources"]}
LOGQL_CHECK = REPO / "tests" / "dashboards" / "logql"
# Seven boards plus Overview and Cost & capacity.
TITLES = {"Overview", "System health", "GPU", "Docker containers", "vLLM", "LiteLLM", "Langfuse analytics", "Logs",
          "Cost & capacity"}


def every_panel():
    return [(name, panel) for name, board in BOARDS_ON_DISK.items() for panel in panels(board)]


def test_the_committed_json_is_what_the_code_builds(tmp_path):
    assert set(BOARDS_ON_DISK) == set(render()), "a dashboard file was added or removed by hand"
    assert dashboards_main.main(["--check"]) == 0, "run: llmwatch dashboards"
    # --check fails on a stale file and the writer repairs it
    out = tmp_path / "dashboards"
    assert dashboards_main.main(["--out", str(out)]) == 0
    (out / FOLDER / "gpu.json").write_text("{}")
    assert dashboards_main.main(["--out", str(out), "--check"]) == 1
    assert dashboards_main.main(["--out", str(out)]) == 0
    assert json.loads((out / FOLDER / "gpu.json").read_text())["uid"] == "llmwatch-gpu"


def test_nine_boards_with_unique_uids_in_one_folder():
    assert {b["title"] for b in BOARDS_ON_DISK.values()} == TITLES
    assert len(BOARDS) == 9
    uids = [b["uid"] for b in BOARDS_ON_DISK.values()]
    assert len(set(uids)) == len(uids) and all(len(uid) <= 40 for uid in uids)
    assert all(path.startswith(f"{FOLDER}/") for path in BOARDS_ON_DISK)
    assert all(b["editable"] is False and "llmwatch" in b["tags"] for b in BOARDS_ON_DISK.values())


@pytest.mark.parametrize("name,panel", every_panel(), ids=lambda x: x if isinstance(x, str) else x["title"])
def test_every_panel_has_a_description_unit_thresholds_and_a_provisioned_datasource(name, panel):
    assert len(panel["description"]) > 40, "say what the panel shows and what bad looks like"
    defaults = panel["fieldConfig"]["defaults"]
    if panel["type"] != "logs":  # a log panel shows lines; no unit applies
        assert defaults.get("unit"), "every panel needs a unit ('none' for a plain count)"
        assert defaults["thresholds"]["steps"][0]["value"] is None
    for target in panel["targets"]:
        datasource = target.get("datasource", panel["datasource"])
        uid = datasource["uid"]
        if uid == "${datasource}":
            assert datasource["type"] == "prometheus"
        else:
            assert DATASOURCE_UIDS.get(uid) == datasource["type"], f"{uid} is not a provisioned datasource"


@pytest.mark.parametrize("name", sorted(BOARDS_ON_DISK))
def test_queries_use_only_defined_variables_and_no_hardcoded_instance(name):
    board = BOARDS_ON_DISK[name]
    defined = variable_names(board) | set(BUILTINS)
    uses_prometheus = any(q.language == "promql" for q in queries(board))
    assert [v["name"] for v in board["templating"]["list"]].count("datasource") == uses_prometheus
    for query in queries(board):
        assert referenced(query.expr) <= defined, (query.panel, referenced(query.expr) - defined)
        assert not re.search(r'\b(instance|job)\s*=~?\s*"[^$"]', query.expr), (query.panel, query.expr)
        # counters and histograms over time use Grafana's window, never a fixed one
        windows = set(re.findall(r"\[([^\]]+)\]", query.expr))
        assert windows <= {"$__rate_interval", "$__range", "$__auto"}, (query.panel, windows)
    for variable in board["templating"]["list"]:
        if variable["type"] == "query" and variable["datasource"]["type"] == "prometheus":
            assert referenced(variable["definition"]) <= defined
            expand(variable["definition"], {v: ".*" for v in variable_names(board)})


@pytest.mark.parametrize("name", sorted(BOARDS_ON_DISK))
def test_layout_fits_the_grid_and_panels_do_not_overlap(name):
    board = BOARDS_ON_DISK[name]
    cells = set()
    ids = [p["id"] for p in board["panels"]]
    assert len(set(ids)) == len(ids)
    for panel in board["panels"]:
        g = panel["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine


def test_links_point_at_existing_boards_and_keep_the_time_range():
    uids = {b["uid"] for b in BOARDS_ON_DISK.values()}
    linked = set()
    for name, panel in every_panel():
        for target_link in panel.get("links", []) + panel["fieldConfig"]["defaults"].get("links", []):
            match = re.match(r"/d/([\w-]+)\?", target_link["url"])
            if match:
                assert match.group(1) in uids, target_link["url"]
                assert "${__url_time_range}" in target_link["url"]
                linked.add(match.group(1))
    overview = next(b for b in BOARDS_ON_DISK.values() if b["uid"] == "llmwatch-overview")
    tiles = [p for p in panels(overview) if p["type"] != "table"]
    assert all(p["fieldConfig"]["defaults"].get("links") for p in tiles), "every Overview tile links somewhere"
    # vLLM and container panels open the container's logs
    assert "llmwatch-logs" in linked
    vllm = next(b for b in BOARDS_ON_DISK.values() if b["uid"] == "llmwatch-vllm")
    assert any("var-container=${__field.labels.container}" in link["url"]
               for p in panels(vllm) for link in p["fieldConfig"]["defaults"].get("links", []))


def test_thresholds_match_the_alerts():
    """The TTFT and inter-token latency lines on the boards are the alert limits, not other numbers."""
    rules = yaml.safe_load((REPO / "config" / "prometheus" / "rules" / "vllm.yml").read_text())
    limits = {}
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") in ("VllmTtftP95High", "VllmTpotP95High"):
                limits.setdefault(rule["alert"], set()).add(float(rule["expr"].split(" > ")[1].split()[0]))
    vllm = next(b for b in BOARDS_ON_DISK.values() if b["uid"] == "llmwatch-vllm")
    by_title = {p["title"]: p for p in panels(vllm)}

    def lines(title):
        return {s["value"] for s in by_title[title]["fieldConfig"]["defaults"]["thresholds"]["steps"][1:]}

    assert lines("TTFT p95") == limits["VllmTtftP95High"]
    # per-model panels draw each model's own SLO (a recording rule from the same mixin), not the default's
    for title, record in (("Time to first token", "model_name:llmwatch_slo_ttft_p95_seconds:target"),
                          ("Inter-token latency", "model_name:llmwatch_slo_tpot_p95_seconds:target")):
        assert any(record in t["expr"] for t in by_title[title]["targets"]), title
        assert lines(title) == set(), title


def test_grafana_provisions_the_folder_and_opens_overview_at_home():
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "dashboards.yml").read_text())["providers"][0]
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["grafana"]
    mount = next(v for v in compose["volumes"] if v.startswith("./dashboards:"))
    assert mount.split(":")[1] == provider["options"]["path"]
    home = compose["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/{FOLDER}/overview.json"
    assert (DASHBOARDS / FOLDER / "overview.json").exists()


@pytest.mark.integration
def test_logql_queries_parse_with_grafanas_grammar():
    node = shutil.which("node")
    if not node or not (LOGQL_CHECK / "node_modules" / "@grafana" / "lezer-logql").exists():
        pytest.skip("node and tests/dashboards/logql's packages are needed (scripts/test installs them)")
    logql = [(q, expand(q.expr, {"container": ".+", "search": "error", "host": ".*"}))
             for board in BOARDS_ON_DISK.values() for q in queries(board) if q.language == "logql"]
    assert len(logql) >= 9
    broken = ['{a="b"} |~ ', 'sum(count_over_time({a="b"}[1m]) by', '{container=~".+"} | json | __error__ ==']

    def check(exprs):
        result = subprocess.run([node, "check.mjs"], cwd=LOGQL_CHECK, input=json.dumps(exprs), capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return [problem["query"] for problem in json.loads(result.stdout)]

    assert check(broken) == broken  # the checker does find errors
    assert check([expr for _, expr in logql]) == []
    # the Loki ruler's alerts (config/loki/rules), which no test runs on a real Loki
    ruler = [rule["expr"] for path in sorted((REPO / "config" / "loki" / "rules").rglob("*.yml"))
             for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]
    assert len(ruler) >= 2
    assert check(ruler) == []
