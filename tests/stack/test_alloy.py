"""Alloy's log pipeline (config/alloy/config.alloy): one spelling per level whatever the program
wrote, and one entry per Python traceback. Alloy itself cannot run here, so its stages are read
from the file and applied with Python's re, which reads these expressions as Alloy's RE2 does;
the Logs board's queries are checked against the spelling they produce."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from llmwatch.mixin import LOG_ERROR_LEVELS, LOG_LEVELS
from llmwatch.tools.dashboards import logs

REPO = Path(__file__).resolve().parents[2]
CONFIG = (REPO / "config" / "alloy" / "config.alloy").read_text()


def _string(block: str, key: str) -> list[str]:
    """Every ``key = "..."`` value of the blocks named ``block``, unescaped (Alloy strings escape as JSON does)."""
    bodies = re.findall(rf"^\s*{re.escape(block)} {{\n(.*?)^\s*}}", CONFIG, re.M | re.S)
    return [json.loads(value) for body in bodies for value in re.findall(rf'^\s*{key}\s*=\s*("(?:[^"\\]|\\.)*")', body, re.M)]


FIRSTLINE = re.compile(_string("stage.multiline", "firstline")[0])
LEVEL_REGEXES = [re.compile(e) for e in _string("stage.regex", "expression")]
REPLACES = list(zip(_string("stage.replace", "expression"), _string("stage.replace", "replace"), strict=True))


def entries(lines: list[str]) -> list[str]:
    """What stage.multiline sends on: a line matching firstline starts an entry, others join it."""
    out: list[str] = []
    for line in lines:
        if FIRSTLINE.search(line) or not out:
            out.append(line)
        else:
            out[-1] += "\n" + line
    return out


def level(entry: str) -> str | None:
    """The level label: the regex stages, then logfmt's level=, then the replace stages in order."""
    found = None
    for regex in LEVEL_REGEXES:
        if m := regex.search(entry):
            found = m.group("level")
    if m := re.search(r'(?:^|\s)level="?([^\s"]+)', entry.split("\n", 1)[0]):
        found = m.group(1)
    for expression, replace in REPLACES:
        if found is not None and (m := re.search(expression, found)):
            found = found[:m.start(1)] + replace + found[m.end(1):]
    return found


@pytest.mark.parametrize("written, label", [
    ("error", "ERROR"), ("ERROR", "ERROR"), ("Error", "ERROR"), ("err", "ERROR"), ("ERR", "ERROR"),
    ("fatal", "CRITICAL"), ("critical", "CRITICAL"), ("CRIT", "CRITICAL"), ("panic", "CRITICAL"),
    ("warn", "WARNING"), ("Warning", "WARNING"), ("WARN", "WARNING"),
    ("info", "INFO"), ("notice", "INFO"), ("debug", "DEBUG"), ("trace", "DEBUG"), ("dbg", "DEBUG"),
])
def test_levels_get_one_spelling_whatever_the_case(written, label):
    assert level(f"ts=2026-12-02T00:00:00Z level={written} msg=x") == label
    assert label in LOG_LEVELS


@pytest.mark.parametrize("line, label", [
    ('level=error ts=2026-12-02T00:00:00Z caller=push.go:1 msg="push failed"', "ERROR"),  # Loki
    ('logger=context userId=0 t=2026-12-02T00:00:00Z level=error msg="Request error"', "ERROR"),  # Grafana
    ("ts=2026-12-02T00:00:00Z level=warn msg=retrying component=loki.write", "WARNING"),  # Alloy
    ("time=2026-12-02T00:00:00Z level=ERROR source=manager.go:1 msg=x", "ERROR"),  # Prometheus 3
    ("ERROR 12-02 00:00:01 [core.py:700] EngineCore failed", "ERROR"),  # vLLM
    ("(APIServer pid=1) WARNING 12-02 00:00:01 [api_server.py:1] slow", "WARNING"),
    ("ERROR:    Exception in ASGI application", "ERROR"),  # uvicorn (LiteLLM, vLLM's API server)
    ("00:00:01 - LiteLLM Proxy:ERROR: proxy_server.py:1 - boom", "ERROR"),
])
def test_the_logs_board_counts_errors_of_every_program(line, label):
    assert level(line) == label
    board_levels = re.search(r'level=~"([^"]+)"', logs.ERRORS).group(1)
    assert (re.fullmatch(board_levels, label) is not None) == (label in LOG_ERROR_LEVELS)


def test_a_traceback_is_one_entry_with_the_level_of_the_line_that_logged_it():
    lines = [
        "(APIServer pid=1) INFO 12-02 00:00:00 [api_server.py:1] Started",
        "(EngineCore_DP0 pid=7) ERROR 12-02 00:00:01 [core.py:700] EngineCore encountered a fatal error.",
        "(EngineCore_DP0 pid=7) Traceback (most recent call last):",
        '(EngineCore_DP0 pid=7)   File "/usr/lib/python3.12/site-packages/vllm/v1/engine/core.py", line 691, in run',
        "(EngineCore_DP0 pid=7)     engine_core.run_busy_loop()",
        "(EngineCore_DP0 pid=7) torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
        "ERROR:    Exception in ASGI application",
        "Traceback (most recent call last):",
        '  File "/app/x.py", line 3, in f',
        '    raise ValueError("boom")',
        "",
        "During handling of the above exception, another exception occurred:",
        "",
        "ValueError: boom",
        'INFO:     127.0.0.1:5000 - "GET /health HTTP/1.1" 200 OK',
        "ts=2026-12-02T00:00:00.000Z level=INFO logger=llmwatch msg=ok",
        '{"level": "ERROR", "message": "x"}',
        "2026-12-02 00:00:00,000 - something",
        "[2026-12-02 00:00:00] bracketed",
    ]
    got = entries(lines)
    assert [e.split("\n", 1)[0] for e in got] == [lines[0], lines[1], lines[6], *lines[14:]]
    engine, asgi = got[1], got[2]
    assert engine.count("\n") == 4 and level(engine) == "ERROR" and "CUDA out of memory" in engine
    assert asgi.endswith("ValueError: boom") and level(asgi) == "ERROR"
