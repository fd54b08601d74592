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
case "$1 $2 $3" in
  "info --format"*) echo "${FAKE_RUNTIMES}" ;;
  "compose run"*) echo "COMPOSE_PROFILES=$COMPOSE_PROFILES" >> "$DOCKER_CALLS"; echo "COMPOSE_FILE=${COMPOSE_FILE:-}" >> "$DOCKER_CALLS" ;;
  "compose config --services")
    if [ "$COMPOSE_PROFILES" = "*" ]; then echo "prometheus"; echo "gpu-exporter"; echo "demo"; echo "demo-gpu-exporter"
    elif [ "$COMPOSE_PROFILES" = demo ]; then echo "prometheus"; echo "demo"; echo "demo-gpu-exporter"
    else echo "prometheus"; echo "gpu-exporter"; fi ;;
  "compose up -d"*) exit "${FAKE_UP_STATUS:-0}" ;;
  "compose ps -a") printf '%s' "$FAKE_PS" ;;
esac
exit 0
"""

# curl asked by `--agent` whether the central takes remote writes: records its arguments and what it
# reads on stdin, answers FAKE_CURL_CODE (000: a connection error, as curl reports one).
FAKE_CURL = """#!/usr/bin/env bash
echo "$*" >> "$CURL_CALLS"
cat >> "$CURL_CALLS"
if [ "$FAKE_CURL_CODE" = 000 ]; then echo "curl: (7) Failed to connect to monitor-host port 23001" >&2; printf 000; exit 7; fi
printf '%s' "$FAKE_CURL_CODE"
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
    (bin_dir / "curl").write_text(FAKE_CURL)
    (bin_dir / "curl").chmod(0o755)
    return root


def up(root: Path, runtimes: str = '{"nvidia":{},"runc":{}}', *args: str, **fake: str) -> subprocess.CompletedProcess:
    env = {"PATH": f"{root.parent / 'bin'}:/usr/bin:/bin", "DOCKER_CALLS": str(root.parent / "calls"),
           "CURL_CALLS": str(root.parent / "curl-calls"), "FAKE_CURL_CODE": "400",
           "FAKE_RUNTIMES": runtimes, "HOME": str(root.parent),
           "FAKE_PS": "stack-config\texited\t\nprometheus\trunning\thealthy\n", **fake}
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
    assert calls.count("compose run --rm --no-deps stack-config --check") == 2


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


def test_waits_for_health_then_lists_what_is_up_and_what_is_not(tmp_path):
    root = checkout(tmp_path)
    ps = "stack-config\texited\t\nprometheus\trunning\thealthy\nloki\trunning\t\ngrafana\trunning\tunhealthy\n"
    result = up(root, FAKE_PS=ps, FAKE_UP_STATUS="1")
    assert result.returncode == 1
    calls = (tmp_path / "calls").read_text()
    assert "compose up -d --remove-orphans --wait --wait-timeout 600" in calls
    assert "llmwatch is NOT fully up" in result.stdout and "llmwatch is up." not in result.stdout
    assert "Up:         prometheus loki" in result.stdout
    assert "Not up:     grafana (running, unhealthy)" in result.stdout

    healthy = up(root)
    assert healthy.returncode == 0, healthy.stderr
    assert "llmwatch is up." in healthy.stdout and "Up:         prometheus" in healthy.stdout


def test_switching_to_demo_removes_the_real_exporters_and_back(tmp_path):
    root = checkout(tmp_path)
    assert up(root, '{"runc":{}}', "--demo").returncode == 0
    calls = (tmp_path / "calls").read_text().splitlines()
    assert "compose rm --stop --force gpu-exporter" in calls
    (tmp_path / "calls").unlink()
    assert up(root).returncode == 0
    calls = (tmp_path / "calls").read_text().splitlines()
    assert "compose rm --stop --force demo demo-gpu-exporter" in calls


def test_published_beyond_loopback_it_warns(tmp_path):
    root = checkout(tmp_path)
    assert "past any host firewall" not in up(root).stderr  # the default: 127.0.0.1
    text = (root / ".env").read_text().replace("LLMWATCH_PUBLISH_ADDRESS=127.0.0.1", "LLMWATCH_PUBLISH_ADDRESS=0.0.0.0")
    (root / ".env").write_text(text)
    assert "past any host firewall such as ufw" in up(root).stderr


def test_runbook_links_point_at_the_checkouts_forge(tmp_path):
    root = checkout(tmp_path)
    git = lambda *a: subprocess.run(["git", *a], cwd=root, check=True, capture_output=True)  # noqa: E731
    git("init", "-q", "-b", "main")
    git("remote", "add", "origin", "git@git.example.com:acme/llmwatch.git")
    result = up(root)
    assert result.returncode == 0, result.stderr
    assert env_file(root)["LLMWATCH_RUNBOOK_URL"] == "https://git.example.com/acme/llmwatch/blob/main/docs/runbooks.md"
    # a page the user set is kept
    text = (root / ".env").read_text().replace("git.example.com/acme", "docs.example.com/mine")
    (root / ".env").write_text(text)
    assert up(root).returncode == 0
    assert env_file(root)["LLMWATCH_RUNBOOK_URL"].startswith("https://docs.example.com/mine/")


def test_an_env_others_can_read_is_made_private_with_a_warning(tmp_path):
    root = checkout(tmp_path)
    shutil.copy(root / "config" / "env.example", root / ".env")
    (root / ".env").chmod(0o644)
    result = up(root)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE((root / ".env").stat().st_mode) == 0o600
    assert "warning: .env was readable by other users (mode 644); changed it to 600" in result.stderr
    again = up(root)
    assert "readable by other users" not in again.stderr  # private now: nothing to say


def test_the_host_label_is_this_hosts_short_name_unless_env_names_one(tmp_path):
    root = checkout(tmp_path)
    result = up(root)
    assert result.returncode == 0, result.stderr
    short = subprocess.run(["hostname", "-s"], capture_output=True, text=True, check=True).stdout.strip()
    assert env_file(root)["LLMWATCH_HOST"] == short
    text = (root / ".env").read_text().replace(f"LLMWATCH_HOST={short}", "LLMWATCH_HOST=gpu-a")
    (root / ".env").write_text(text)
    assert up(root).returncode == 0 and env_file(root)["LLMWATCH_HOST"] == "gpu-a"


def test_agent_needs_the_central_and_its_password(tmp_path):
    root = checkout(tmp_path)
    result = up(root, '{"nvidia":{}}', "--agent")
    assert result.returncode == 1
    assert "give the central Prometheus: ./scripts/up --agent --central https://" in result.stderr
    result = up(root, '{"nvidia":{}}', "--agent", "--central", "https://monitor-host:23001/")
    assert result.returncode == 1
    assert "set LLMWATCH_CENTRAL_PASSWORD" in result.stderr and "PROMETHEUS_PASSWORD" in result.stderr
    assert env_file(root)["LLMWATCH_CENTRAL_URL"] == "https://monitor-host:23001"
    assert not (tmp_path / "calls").exists() or "compose up" not in (tmp_path / "calls").read_text()
    assert up(root, '{"nvidia":{}}', "--central", "https://x:23001").stderr.strip() == \
        "llmwatch up: --central goes with --agent"


def agent_checkout(tmp_path: Path) -> Path:
    root = checkout(tmp_path)
    text = (root / "config" / "env.example").read_text() + "LLMWATCH_CENTRAL_PASSWORD=the-centrals-password\n"
    (root / ".env").write_text(text)
    (root / ".env").chmod(0o600)
    return root


def test_agent_checks_that_the_central_takes_its_samples_and_says_why_not(tmp_path):
    root = agent_checkout(tmp_path)
    for code, message in (("401", "refuses LLMWATCH_CENTRAL_PASSWORD: copy PROMETHEUS_PASSWORD from the central's .env"),
                          ("404", "does not take remote writes: run ./scripts/up there"),
                          ("000", "cannot reach the central Prometheus at https://monitor-host:23001/api/v1/write "
                                  "(curl: (7) Failed to connect")):
        result = up(root, '{"nvidia":{}}', "--agent", "--central", "https://monitor-host:23001", FAKE_CURL_CODE=code)
        assert result.returncode == 1, code
        assert message in result.stderr, (code, result.stderr)
        assert not (tmp_path / "calls").exists() or "compose up" not in (tmp_path / "calls").read_text()
    curl = (tmp_path / "curl-calls").read_text()
    assert "https://monitor-host:23001/api/v1/write" in curl and "-X POST" in curl
    assert 'user = "llmwatch:the-centrals-password"' in curl  # on stdin...
    assert "the-centrals-password" not in curl.splitlines()[0]  # ...not on its command line


def test_agent_runs_the_agent_compose_file_without_litellm_and_langfuse(tmp_path):
    root = agent_checkout(tmp_path)
    result = up(root, '{"nvidia":{}}', "--agent", "--central", "https://monitor-host:23001")
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "calls").read_text()
    assert "COMPOSE_FILE=docker-compose.agent.yml" in calls
    assert "COMPOSE_PROFILES=gpu,vllm,probe\n" in calls
    assert "compose up -d --remove-orphans --wait" in calls
    assert "takes this host's samples" in result.stdout
    assert "llmwatch agent is up: this host's series and logs go to https://monitor-host:23001 as host=" in result.stdout
    assert "Grafana" not in result.stdout
    central = checkout(tmp_path / "central")  # without --agent: docker-compose.yml, as before
    assert up(central).returncode == 0
    assert "COMPOSE_FILE=\n" in (tmp_path / "central" / "calls").read_text()


def test_loki_published_beyond_loopback_it_warns_that_loki_has_no_password(tmp_path):
    root = checkout(tmp_path)
    assert "Loki is published" not in up(root).stderr  # the default: 127.0.0.1
    text = (root / ".env").read_text().replace("LOKI_PUBLISH_ADDRESS=127.0.0.1", "LOKI_PUBLISH_ADDRESS=10.0.0.5")
    (root / ".env").write_text(text)
    assert "Loki is published on 10.0.0.5 without a password" in up(root).stderr
