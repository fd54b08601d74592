"""``llmwatch stack-config --out DIR``: write what Prometheus and Alertmanager need (see __init__)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import yaml

from llmwatch.core.checks import Problems, read_yaml
from llmwatch.tools.stack_config import render

DEFAULT_ALERTMANAGER = Path(__file__).resolve().parents[4] / "config" / "alertmanager"
DEFAULT_PROMETHEUS = Path(__file__).resolve().parents[4] / "config" / "prometheus"
DEFAULT_ALLOY = Path(__file__).resolve().parents[4] / "config" / "alloy"
# The rendered prometheus.yml says where it comes from: edits to it are lost at the next start.
PROMETHEUS_HEADER = ("# Written by llmwatch stack-config at every start from config/prometheus/prometheus.yml and\n"
                     "# the REMOTE_WRITE_* variables of .env: change those, not this file.\n")
AGENT_HEADER = ("# Written by llmwatch stack-config --agent at every start from config/prometheus/prometheus.yml\n"
                "# and the LLMWATCH_HOST and LLMWATCH_CENTRAL_* variables of .env: change those, not this file.\n")


def write(path: Path, text: str, *, secret_for: int | None = None) -> None:
    """Replace a file atomically (Prometheus watches the target files).

    A secret (``secret_for``: the uid of the one service that reads it) is created 0600, never
    readable by others even for a moment, and given to that uid when this runs as root (in
    compose, with CAP_CHOWN alone); anything else is 0644."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    mode = 0o644 if secret_for is None else 0o600
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "w") as f:
        f.write(text)
    tmp.chmod(mode)  # whatever the umask
    if secret_for is not None and os.geteuid() == 0:
        os.chown(tmp, secret_for, secret_for)
    tmp.replace(path)


def own_directory(path: Path, uid: int = 0, mode: int = 0o755) -> None:
    """Give a volume's directory to ``uid`` and group root, as root only: with CAP_CHOWN alone, root
    cannot write into a directory the image made for another user, nor change the mode of one it
    gave away, so the mode is set while it is root's."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(path, 0, 0)  # its own, so that it may set the mode (no CAP_FOWNER)...
        path.chmod(mode)
        os.chown(path, uid, 0)  # ...and then give it away


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
    parser.add_argument("--prometheus-dir", type=Path, default=DEFAULT_PROMETHEUS,
                        help="directory holding prometheus.yml and REMOTE_WRITE_CA_FILE (default: the repository's)")
    parser.add_argument("--alloy-dir", type=Path, default=DEFAULT_ALLOY,
                        help="directory holding config.alloy (default: the repository's); --agent only")
    parser.add_argument("--agent", action="store_true",
                        help="an agent host's files: its Prometheus (agent mode) and Alloy sending to the central "
                             "(README, \"A second GPU host\")")
    parser.add_argument("--check", action="store_true",
                        help="only check the values in the environment; write nothing")
    args = parser.parse_args(argv)
    if args.agent:
        return agent_main(args)

    try:
        env = render.load_env(dict(os.environ))
        base = read_yaml(args.alertmanager_dir / "alertmanager.yml")
        alertmanager = render.alertmanager_config(base, env)
        prometheus = render.prometheus_config(read_yaml(args.prometheus_dir / "prometheus.yml"), env)
        if problem := render.remote_write_ca_problem(env, args.prometheus_dir):
            raise render.StackConfigError([problem])
    except Problems as e:
        for problem in e.problems:
            print(f"llmwatch stack-config: {problem}", file=sys.stderr)
        return 2

    if args.check:
        print("llmwatch stack-config: the values in .env are fine")
        return 0

    try:
        project, services = project_services()
    except ServicesUnknown:
        return 1
    running = render.running_profiles(env, services)
    try:
        write_files(args.out, args.alertmanager_dir, env, services, alertmanager, prometheus)
    except OSError as e:  # --out on a read-only or missing mount, a full disk
        print(f"llmwatch stack-config: cannot write {e.filename or args.out}: {e.strerror or e}", file=sys.stderr)
        return 2

    enabled = sorted(render.EXPORTER_PROFILES[p][0] for p in running)
    source = f"containers of {project}" if services is not None else "COMPOSE_PROFILES"
    print(f"llmwatch stack-config: scraping {', '.join(enabled) or 'no llmwatch exporters'}"
          f"{' and LiteLLM /metrics' if 'litellm' in running else ''} (from the {source})")
    for receiver, integrations in render.enabled_integrations(alertmanager).items():
        print(f"llmwatch stack-config: receiver {receiver}: {', '.join(integrations) or 'off (nothing configured)'}")
    if env.remote_write is not None:  # no user:password@ (checked); a ?query might hold a key
        shown = urlsplit(env.remote_write.url)._replace(query="", fragment="").geturl()
        print(f"llmwatch stack-config: remote write to {shown}")
    return 0


class ServicesUnknown(Exception):
    pass


def project_services() -> tuple[str, frozenset[str] | None]:
    """Which exporters run: the containers compose made for this project (LLMWATCH_COMPOSE_PROJECT),
    when Docker is at hand (LLMWATCH_DOCKER__HOST); None without it. A Docker that does not answer
    is said here and raises: guessing would scrape what is not there, or leave out what is."""
    docker_host = os.environ.get("LLMWATCH_DOCKER__HOST", "").strip()
    project = os.environ.get("LLMWATCH_COMPOSE_PROJECT", "").strip()
    if not (docker_host and project):
        return project, None
    try:
        return project, compose_services(docker_host, project)
    except (httpx.HTTPError, ValueError) as e:
        print(f"llmwatch stack-config: cannot list the containers of compose project {project} "
              f"through {docker_host}: {e}", file=sys.stderr)
        raise ServicesUnknown from e


def agent_main(args: argparse.Namespace) -> int:
    """``--agent``: an agent host's Prometheus and Alloy configuration (and their secrets) under
    ``--out``: prometheus/ (prometheus.yml, the central's password, targets/) and alloy/."""
    try:
        env = render.load_agent_env(dict(os.environ))
        prometheus = render.agent_prometheus_config(read_yaml(args.prometheus_dir / "prometheus.yml"), env)
        alloy = render.agent_alloy_config((args.alloy_dir / "config.alloy").read_text(), env)
        if env.ca_file and (problem := render.ca_file_problem("LLMWATCH_CENTRAL_CA_FILE", args.prometheus_dir,
                                                              env.ca_file)):
            raise render.StackConfigError([problem])
    except OSError as e:
        print(f"llmwatch stack-config: cannot read {e.filename}: {e.strerror or e}", file=sys.stderr)
        return 2
    except Problems as e:
        for problem in e.problems:
            print(f"llmwatch stack-config: {problem}", file=sys.stderr)
        return 2
    if args.check:
        print("llmwatch stack-config: the values in .env are fine")
        return 0

    try:
        project, services = project_services()
    except ServicesUnknown:
        return 1
    prometheus_dir, alloy_dir = args.out / "prometheus", args.out / "alloy"
    try:
        for directory in (prometheus_dir, alloy_dir):
            own_directory(directory, 0)
        own_directory(prometheus_dir / "targets", render.EXPORTER_UID, 0o775)
        ca = (args.prometheus_dir / env.ca_file).read_text() if env.ca_file else ""
        # Prometheus runs as nobody, Alloy as root: each its own copy of the secret
        for directory, uid in ((prometheus_dir, render.PROMETHEUS_UID), (alloy_dir, 0)):
            write(directory / render.CENTRAL_PASSWORD_FILE, env.central_password, secret_for=uid)
            write(directory / render.CENTRAL_CA_FILE, ca)
        write(prometheus_dir / "prometheus.yml", AGENT_HEADER + yaml.safe_dump(prometheus, sort_keys=False))
        write(alloy_dir / "config.alloy", alloy)
        for name, targets in render.agent_targets(env, services).items():
            write(prometheus_dir / "targets" / name, render.dump_json(targets))
        for stale in (prometheus_dir / "targets").glob(f"*{render.DEMO_SUFFIX}"):
            stale.unlink()
    except OSError as e:
        print(f"llmwatch stack-config: cannot write {e.filename or args.out}: {e.strerror or e}", file=sys.stderr)
        return 2
    shown = urlsplit(env.central_url)._replace(query="", fragment="").geturl()
    print(f"llmwatch stack-config: agent {env.host}: sending to {shown} and logs to {env.loki_url}")
    return 0


def write_files(out: Path, alertmanager_source: Path, env: render.StackEnv, services: frozenset[str] | None,
                alertmanager: dict, prometheus_config: dict) -> None:
    """Prometheus', Alertmanager's, Grafana's and the exporters' files under ``out``; OSError when they
    cannot be written."""
    prometheus_dir = out / "prometheus"
    alertmanager_dir = out / "alertmanager"
    grafana_dir = out / "grafana"
    loki_dir = out / "loki"
    exporters_dir = out / "exporters"
    for directory in (prometheus_dir, alertmanager_dir, grafana_dir, loki_dir, exporters_dir):
        own_directory(directory, 0)
    # target files: this (root) and the demo (the exporters' user) write them
    own_directory(prometheus_dir / "targets", render.EXPORTER_UID, 0o775)

    # Secrets are files, 0600, each its reader's alone: none is in a container's environment
    # (which the Docker API's inspect returns) but stack-config's own (README, "Security").
    prometheus = render.PROMETHEUS_UID
    write(prometheus_dir / "web.yml", render.prometheus_web_config(env), secret_for=prometheus)
    write(prometheus_dir / "prometheus_password", env.prometheus_password, secret_for=prometheus)
    write(prometheus_dir / "litellm_scrape_key", render.litellm_scrape_key(env), secret_for=prometheus)
    write(prometheus_dir / "healthcheck.http", render.healthcheck_request(env), secret_for=prometheus)
    for name, value in render.remote_write_secrets(env).items():
        write(prometheus_dir / name, value, secret_for=prometheus)
    write(prometheus_dir / "prometheus.yml", PROMETHEUS_HEADER + yaml.safe_dump(prometheus_config, sort_keys=False))
    for stale in ("litellm_master_key",):  # written by earlier versions
        (prometheus_dir / stale).unlink(missing_ok=True)
    for name, targets in render.prometheus_targets(env, services).items():
        write(prometheus_dir / "targets" / name, render.dump_json(targets))
    # a demo that was killed without cleaning up leaves its targets: the demo writes them anew
    for stale in (prometheus_dir / "targets").glob(f"*{render.DEMO_SUFFIX}"):
        stale.unlink()

    # alertmanager.yml holds the receivers' keys and passwords
    write(alertmanager_dir / "alertmanager.yml", yaml.safe_dump(alertmanager, sort_keys=False), secret_for=prometheus)
    write(alertmanager_dir / "web.yml", render.alertmanager_web_config(env), secret_for=prometheus)
    write(alertmanager_dir / "healthcheck.http", render.healthcheck_request(env), secret_for=prometheus)
    (alertmanager_dir / "password").unlink(missing_ok=True)  # written by earlier versions
    templates = alertmanager_dir / "templates"
    own_directory(templates)
    for template in sorted((alertmanager_source / "templates").glob("*.tmpl")):
        write(templates / template.name, template.read_text())
    write(templates / render.LINKS_TEMPLATE, render.links_template(env))

    write(grafana_dir / "admin_password", env.grafana_admin_password, secret_for=render.GRAFANA_UID)
    write(grafana_dir / "prometheus_password", env.prometheus_password, secret_for=render.GRAFANA_UID)
    # Loki's ruler sends its log-based alerts to Alertmanager (config/loki/loki.yml)
    write(loki_dir / "alertmanager_credentials", render.basic_credentials(env), secret_for=render.LOKI_UID)
    for name, value in render.exporter_secrets(env).items():
        write(exporters_dir / name, value, secret_for=render.EXPORTER_UID)


