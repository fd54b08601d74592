"""The host dimension of the boards (issue 25): a ``host`` variable on every board, every query
filtered on it, per-host rows where a container or GPU name repeats across hosts, and the Overview's
per-host table counted right with two hosts and with series that carry no host at all."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from llmwatch.tools.dashboards.grafana import FLEET_LEVELS, HOST_MATCHER, keep_host, per_host, with_host
from llmwatch.tools.dashboards.overview import HOST_COLUMNS
from tests.conftest import require_binary
from tests.dashboards.boards import load, panels
from tests.procs import REPO

BOARDS = load()


@pytest.mark.parametrize("expr, expected", [
    ('sum by (model_name) (rate(vllm:x_total{container=~"$c"}[$__rate_interval]))',
     'sum by (model_name) (rate(vllm:x_total{host=~"$host", container=~"$c"}[$__rate_interval]))'),
    ("count(up == 0) or vector(0)", 'count(up{host=~"$host"} == 0) or vector(0)'),
    ('a unless on (container) b{state="x"} == 1', 'a{host=~"$host"} unless on (container) b{host=~"$host", state="x"} == 1'),
    ('label_replace(x{a="}{b"}, "t", "$1", "c", "(.*)")', 'label_replace(x{host=~"$host", a="}{b"}, "t", "$1", "c", "(.*)")'),
    ("histogram_quantile(0.95, sum(rate(a_bucket[5m])) by (le)) * 1e3 > bool 0.5",
     'histogram_quantile(0.95, sum(rate(a_bucket{host=~"$host"}[5m])) by (le)) * 1e3 > bool 0.5'),
    ("rate(x[5m] offset 1h) / on (job) group_left (foo) y", 'rate(x{host=~"$host"}[5m] offset 1h) / on (job) group_left (foo) y{host=~"$host"}'),
    ('{__name__=~"vllm:.*"}', '{host=~"$host", __name__=~"vllm:.*"}'),
    ("ALERTS{}", 'ALERTS{host=~"$host"}'),
    ('up{host="a"}', 'up{host="a"}'),
    ("time() - max(foo)", 'time() - max(foo{host=~"$host"})'),
    # recorded over every host: no host label to filter on
    ('model_name:vllm_x:p95_5m{model_name=~"$m"} + cluster:y', 'model_name:vllm_x:p95_5m{model_name=~"$m"} + cluster:y'),
    ('container:vllm_http_errors:ratio_rate5m{container=~"$c"}',
     'container:vllm_http_errors:ratio_rate5m{host=~"$host", container=~"$c"}'),
])
def test_with_host_adds_the_matcher_to_every_selector(expr, expected):
    assert with_host(expr) == expected


def test_keep_host_keeps_machines_apart_and_models_whole():
    assert keep_host("sum by (container) (a) / on (gpu) group_left b") == \
        "sum by (container, host) (a) / on (gpu, host) group_left b"
    assert keep_host("sum by (model_name) (a) and on (model_name) b") == "sum by (model_name) (a) and on (model_name) b"
    assert keep_host("max by (host, name) (a)") == "max by (host, name) (a)"


def prometheus_exprs(board: dict) -> list[str]:
    return ([t["expr"] for p in panels(board) for t in p["targets"] if t["datasource"]["type"] == "prometheus"]
            + [a["expr"] for a in board["annotations"]["list"] if a.get("datasource", {}).get("uid") == "${datasource}"])


@pytest.mark.parametrize("name", sorted(n for n, b in BOARDS.items() if prometheus_exprs(b)))
def test_every_prometheus_query_is_filtered_on_the_host(name):
    """Every selector of every query has the host matcher (a query read again through the filter is
    unchanged), except series recorded over every host; every list by container or GPU keeps it."""
    board = BOARDS[name]
    unfiltered = [e for e in prometheus_exprs(board) if per_host(e) != e]
    assert unfiltered == []
    assert any(HOST_MATCHER in e for e in prometheus_exprs(board))
    variables = board["templating"]["list"]
    host = next(v for v in variables if v["name"] == "host")
    assert variables.index(host) == 1, "host comes right after the datasource: the other variables follow it"
    assert (host["definition"], host["multi"], host["includeAll"], host["allValue"]) == \
        ("label_values(up, host)", True, True, ".*")
    for variable in variables[2:]:
        if variable["type"] == "query" and variable["datasource"]["type"] == "prometheus":
            assert HOST_MATCHER in variable["definition"], variable["name"]


def test_fleet_levels_carry_no_host():
    """The recorded series the filter leaves alone are those whose rules sum the host away: their
    outermost aggregation (the first ``by`` as written) does not keep it."""
    rules = [rule for path in sorted((REPO / "config" / "prometheus" / "rules").glob("*.yml"))
             for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"] if "record" in rule]
    for rule in rules:
        level = rule["record"].split(":")[0]
        if level in FLEET_LEVELS:
            outer = re.search(r"\bby \(([^)]*)\)", rule["expr"])
            assert not outer or "host" not in outer.group(1), rule["record"]


@pytest.mark.integration  # promtool
def test_the_overview_counts_per_host(tmp_path):
    """Two hosts with the same GPU index and container name, and the series of one host without a
    host label (before the label existed): one row each, counted apart; a host picked in the
    variable shows only its row."""
    series = {
        'up{job="node", host="gpu-a"}': "1x20", 'up{job="llmwatch-gpu", host="gpu-b"}': "0x20",
        'up{job="node", host="gpu-b"}': "1x20", 'up{job="node"}': "1x20",
        'llmwatch_gpu_up{gpu="0", host="gpu-a"}': "1x20", 'llmwatch_gpu_up{gpu="0", host="gpu-b"}': "0x20",
        'llmwatch_gpu_up{gpu="0"}': "1x20",
        'llmwatch_vllm_up{container="vllm-a", host="gpu-a"}': "1x20",
        'llmwatch_vllm_container_state{container="vllm-a", host="gpu-a", state="running"}': "1x20",
        'llmwatch_vllm_up{container="vllm-a", host="gpu-b"}': "0x20",
        'llmwatch_vllm_container_state{container="vllm-a", host="gpu-b", state="running"}': "1x20",
        # vllm-a loading on gpu-a would hide gpu-b's if the join ignored the host
        'llmwatch_vllm_up{container="vllm-b", host="gpu-a"}': "0x20",
        'llmwatch_vllm_container_state{container="vllm-b", host="gpu-a", state="starting"}': "1x20",
        'llmwatch_vllm_up{container="vllm-b", host="gpu-b"}': "0x20",
        'llmwatch_vllm_container_state{container="vllm-b", host="gpu-b", state="running"}': "1x20",
    }
    expected = {  # column -> (host -> value) at All
        "GPUs answering": {"gpu-a": 1, "gpu-b": 0, "": 1},
        "GPUs not answering": {"gpu-a": 0, "gpu-b": 1, "": 0},
        "vLLM servers up": {"gpu-a": 1, "gpu-b": 0, "": 0},
        "vLLM servers down or exited": {"gpu-a": 0, "gpu-b": 2, "": 0},
        "Targets down": {"gpu-a": 0, "gpu-b": 1, "": 0},
    }
    records, cases = [], []
    for i, (column, values) in enumerate(expected.items()):
        for choice, regex in (("all", ".*"), ("b", "gpu-b")):
            name = f"column{i}:{choice}"
            records.append({"record": name, "expr": per_host(HOST_COLUMNS[column])
                            .replace("$__range", "3h").replace("$host", regex)})
            rows = values if choice == "all" else {"gpu-b": values["gpu-b"]}
            cases.append({"expr": name, "eval_time": "10m", "exp_samples": [
                {"labels": f'{name}{{host="{h}"}}' if h else name, "value": v} for h, v in rows.items()]})
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"groups": [{"name": "hosts", "rules": records}]}))
    (tmp_path / "hosts_test.yml").write_text(yaml.safe_dump({
        "rule_files": ["hosts.yml"], "evaluation_interval": "1m", "tests": [{
            "interval": "1m", "input_series": [{"series": s, "values": v} for s, v in series.items()],
            "promql_expr_test": cases}]}))
    result = subprocess.run([require_binary("promtool"), "test", "rules", "hosts_test.yml"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_overview_has_its_per_host_table():
    board = BOARDS["llmwatch/overview.json"]
    table = next(p for p in panels(board) if p["title"] == "Hosts")
    assert [t["expr"] for t in table["targets"]] == [per_host(e) for e in HOST_COLUMNS.values()]
    assert table["transformations"][0]["id"] == "merge"


@pytest.mark.integration  # promtool
def test_the_overview_tells_the_age_of_each_hosts_last_sample(tmp_path):
    """A host silent for 5 minutes (its up gone from instant queries) still has its row, from the
    recorded last sample LlmwatchHostLost reads; series without a host get theirs from up."""
    expr = per_host(HOST_COLUMNS["Last sample age"]).replace("$host", ".*").replace("$__range", "3h")
    (tmp_path / "age.yml").write_text(yaml.safe_dump({"groups": [{"name": "age", "rules": [
        {"record": "column:age", "expr": expr}]}]}))
    monitoring = REPO / "config" / "prometheus" / "rules" / "monitoring.yml"
    (tmp_path / "age_test.yml").write_text(yaml.safe_dump({
        "rule_files": [str(monitoring), "age.yml"], "evaluation_interval": "1m", "tests": [{
            "interval": "1m",
            "input_series": [{"series": 'up{job="node", host="gpu-a"}', "values": "1x20"},
                             {"series": 'up{job="node", host="gpu-b"}', "values": "1x4"},
                             {"series": 'up{job="node"}', "values": "1x20"}],
            "promql_expr_test": [{"expr": "column:age", "eval_time": "10m", "exp_samples": [
                {"labels": 'column:age{host="gpu-a"}', "value": 0},
                {"labels": 'column:age{host="gpu-b"}', "value": 360},
                {"labels": "column:age", "value": 0}]}]}]}))
    result = subprocess.run([require_binary("promtool"), "test", "rules", "age_test.yml"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
