"""scripts/build-pinned with a stand-in `go` that records what it is asked: the versions come from
docker-compose.yml, the module versions and version stamps are upstream's, a built binary is reused,
a failed build names its module, and without Go the callers are told to fall back."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.procs import REPO
from tests.stack.test_pinned_versions import pinned_tag

SCRIPT = REPO / "scripts" / "build-pinned"

# Answers `go mod download -json M@V` with a source folder, `go build -o OUT` with a tiny program,
# `go env GOVERSION`; every call is logged with CGO_ENABLED and GOWORK.
FAKE_GO = r"""#!/usr/bin/env bash
echo "CGO_ENABLED=${CGO_ENABLED:-} GOWORK=${GOWORK:-} PWD=$PWD go $*" >>"$FAKE_GO_LOG"
case "$1 $2" in
    "mod download")
        module_at=${!#}
        if [ -n "${FAKE_GO_MISSING:-}" ]; then
            printf '{\n\t"Path": "%s",\n\t"Error": "%s: 404 Not Found"\n}\n' "${module_at%@*}" "$module_at"; exit 1
        fi
        dir="$FAKE_GO_SOURCES/${module_at//\//_}"
        mkdir -p "$dir"
        printf '{\n\t"Path": "%s",\n\t"Dir": "%s",\n\t"Origin": {\n\t\t"Hash": "0123abcd"\n\t}\n}\n' "${module_at%@*}" "$dir"
        ;;
    "env GOVERSION") echo go1.26.0 ;;
    build*)
        [ -z "${FAKE_GO_FAIL:-}" ] || { echo "compile error" >&2; exit 1; }
        while [ $# -gt 0 ]; do [ "$1" = -o ] && out=$2; shift; done
        printf '#!/bin/sh\necho built\n' >"$out"; chmod +x "$out"
        ;;
esac
"""


@pytest.fixture
def fake_go(tmp_path):
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    go = bin_dir / "go"
    go.write_text(FAKE_GO)
    go.chmod(go.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "go.log"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "FAKE_GO_LOG": str(log),
           "FAKE_GO_SOURCES": str(tmp_path / "sources"), "PINNED_CACHE_DIR": str(tmp_path / "pinned")}

    def run(*names: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(SCRIPT), *names], capture_output=True, text=True, env=env | extra, timeout=60)

    run.log = log
    run.env = env
    run.pinned = tmp_path / "pinned"
    return run


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_builds_the_pinned_versions_from_their_modules_and_reuses_them(fake_go):
    prometheus, alertmanager = pinned_tag("prom/prometheus"), pinned_tag("prom/alertmanager")
    major, minor, patch = (int(part) for part in prometheus.removeprefix("v").split("."))
    prometheus_module = f"v0.{major * 100 + minor}.{patch}"  # Prometheus 3.13.2 is the Go module v0.313.2

    first = fake_go()
    assert first.returncode == 0, first.stderr
    expected = {name: fake_go.pinned / f"{name}-{tag.removeprefix('v')}" / name for name, tag in
                (("prometheus", prometheus), ("promtool", prometheus),
                 ("alertmanager", alertmanager), ("amtool", alertmanager))}
    assert first.stdout.splitlines() == [f"{name} {path}" for name, path in expected.items()]
    assert all(os.access(path, os.X_OK) for path in expected.values())

    log = calls(fake_go.log)
    assert f"go mod download -json github.com/prometheus/prometheus@{prometheus_module}" in "\n".join(log)
    assert f"go mod download -json github.com/prometheus/alertmanager@{alertmanager}" in "\n".join(log)
    builds = [line for line in log if " go build " in line]
    assert len(builds) == 4
    for line, name, tag in zip(builds, expected, (prometheus, prometheus, alertmanager, alertmanager)):
        assert line.startswith("CGO_ENABLED=0 GOWORK=off ") and " -trimpath " in line and " -tags netgo " in line
        assert f"-X github.com/prometheus/common/version.Version={tag.removeprefix('v')} " in line
        assert "-X github.com/prometheus/common/version.Revision=0123abcd " in line
        assert line.endswith(f"./cmd/{name}")
    # Alertmanager builds from a copy with a stand-in for its npm-built UI, not from the module cache
    alertmanager_build = builds[2]
    assert f"PWD={fake_go.pinned.parent / 'sources'}" not in alertmanager_build

    again = fake_go()
    assert again.returncode == 0 and again.stdout == first.stdout
    assert calls(fake_go.log) == log, "a binary already built is reused, Go is not asked again"


def test_the_other_binaries_on_request(fake_go):
    result = fake_go("node_exporter")
    assert result.returncode == 0, result.stderr
    tag = pinned_tag("prom/node-exporter")
    assert result.stdout == f"node_exporter {fake_go.pinned / f'node_exporter-{tag[1:]}' / 'node_exporter'}\n"
    assert f"go mod download -json github.com/prometheus/node_exporter@{tag}" in fake_go.log.read_text()


def test_a_failed_build_names_the_module_and_leaves_nothing(fake_go):
    result = fake_go("promtool", FAKE_GO_FAIL="1")
    assert result.returncode == 1 and result.stdout == ""
    assert "github.com/prometheus/prometheus@v0." in result.stderr and "failed" in result.stderr
    assert not [p for p in fake_go.pinned.rglob("*") if p.is_file() and p.name != ".lock"]


def test_a_module_that_cannot_be_downloaded_is_named(fake_go):
    result = fake_go("amtool", FAKE_GO_MISSING="1")
    assert result.returncode == 1
    assert f"github.com/prometheus/alertmanager@{pinned_tag('prom/alertmanager')}" in result.stderr
    assert "404 Not Found" in result.stderr


def test_unknown_names_are_refused(fake_go):
    result = fake_go("prometheus", "grafana")
    assert result.returncode == 2 and result.stdout == ""
    assert "unknown binary 'grafana'" in result.stderr
    assert calls(fake_go.log) == []


def test_without_go_it_says_so_in_one_line_and_exits_3(tmp_path):
    if shutil.which("go", path="/usr/bin:/bin"):
        pytest.skip("Go is installed in /usr/bin")
    result = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 3 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and "no Go toolchain" in result.stderr


def test_a_new_pin_is_built_in_its_own_folder(fake_go, tmp_path):
    """A copy of the script next to a compose file whose tags are quoted and commented."""
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(SCRIPT, checkout / "scripts" / "build-pinned")
    compose = checkout / "docker-compose.yml"
    compose.write_text('services:\n  prometheus:\n    image: "prom/prometheus:v3.14.0"  # upgraded\n')
    result = subprocess.run([str(checkout / "scripts" / "build-pinned"), "prometheus"], capture_output=True,
                            text=True, env=fake_go.env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"prometheus {fake_go.pinned / 'prometheus-3.14.0' / 'prometheus'}\n"
    assert "github.com/prometheus/prometheus@v0.314.0" in fake_go.log.read_text()
    compose.write_text("services:\n  a:\n    image: prom/prometheus:v3.14.0\n  b:\n    image: prom/prometheus:v3.15.0\n")
    result = subprocess.run([str(checkout / "scripts" / "build-pinned"), "prometheus"], capture_output=True,
                            text=True, env=fake_go.env, timeout=60)
    assert result.returncode == 2 and "exactly one tag" in result.stderr
