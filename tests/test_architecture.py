"""The shape of the code: import contracts (import-linter), the exporter registry and the command.

The contracts live in pyproject.toml ([tool.importlinter]); these tests run them on the real
package and on a copy with one forbidden import added, so a contract that can never fail is
caught too.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llmwatch import cli, exporters
from llmwatch.core.exporter import ExporterSpec

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "exporters" / "llmwatch"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """Run import-linter with root/pyproject.toml on the llmwatch package under root/exporters."""
    env = {**os.environ, "PYTHONPATH": str(root / "exporters"), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo", str(root / "pyproject.toml")],
                          cwd=root, env=env, capture_output=True, text=True, timeout=120)


def test_the_import_contracts_hold():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("module, line, contract", [
    ("exporters/gpu/collector.py", "from llmwatch.exporters.vllm import exposition", "Exporters never import each other"),
    ("exporters/vllm/collector.py", "from llmwatch.simulation import vllm", "Roles import only downwards"),
    ("core/http.py", "from llmwatch.exporters import gpu", "Roles import only downwards"),
    ("exporters/probe/collector.py", "import rich", "needs no tool-only package"),
])
def test_a_forbidden_import_breaks_its_contract(tmp_path, module, line, contract):
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(PACKAGE, tmp_path / "exporters" / "llmwatch", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "exporters" / "llmwatch" / module
    target.write_text(target.read_text() + f"\n{line}  # forbidden on purpose\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    broken = result.stdout.split("Broken contracts")[-1]
    assert contract in broken and module.replace("/", ".").removesuffix(".py") in broken, result.stdout


def test_nothing_imports_a_main_module():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [f"{node.module}.{a.name}" if node.module else a.name for a in node.names] \
                if isinstance(node, ast.ImportFrom) else []
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("__main__"):
                names.append(node.module)
            offenders += [f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[-1] == "__main__"]
    assert offenders == []


def test_every_exporter_folder_is_registered_once_with_its_own_spec():
    folders = sorted(p.name for p in (PACKAGE / "exporters").iterdir() if (p / "__init__.py").is_file())
    assert sorted(exporters.NAMES) == folders
    for name in exporters.NAMES:
        spec = exporters.spec(name)
        assert isinstance(spec, ExporterSpec) and spec.name == name
        assert spec.summary and "\n" not in spec.summary and len(spec.summary) <= 70
        assert set(spec.reads) <= set(exporters.NAMES), "a partial view reads another exporter's section"
    assert exporters.known_sections() == {"common", "docker", *exporters.NAMES}


def test_the_command_lists_every_exporter_and_tool():
    result = subprocess.run([str(Path(sys.executable).with_name("llmwatch")), "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    listed = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ")}
    assert listed == set(exporters.NAMES) | set(cli.TOOLS)
    unknown = subprocess.run([sys.executable, "-m", "llmwatch", "gpux"], capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "unknown command 'gpux'" in unknown.stderr


@pytest.mark.parametrize("tool", sorted(cli.TOOLS))
def test_every_tool_answers_help(tool):
    result = subprocess.run([sys.executable, "-m", "llmwatch", tool, "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: llmwatch ")


def test_the_docs_describe_every_registered_exporter():
    catalog = (REPO / "docs" / "metrics.md").read_text()
    readme = (REPO / "README.md").read_text()
    for spec in exporters.specs():
        assert f"`llmwatch {spec.name}`" in catalog, spec.name
        assert f"`llmwatch {spec.name}`" in readme, spec.name
