"""The secrets stack-config writes: files 0600 that belong to the one user that reads each (the
uids docker-compose.yml runs the readers as), the healthcheck requests that keep the password off
command lines, and Grafana's anonymous viewer refused on a public address."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from llmwatch.tools.stack_config import cli as stack_main
from llmwatch.tools.stack_config import render

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "a-long-password-123"
ENV = {"PROMETHEUS_PASSWORD": PASSWORD, "GRAFANA_ADMIN_PASSWORD": "grafana-admin-pw", "COMPOSE_PROFILES": "litellm,langfuse,probe",
       "LITELLM_URL": "http://host.docker.internal:4000", "LITELLM_MASTER_KEY": "sk-master", "PROBE_LITELLM_KEY": "sk-probe",
       "LANGFUSE_PUBLIC_KEY": "pk-lf-1", "LANGFUSE_SECRET_KEY": "sk-lf-1",
       "LANGFUSE_DATABASE_URL": "postgresql://reader:pw@db:5432/langfuse", "ALERT_SMTP_PASSWORD": "smtp-pw",
       "ALERT_EMAIL_TO": "ops@example.com", "ALERT_SMTP_SMARTHOST": "smtp.example.com:587",
       "ALERT_SMTP_FROM": "llmwatch@example.com", "ALERT_SMTP_USERNAME": "llmwatch"}


def run(tmp_path: Path, monkeypatch, env: dict[str, str], *, root: bool) -> tuple[int, list[tuple]]:
    """stack-config in this process, as root (chowns recorded, not made) or not."""
    for key in list(os.environ):
        if key.startswith(("LLMWATCH_", "ALERT_", "LITELLM_", "LANGFUSE_", "GRAFANA_")) or key in ENV:
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    chowns = []
    given_away = set()  # paths root chowned to another user: as in compose, no CAP_FOWNER to chmod them
    real_chmod = os.chmod

    def chown(path, uid, gid):
        chowns.append((Path(path).name, uid, gid))
        (given_away.add if uid else given_away.discard)(str(path))

    def chmod(path, mode, **kw):
        if str(path) in given_away:
            raise PermissionError(1, "Operation not permitted", str(path))
        real_chmod(path, mode, **kw)

    monkeypatch.setattr(stack_main.os, "geteuid", lambda: 0 if root else 1000)
    monkeypatch.setattr(stack_main.os, "chown", chown)
    monkeypatch.setattr(os, "chmod", chmod)
    return stack_main.main(["--out", str(tmp_path)]), chowns


def test_every_secret_is_a_0600_file_given_to_its_reader(tmp_path, monkeypatch):
    code, chowns = run(tmp_path, monkeypatch, ENV, root=True)
    assert code == 0
    secrets = {
        "prometheus/web.yml": render.PROMETHEUS_UID, "prometheus/prometheus_password": render.PROMETHEUS_UID,
        "prometheus/litellm_scrape_key": render.PROMETHEUS_UID, "prometheus/healthcheck.http": render.PROMETHEUS_UID,
        "alertmanager/alertmanager.yml": render.PROMETHEUS_UID, "alertmanager/web.yml": render.PROMETHEUS_UID,
        "alertmanager/healthcheck.http": render.PROMETHEUS_UID,
        "grafana/admin_password": render.GRAFANA_UID, "grafana/prometheus_password": render.GRAFANA_UID,
        "loki/alertmanager_credentials": render.LOKI_UID,
        **{f"exporters/{name}": render.EXPORTER_UID for name in render.EXPORTER_SECRETS}}
    for relative, uid in secrets.items():
        path = tmp_path / relative
        assert path.stat().st_mode & 0o777 == 0o600, relative
        assert (f".{path.name}.tmp", uid, uid) in chowns, relative  # given away before it is in place
    # nothing else is readable by others that holds a secret
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.stat().st_mode & 0o044:
            text = path.read_text()
            assert not any(value in text for key, value in ENV.items() if "KEY" in key or "PASSWORD" in key
                           or key.endswith("_URL") and "reader:" in value), path
    # the directories are root's, but the demo (the exporters' user) may write target files
    assert ("prometheus", 0, 0) in chowns and ("grafana", 0, 0) in chowns and ("exporters", 0, 0) in chowns
    assert ("targets", render.EXPORTER_UID, 0) in chowns
    assert (tmp_path / "prometheus" / "targets").stat().st_mode & 0o777 == 0o775
    assert "smtp-pw" in (tmp_path / "alertmanager" / "alertmanager.yml").read_text()
    values = {name: (tmp_path / "exporters" / name).read_text() for name in render.EXPORTER_SECRETS}
    assert values == {"prometheus_password": PASSWORD, "litellm_master_key": "sk-master", "probe_litellm_key": "sk-probe",
                      "langfuse_public_key": "pk-lf-1", "langfuse_secret_key": "sk-lf-1",
                      "langfuse_database_url": "postgresql://reader:pw@db:5432/langfuse"}
    assert (tmp_path / "grafana" / "admin_password").read_text() == "grafana-admin-pw"
    # what Loki's ruler sends as "Authorization: Basic ..." to Alertmanager
    credentials = base64.b64decode((tmp_path / "loki" / "alertmanager_credentials").read_text()).decode()
    assert credentials == f"{render.PROMETHEUS_USER}:{PASSWORD}"


def test_not_root_the_files_stay_the_runners_own_and_still_0600(tmp_path, monkeypatch):
    code, chowns = run(tmp_path, monkeypatch, ENV, root=False)
    assert code == 0 and chowns == []
    assert (tmp_path / "grafana" / "admin_password").stat().st_mode & 0o777 == 0o600


def test_prometheus_scrapes_litellm_with_the_metrics_key_when_there_is_one(tmp_path, monkeypatch):
    run(tmp_path, monkeypatch, ENV, root=False)
    assert (tmp_path / "prometheus" / "litellm_scrape_key").read_text() == "sk-master"
    run(tmp_path, monkeypatch, ENV | {"LITELLM_METRICS_KEY": "sk-metrics-only"}, root=False)
    assert (tmp_path / "prometheus" / "litellm_scrape_key").read_text() == "sk-metrics-only"
    assert (tmp_path / "exporters" / "litellm_master_key").read_text() == "sk-master"  # the exporter's


def test_files_of_an_earlier_version_are_replaced_and_removed(tmp_path, monkeypatch):
    for relative in ("prometheus/litellm_master_key", "alertmanager/password", "alertmanager/templates/x.tmpl"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("old")
        (tmp_path / relative).chmod(0o644)
    assert run(tmp_path, monkeypatch, ENV, root=False)[0] == 0
    assert not (tmp_path / "prometheus" / "litellm_master_key").exists()
    assert not (tmp_path / "alertmanager" / "password").exists()


@pytest.mark.parametrize("address,refused", [("127.0.0.1", False), ("::1", False), ("localhost", False),
                                             ("0.0.0.0", True), ("192.168.1.20", True), ("monitor.lan", True)])
def test_anonymous_viewer_is_refused_with_a_public_bind(tmp_path, monkeypatch, capsys, address, refused):
    env = ENV | {"GRAFANA_ANONYMOUS_VIEWER": "true", "LLMWATCH_PUBLISH_ADDRESS": address}
    code, _ = run(tmp_path, monkeypatch, env, root=False)
    assert code == (2 if refused else 0)
    if refused:
        err = capsys.readouterr().err
        assert f"GRAFANA_ANONYMOUS_VIEWER=true is refused with LLMWATCH_PUBLISH_ADDRESS={address}" in err
        assert "Traceback" not in err and not (tmp_path / "grafana").exists()
    assert run(tmp_path, monkeypatch, env | {"GRAFANA_ANONYMOUS_VIEWER": "false"}, root=False)[0] == 0


class BasicAuthServer:
    """/-/ready behind basic auth, as Prometheus and Alertmanager serve it; records what came."""

    def __init__(self, password: str):
        expected = "Basic " + base64.b64encode(f"llmwatch:{password}".encode()).decode()
        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append((self.path, self.headers.get("Authorization")))
                ok = self.path == "/-/ready" and self.headers.get("Authorization") == expected
                self.send_response(200 if ok else 401)
                self.end_headers()
                self.wfile.write(b"ready\n" if ok else b"Unauthorized\n")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


BUSYBOX = shutil.which("busybox")


@pytest.mark.skipif(not BUSYBOX, reason="busybox (the Prometheus image's shell and nc) is not installed")
def test_the_healthcheck_command_passes_with_the_password_and_fails_without(tmp_path, monkeypatch):
    """The compose healthcheck, run by busybox sh with busybox nc, against a server that asks for
    the password: healthy with stack-config's request file, unhealthy with a wrong password."""
    run(tmp_path, monkeypatch, ENV, root=False)
    server = BasicAuthServer(PASSWORD)
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    command = compose["services"]["prometheus"]["healthcheck"]["test"][1]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for applet in ("nc", "head", "grep"):  # the image's tools are busybox's
        (bin_dir / applet).symlink_to(BUSYBOX)

    def healthy(request_file: Path) -> bool:
        script = command.replace("localhost 23001", f"127.0.0.1 {server.port}").replace(
            "/etc/prometheus/stack/healthcheck.http", str(request_file))
        return subprocess.run([BUSYBOX, "sh", "-c", script], env={"PATH": str(bin_dir)}, timeout=20).returncode == 0

    assert healthy(tmp_path / "prometheus" / "healthcheck.http")
    wrong = tmp_path / "wrong.http"
    wrong.write_text(render.healthcheck_request(render.load_env({"PROMETHEUS_PASSWORD": "another-password-1"})))
    assert not healthy(wrong)
    assert server.seen[0][0] == "/-/ready"
    server.server.shutdown()
