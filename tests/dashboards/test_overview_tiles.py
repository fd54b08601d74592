"""The Overview's health tiles count what is down, absent or exited, checked with promtool: a
board reading sum(up) against a green threshold of 1 stays green with 3 of 4 servers up."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from llmwatch.tools.dashboards.overview import GPUS_NOT_ANSWERING, VLLM_NOT_SERVING
from tests.conftest import require_binary
from tests.dashboards.boards import load, panels

pytestmark = pytest.mark.integration  # promtool

SERIES = {
    # a: serving; b: loading its model within its grace; c: running, not answering after it;
    # d: exited after 5 minutes; e: removed after 5 minutes (its series gone)
    'llmwatch_vllm_up{container="a"}': "1x20",
    'llmwatch_vllm_container_state{container="a", state="running"}': "1x20",
    'llmwatch_vllm_up{container="b"}': "0x20",
    'llmwatch_vllm_container_state{container="b", state="starting"}': "1x20",
    'llmwatch_vllm_container_state{container="b", state="running"}': "0x20",
    'llmwatch_vllm_up{container="c"}': "0x20",
    'llmwatch_vllm_container_state{container="c", state="running"}': "1x20",
    'llmwatch_vllm_container_state{container="c", state="starting"}': "0x20",
    'llmwatch_vllm_up{container="d"}': "1x5",
    'llmwatch_vllm_container_state{container="d", state="running"}': "1x5 0x14",
    'llmwatch_vllm_container_state{container="d", state="exited"}': "0x5 1x14",
    'llmwatch_vllm_up{container="e"}': "1x5",
    'llmwatch_vllm_container_state{container="e", state="running"}': "1x5",
    # GPU 0 answers, 1 does not, 2 fell off the bus after 5 minutes
    'llmwatch_gpu_up{gpu="0"}': "1x20",
    'llmwatch_gpu_up{gpu="1"}': "0x20",
    'llmwatch_gpu_up{gpu="2"}': "1x5",
}


def test_tiles_count_down_exited_and_gone_but_not_starting(tmp_path):
    # the board's range: the Overview opens on the last 3 hours; the host variable at All
    rules = {"groups": [{"name": "tiles", "rules": [
        {"record": "tile:vllm_not_serving", "expr": VLLM_NOT_SERVING.replace("$__range", "3h").replace("$host", ".*")},
        {"record": "tile:gpus_not_answering", "expr": GPUS_NOT_ANSWERING.replace("$__range", "3h").replace("$host", ".*")}]}]}
    (tmp_path / "tiles.yml").write_text(yaml.safe_dump(rules))
    cases = [("tile:vllm_not_serving", "2m", 1), ("tile:vllm_not_serving", "15m", 3),  # c; c, d, e
             ("tile:gpus_not_answering", "2m", 1), ("tile:gpus_not_answering", "15m", 2)]
    tests = {"rule_files": ["tiles.yml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": [{"series": s, "values": v} for s, v in SERIES.items()],
        "promql_expr_test": [{"expr": expr, "eval_time": at, "exp_samples": [{"labels": expr, "value": n}]}
                             for expr, at, n in cases]}]}
    (tmp_path / "tiles_test.yml").write_text(yaml.safe_dump(tests))
    result = subprocess.run([require_binary("promtool"), "test", "rules", "tiles_test.yml"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_overview_uses_them_red_above_zero():
    board = load()["llmwatch/overview.json"]
    tiles = {p["title"]: p for p in panels(board)}
    for title, expr in (("vLLM servers down or exited", VLLM_NOT_SERVING), ("GPUs not answering", GPUS_NOT_ANSWERING)):
        panel = tiles[title]
        assert [t["expr"] for t in panel["targets"]] == [expr]
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert [s["value"] for s in steps] == [None, 1], json.dumps(steps)
    assert not [p["title"] for p in panels(board) if any("sum(llmwatch_vllm_up)" in t.get("expr", "")
                                                          or "sum(llmwatch_gpu_up)" in t.get("expr", "")
                                                          for t in p.get("targets", []))]
