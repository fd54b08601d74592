"""The boards against Grafana's own published types: the npm package ``@grafana/schema``
(tests/dashboards/schema, pinned by its lock file), which carries the dashboard model and every panel
plugin's options and custom field config. Grafana cannot run here; its types can.

Each board becomes a TypeScript file that assigns the JSON, as an object literal, to the ``Board`` type
of tests/dashboards/schema/board.ts, and one ``tsc`` run checks them all. Object literals get
TypeScript's excess property check, so an unknown key at any depth (a misspelled option, an option of
another panel type, an option Grafana has dropped) fails, as does a value of the wrong type; each
problem is reported by board, panel title and key."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.dashboards.boards import load, panels
from tests.procs import REPO

SCHEMA = REPO / "tests" / "dashboards" / "schema"
TSC = SCHEMA / "node_modules" / ".bin" / "tsc"
# file(line,column): error TS1234: message, then indented lines that elaborate it
_DIAGNOSTIC = re.compile(r"^(?P<file>[^\s(]+)\((?P<line>\d+),\d+\): error (?P<message>TS\d+: .*)$")


def tsc() -> str:
    """The pinned TypeScript compiler; skipped without it, failed under CI=true."""
    if shutil.which("node") and TSC.exists():
        return str(TSC)
    message = "node and tests/dashboards/schema's packages are needed (scripts/test installs them)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def typescript(board: dict) -> tuple[str, list[tuple]]:
    """The module that types ``board``, and the JSON path of the key on each of its lines: the literal
    has one key or element a line, so the line tsc names for an error gives the key."""
    lines = [f"import type {{ Board }} from {json.dumps(str(SCHEMA / 'board'))};", ""]
    paths: list[tuple] = [(), ()]

    def emit(value, path: tuple, prefix: str, depth: int) -> None:
        pad = "  " * depth
        if isinstance(value, (dict, list)) and value:
            items = value.items() if isinstance(value, dict) else enumerate(value)
            opening, closing = "{}" if isinstance(value, dict) else "[]"
            lines.append(f"{pad}{prefix}{opening}")
            paths.append(path)
            for key, item in items:
                emit(item, path + (key,), f"{json.dumps(key)}: " if isinstance(value, dict) else "", depth + 1)
            lines.append(f"{pad}{closing},")
        else:
            lines.append(f"{pad}{prefix}{json.dumps(value)},")
        paths.append(path)

    emit(board, (), "export const board: Board = ", 0)
    lines[-1] = lines[-1].rstrip(",") + ";"
    return "\n".join(lines) + "\n", paths


def dotted(keys: tuple) -> str:
    return "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in keys).lstrip(".")


def where(board: dict, path: tuple) -> str:
    """A JSON path as a reader finds it: the panel by its title, then the keys below it."""
    node, panel, i = board, None, 0
    while path[i:i + 1] == ("panels",) and len(path) > i + 1 and isinstance(path[i + 1], int):
        node = panel = node["panels"][path[i + 1]]
        i += 2
    return " ".join(filter(None, [f'panel "{panel["title"]}"' if panel else "", dotted(path[i:]) or "(the board)"]))


def check(boards: dict[str, dict], workdir: Path) -> list[str]:
    """Type-check ``boards`` (by name) in one tsc run; the problems, each as ``board: where: message``."""
    files = {}
    for number, (name, board) in enumerate(sorted(boards.items())):
        text, paths = typescript(board)
        path = workdir / f"board{number}.ts"
        path.write_text(text)
        files[path.name] = (name, board, paths)
    (workdir / "tsconfig.json").write_text(json.dumps({"extends": str(SCHEMA / "tsconfig.json"),
                                                       "files": sorted(files)}))
    result = subprocess.run([tsc(), "-p", str(workdir / "tsconfig.json")], cwd=workdir, capture_output=True,
                            text=True, timeout=120)
    problems: list[str] = []
    for line in result.stdout.splitlines():
        match = _DIAGNOSTIC.match(line)
        if match and match["file"] in files:
            name, board, paths = files[match["file"]]
            problems.append(f"{name}: {where(board, paths[int(match['line']) - 1])}: {match['message']}")
        elif match or not problems:  # an error outside the boards (board.ts, the schema) or one tsc could not place
            problems.append(line)
        else:
            problems[-1] += " " + line.strip()
    assert problems or result.returncode == 0, result.stdout + result.stderr
    return problems


def test_every_board_matches_grafanas_published_types(tmp_path):
    boards = load()
    assert len(boards) >= 9
    assert check(boards, tmp_path) == []


# A mistake, on the first panel of a type on a board: (board, panel type, key path under the panel, value).
MISTAKES = {
    "a misspelled legend key": ("vllm", "timeseries", ("options", "legend", "dispalyMode"), "table"),
    "a misspelled reducer key": ("overview", "stat", ("options", "reduceOptions", "calcz"), ["max"]),
    "an option of another panel type": ("gpu", "stat", ("options", "legend"), {"showLegend": True}),
    "a misspelled custom field config key": ("system", "timeseries",
                                             ("fieldConfig", "defaults", "custom", "lineWidht"), 2),
    "an override of a property the panel lacks": ("litellm", "timeseries",
                                                  ("fieldConfig", "overrides", 0, "properties", 0, "id"),
                                                  "custom.cellOptions"),
    "an override value of the wrong shape": ("system", "timeseries", ("fieldConfig", "overrides", 0, "properties", 0),
                                             {"id": "color", "value": {"mode": "fixd"}}),
    "an option Grafana dropped (the table footer moved to field config)": ("containers", "table",
                                                                           ("options", "footer"), {"show": False}),
    "a value the option does not take": ("cost", "timeseries", ("options", "tooltip", "mode"), "several"),
    "a panel type Grafana lacks": ("langfuse", "stat", ("type",), "stats"),
}


def test_a_misspelled_option_fails_naming_the_board_panel_and_key(tmp_path):
    on_disk = load()
    boards, expected = {}, []
    for mistake, (stem, kind, keys, value) in MISTAKES.items():
        name = f"llmwatch/{stem}.json"
        board = copy.deepcopy(on_disk[name])
        panel = next(p for p in panels(board) if p["type"] == kind)
        parent = panel
        if keys[:2] == ("fieldConfig", "overrides") and not panel["fieldConfig"]["overrides"]:
            panel["fieldConfig"]["overrides"].append({"matcher": {"id": "byName", "options": "x"},
                                                      "properties": [{"id": "unit", "value": "s"}]})
        for key in keys[:-1]:
            parent = parent[key]
        parent[keys[-1]] = value
        boards[f"{name} with {mistake}"] = board
        expected.append(f'{name} with {mistake}: panel "{panel["title"]}" {dotted(keys)}')
    problems = check(boards, tmp_path)
    for start in expected:
        assert any(p.startswith(start) for p in problems), (start, problems)
    assert {p.split(": panel ")[0] for p in problems} == set(boards), problems  # each mistake fails, and only it
    misspelled = next(p for p in problems if " legend key" in p)
    assert "'\"dispalyMode\"' does not exist" in misspelled


def test_the_types_are_those_of_the_grafana_release_the_stack_runs():
    """Bumping Grafana's image means checking the boards against its types again: the package is the same
    minor release as the image (its patch releases have changed no dashboard or panel type), and the README
    names it."""
    package = json.loads((SCHEMA / "package.json").read_text())["dependencies"]["@grafana/schema"]
    lock = json.loads((SCHEMA / "package-lock.json").read_text())["packages"]["node_modules/@grafana/schema"]
    assert lock["version"] == package
    image = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["grafana"]["image"]
    assert image.startswith("grafana/grafana:")
    assert image.split(":")[1].split(".")[:2] == package.split(".")[:2]
    assert f"`@grafana/schema` {package}" in (REPO / "README.md").read_text()
