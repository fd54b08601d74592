"""./scripts/up on a first and a second run, with a stand-in `docker` that records what it is asked."""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FAKE_DOCKER = """#!/usr/bin/env bash
echo "$*" >> "$DOCKER_CALLS"
case "$1 $2" in
  "info --format") echo "${FAKE_RUNTIMES}" ;;
  "compose run") echo "COMPOSE_PROFILES=$COMPOSE_PROFILES" >> "$DOCKER_CALLS" ;;
esac
exit 0
"""


def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "llmwatch"
    (root / "scripts").mkdir(parents=True)
    (root / "config").mkdir()
    shutil.copy(REPO / "scripts" / "up", root / "scripts" / "up")
    shutil.copy(REPO / "config" / "env.example", root / "config" / "env.example")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    return root


def up(root: Path, runtimes: str = '{"nvidia":{},"runc":{}}', *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": f"{root.parent / 'bin'}:/usr/bin:/bin", "DOCKER_CALLS": str(root.parent / "calls"),
           "FAKE_RUNTIMES": runtimes, "HOME": str(root.parent)}
    return subprocess.run(["bash", "scripts/up", *args], cwd=root, capture_output=True, text=True, env=env)


def env_file(root: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (root / ".env").read_text().splitlines() if re.match(r"[A-Z_]+=", line))


def test_first_run_creates_private_env_with_random_passwords_and_second_run_keeps_them(tmp_path):
    root = checkout(tmp_path)
    first = up(root)
    assert first.returncode == 0, first.stderr
    assert stat.S_IMODE((root / ".env").stat().st_mode) == 0o600
    values = env_file(root)
    grafana, prometheus = values["GRAFANA_ADMIN_PASSWORD"], values["PROMETHEUS_PASSWORD"]
    assert re.fullmatch(r"[A-Za-z0-9]{32}", grafana) and re.fullmatch(r"[A-Za-z0-9]{32}", prometheus)
    assert grafana != prometheus
    assert "generated GRAFANA_ADMIN_PASSWORD in .env" in first.stdout
    assert f"{root}/.env" in first.stdout  # says where the passwords are
    assert grafana not in first.stdout + first.stderr  # ...without printing them

    values_before = (root / ".env").read_text()
    second = up(root)
    assert second.returncode == 0, second.stderr
    assert (root / ".env").read_text() == values_before
    assert "generated" not in second.stdout
    calls = (tmp_path / "calls").read_text()
    assert calls.count("compose build") == 2 and calls.count("compose up -d --remove-orphans") == 2
    assert "compose run --rm --no-deps stack-config" in calls


def test_a_password_the_user_set_is_kept(tmp_path):
    root = checkout(tmp_path)
    text = (root / "config" / "env.example").read_text().replace("\nPROMETHEUS_PASSWORD=\n", "\nPROMETHEUS_PASSWORD=mine-and-long-enough\n")
    (root / ".env").write_text(text)
    assert up(root).returncode == 0
    assert env_file(root)["PROMETHEUS_PASSWORD"] == "mine-and-long-enough"
    assert env_file(root)["GRAFANA_ADMIN_PASSWORD"]


def test_without_the_nvidia_runtime_the_gpu_exporter_is_left_out(tmp_path):
    root = checkout(tmp_path)
    result = up(root, runtimes='{"runc":{}}')
    assert result.returncode == 0, result.stderr
    assert "no 'nvidia' runtime; starting without the GPU exporter" in result.stderr
    assert "COMPOSE_PROFILES=vllm,litellm,langfuse,probe" in (tmp_path / "calls").read_text()
    assert env_file(root)["COMPOSE_PROFILES"] == "gpu,vllm,litellm,langfuse,probe"  # .env itself is not changed


def test_demo_runs_the_demo_profile_only_and_leaves_env_alone(tmp_path):
    root = checkout(tmp_path)
    result = up(root, '{"runc":{}}', "--demo")
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "calls").read_text()
    assert "COMPOSE_PROFILES=demo " in calls.replace("\n", " ") and "--demo" not in calls
    assert "no 'nvidia' runtime" not in result.stderr
    assert env_file(root)["COMPOSE_PROFILES"] == "gpu,vllm,litellm,langfuse,probe"


def test_without_docker_it_says_so(tmp_path):
    root = checkout(tmp_path)
    bare = tmp_path / "bare"  # a PATH with the tools the script needs first, and no docker
    bare.mkdir()
    (bare / "dirname").symlink_to(shutil.which("dirname"))
    result = subprocess.run(["/bin/bash", "scripts/up"], cwd=root, capture_output=True, text=True,
                            env={"PATH": str(bare)})
    assert result.returncode == 1
    assert result.stderr.startswith("llmwatch up: docker is not installed")
    assert not (root / ".env").exists()
