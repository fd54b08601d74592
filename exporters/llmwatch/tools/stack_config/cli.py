"""``llmwatch stack-config --out DIR``: write what Prometheus and Alertmanager need (see __init__)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import httpx
import yaml

from llmwatch.core.checks import Problems, read_yaml
from llmwatch.tools.stack_config import render

DEFAULT_ALERTMANAGER = Path(__file__).resolve().parents[4] / "config" / "alertmanager"


def write(path: Path, text: str) -> None:
    """Replace a file atomically (Prometheus watches the target files) and readable by every user
    (Prometheus and Alertmanager run as nobody; the volume itself is private to root)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(0o644)
    tmp.replace(path)


def compose_services(docker_host: str, project: str, timeout: float = 10.0) -> frozenset[str]:
    """The services of compose project ``project`` that have a container, running or not, asked
    of the Docker API at ``docker_host`` (``tcp://docker-proxy:2375``: the socket proxy)."""
    base = docker_host.replace("tcp://", "http://", 1)
    filters = '{"label": ["com.docker.compose.project=%s"]}' % project
    response = httpx.get(f"{base}/containers/json", params={"all": "1", "filters": filters}, timeout=timeout)
    response.raise_for_status()
    return render.compose_services(response.json(), project)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmwatch stack-config", description=__doc__)
    parser.add_argument("--out", type=Path, required=True,
                        help="directory receiving prometheus/ and alertmanager/")
    parser.add_argument("--alertmanager-dir", type=Path, default=DEFAULT_ALERTMANAGER,
                        help="directory holding alertmanager.yml and templates/ (default: the repository's)")
    parser.add_argument("--check", action="store_true",
                        help="only check the values in the environment; write nothing")
    args = parser.parse_args(argv)

    try:
        env = render.load_env(dict(os.environ))
        base = read_yaml(args.alertmanager_dir / "alertmanager.yml")
        alertmanager = render.alertmanager_config(base, env)
    except Problems as e:
        for problem in e.problems:
            print(f"llmwatch stack-config: {problem}", file=sys.stderr)
        return 2

    if args.check:
        print("llmwatch stack-config: the values in .env are fine")
        return 0

    # Which exporters run: the containers compose made for this project, when Docker is at hand.
    services = None
    docker_host = os.environ.get("LLMWATCH_DOCKER__HOST", "").strip()
    project = os.environ.get("LLMWATCH_COMPOSE_PROJECT", "").strip()
    if docker_host and project:
        try:
            services = compose_services(docker_host, project)
        except (httpx.HTTPError, ValueError) as e:
            print(f"llmwatch stack-config: cannot list the containers of compose project {project} "
                  f"through {docker_host}: {e}", file=sys.stderr)
            return 1
    running = render.running_profiles(env, services)
    try:
        write_files(args.out, args.alertmanager_dir, env, services, alertmanager)
    except OSError as e:  # --out on a read-only or missing mount, a full disk
        print(f"llmwatch stack-config: cannot write {e.filename or args.out}: {e.strerror or e}", file=sys.stderr)
        return 2

    enabled = sorted(render.EXPORTER_PROFILES[p][0] for p in running)
    source = f"containers of {project}" if services is not None else "COMPOSE_PROFILES"
    print(f"llmwatch stack-config: scraping {', '.join(enabled) or 'no llmwatch exporters'}"
          f"{' and LiteLLM /metrics' if 'litellm' in running else ''} (from the {source})")
    for receiver, integrations in render.enabled_integrations(alertmanager).items():
        print(f"llmwatch stack-config: receiver {receiver}: {', '.join(integrations) or 'off (nothing configured)'}")
    return 0


def write_files(out: Path, alertmanager_source: Path, env: render.StackEnv, services: frozenset[str] | None,
                alertmanager: dict) -> None:
    """Prometheus' and Alertmanager's files under ``out``; OSError when they cannot be written."""
    prometheus_dir = out / "prometheus"
    write(prometheus_dir / "web.yml", render.prometheus_web_config(env))
    write(prometheus_dir / "prometheus_password", env.prometheus_password + "\n")
    write(prometheus_dir / "litellm_master_key", env.litellm_master_key + "\n")
    for name, targets in render.prometheus_targets(env, services).items():
        write(prometheus_dir / "targets" / name, render.dump_json(targets))
    # a demo that was killed without cleaning up leaves its targets: the demo writes them anew
    for stale in (prometheus_dir / "targets").glob(f"*{render.DEMO_SUFFIX}"):
        stale.unlink()

    alertmanager_dir = out / "alertmanager"
    write(alertmanager_dir / "alertmanager.yml", yaml.safe_dump(alertmanager, sort_keys=False))
    write(alertmanager_dir / "web.yml", render.alertmanager_web_config(env))
    write(alertmanager_dir / "password", env.prometheus_password + "\n")  # for its healthcheck
    templates = alertmanager_dir / "templates"
    templates.mkdir(parents=True, exist_ok=True)
    for template in sorted((alertmanager_source / "templates").glob("*.tmpl")):
        shutil.copyfile(template, templates / template.name)
        (templates / template.name).chmod(0o644)
    write(templates / render.LINKS_TEMPLATE, render.links_template(env))
