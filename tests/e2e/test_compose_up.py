"""docker-compose.yml on a real Docker engine: `docker compose --profile demo up -d --wait` with
the repository's compose file and a generated .env, checked through the published Prometheus
port with its password (see engine.py for the private engine, images.py for the images).

On the engine's "host" (its network namespace) run a simulated LiteLLM proxy, which the stack
must scrape through host.docker.internal, and a webhook receiver for the Watchdog. The .env keeps
the template's COMPOSE_PROFILES (every real exporter) while the command line asks for
demo, litellm and vllm only: the targets must follow the command line.

A stand-in vLLM container (the exporter image running the simulated vLLM server, found by the vLLM
exporter through the socket proxy) is then restarted and made to exit with code 1: its model load
after the restart pages nothing within its start grace, and the exit pages with its exit code.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.e2e import engine as engine_module
from tests.e2e import images

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
REPO = images.REPO
GATEWAY = "10.213.0.1"  # the engine's default bridge: host.docker.internal inside containers
PROFILES = ["demo", "litellm", "vllm"]


class Webhook:
    """Alertmanager's posts, collected on the engine's host."""

    def __init__(self):
        self.posts: list[tuple[str, dict]] = []
        posts = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                posts.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((GATEWAY, 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def http(url: str, password: str | None = None, method: str = "GET") -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method)
    if password:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"llmwatch:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


CAP_SYSLOG = 34


def bounding_capabilities() -> int:
    """This process's capability bounding set (a sandbox may drop some): runc cannot grant a
    container a capability outside it."""
    return int(next(l for l in Path("/proc/self/status").read_text().splitlines()
                    if l.startswith("CapBnd:")).split()[1], 16)


def write_override(path: Path) -> list[str]:
    """docker-compose.yml as it is, except where this machine cannot run it as written; returns the
    override file arguments (none when nothing needs changing)."""
    if bounding_capabilities() & (1 << CAP_SYSLOG):
        return []
    # cAdvisor adds back SYSLOG (for /dev/kmsg); in a sandbox whose bounding set lacks it, it runs
    # without (it reads the cgroup files and the Docker API, which is what the test checks)
    path.write_text("services:\n  cadvisor:\n    cap_add: !reset []\n")
    return ["-f", str(path)]


class Stack:
    def __init__(self, engine: engine_module.PrivateEngine, compose: Path, project: str, env_file: Path,
                 override: list[str] | None = None, profiles: list[str] | None = None,
                 compose_file: str = "docker-compose.yml", address: str = "127.0.0.1"):
        self.engine, self.compose, self.project, self.env_file = engine, compose, project, env_file
        self.override = override or []
        self.profiles = PROFILES if profiles is None else profiles
        self.compose_file, self.address = compose_file, address  # the file, where its ports are published
        self.password = dict(l.split("=", 1) for l in env_file.read_text().splitlines() if "=" in l)["PROMETHEUS_PASSWORD"]

    def run(self, *args: str, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess:
        argv = [str(self.compose), "--project-directory", str(REPO), "-f", str(REPO / self.compose_file),
                *self.override, "-p", self.project, "--env-file", str(self.env_file), *args]
        result = subprocess.run(argv, env=self.engine.env(), capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"compose {' '.join(args)} exited {result.returncode}:\n"
                                 f"{(result.stdout + result.stderr)[-6000:]}\n{self.diagnostics()}")
        return result

    def up(self) -> None:
        profiles = [a for p in self.profiles for a in ("--profile", p)]
        self.run(*profiles, "up", "-d", "--wait", "--wait-timeout", "600")

    def port(self, service: str, port: int) -> int:
        profiles = [a for p in self.profiles for a in ("--profile", p)]
        return int(self.run(*profiles, "port", service, str(port)).stdout.strip().rsplit(":", 1)[1])

    def prometheus(self, path: str) -> dict:
        status, body = self.engine.in_netns(http, f"http://{self.address}:{self.port('prometheus', 23001)}{path}",
                                            self.password)
        assert status == 200, (path, status, body[:300])
        return json.loads(body)

    def query(self, promql: str, at: float | None = None) -> list[dict]:
        path = "/api/v1/query?query=" + urllib.request.quote(promql) + (f"&time={at}" if at else "")
        return self.prometheus(path)["data"]["result"]

    def containers(self) -> list[dict]:
        profiles = [a for p in self.profiles for a in ("--profile", p)]
        out = self.run(*profiles, "ps", "-a", "--format", "json").stdout
        text = out.strip()
        return json.loads(text) if text.startswith("[") else [json.loads(l) for l in text.splitlines() if l.strip()]

    def diagnostics(self) -> str:
        try:
            ps = self.engine.docker("ps", "-a", "--format", "{{.Names}} {{.Status}}", check=False).stdout
            logs = []
            for name in ps.split("\n"):
                if name and ("unhealthy" in name or "Exited (1" in name or "Restarting" in name):
                    container = name.split()[0]
                    logs.append(f"--- {container}\n" + self.engine.docker("logs", "--tail", "30", container,
                                                                          check=False).stderr[-2000:])
            return f"containers:\n{ps}\n" + "\n".join(logs)
        except Exception as e:  # noqa: BLE001 - diagnostics only
            return f"(no diagnostics: {e})"


def wait_for(what: str, check, timeout: float, interval: float = 3.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except AssertionError as e:
            last = e
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout}s ({last})")


def write_env(path: Path, socket: Path, data_root: Path, litellm_port: int, webhook_port: int) -> None:
    """.env as ./scripts/up would write it (the template, random passwords), plus this engine's paths
    and ephemeral published ports."""
    text = (REPO / "config" / "env.example").read_text()
    values = {
        "GRAFANA_ADMIN_PASSWORD": secrets.token_hex(16), "PROMETHEUS_PASSWORD": secrets.token_hex(16),
        "LITELLM_URL": f"http://host.docker.internal:{litellm_port}", "LITELLM_MASTER_KEY": "sk-e2e-master",
        "ALERT_WEBHOOK_URL": f"http://host.docker.internal:{webhook_port}/alerts",
        "WATCHDOG_URL": f"http://host.docker.internal:{webhook_port}/watchdog",
        "LLMWATCH_EXTERNAL_HOST": "llmwatch.example", "LLMWATCH_PUBLISH_ADDRESS": "127.0.0.1",
        "GRAFANA_PORT": "0", "PROMETHEUS_PORT": "0", "ALERTMANAGER_PORT": "0",
        # the ports are ephemeral here (0), so the addresses people would open are given whole, as
        # behind a reverse proxy: links in alerts are built from them
        "GRAFANA_EXTERNAL_URL": "http://llmwatch.example:23000",
        "PROMETHEUS_EXTERNAL_URL": "http://llmwatch.example:23001",
        "ALERTMANAGER_EXTERNAL_URL": "http://llmwatch.example:23003",
        "LLMWATCH_DOCKER_SOCKET": str(socket), "LLMWATCH_DOCKER_ROOT": str(data_root),
    }
    lines = []
    for line in text.splitlines():
        key = line.split("=", 1)[0]
        lines.append(f"{key}={values.pop(key)}" if "=" in line and key in values else line)
    lines += [f"{k}={v}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


@pytest.fixture(scope="module")
def engine(e2e_ready):
    started = engine_module.PrivateEngine()
    try:
        yield started.start()
    finally:
        started.close()
        leftovers = started.leftovers()
        assert not leftovers, f"the private engine left behind: {leftovers}"


def test_a_failed_run_leaves_nothing_behind(e2e_ready):
    """Teardown after a failure midway: a running container, a helper on the engine's host."""
    images_timings = images.Timings()
    busybox = images.busybox_rootfs(images_timings)
    engine = engine_module.PrivateEngine().start()
    try:
        engine.docker("import", str(busybox), "llmwatch-e2e/busybox:latest")
        engine.docker("network", "create", "leftover-check")
        engine.docker("run", "-d", "--network", "leftover-check", "--add-host", "host.docker.internal:host-gateway",
                      "-p", "127.0.0.1::8080", "-v", "leftover-volume:/data",
                      "llmwatch-e2e/busybox:latest", "sleep", "3600")
        engine.netns_popen(["sleep", "3600"])
        with pytest.raises(RuntimeError):
            raise RuntimeError("a failure in the middle of a run")
    finally:
        engine.close()
    assert engine.leftovers() == []


def test_compose_up_as_deployed(engine, tmp_path):
    started = time.monotonic()
    timings = images.Timings()
    standins = images.build_all(engine.docker, tmp_path, timings)
    print(f"e2e: stand-ins for {', '.join(standins)}")
    compose = images.compose_binary(timings)

    from llmwatch.simulation.litellm import FakeLitellmServer

    litellm = engine.in_netns(lambda: FakeLitellmServer(master_key="sk-e2e-master", host=GATEWAY).__enter__())
    webhook = engine.in_netns(Webhook)
    env_file = tmp_path / ".env"
    write_env(env_file, engine.socket, engine.tmp / "data", int(litellm.url.rsplit(":", 1)[1]), webhook.port)
    override = write_override(tmp_path / "override.yml")
    if override:
        print("e2e: this machine's capability bounding set lacks SYSLOG: cAdvisor runs without it")
    stack = Stack(engine, compose, f"llmwatch-e2e-{secrets.token_hex(3)}", env_file, override)
    try:
        up_started = time.monotonic()
        stack.up()
        timings.this_run["compose up --wait"] = {"seconds": round(time.monotonic() - up_started, 1)}
        check_stack(stack, engine, webhook, real_cadvisor="cadvisor" not in standins)
        lifecycle_started = time.monotonic()
        check_vllm_lifecycle(stack, engine, webhook)
        timings.this_run["vLLM restart and exit"] = {"seconds": round(time.monotonic() - lifecycle_started, 1)}
        check_restart_keeps_data(stack)
    finally:
        engine.docker("rm", "-f", f"{stack.project}-{VLLM_STANDIN}", check=False)
        stack.run("--profile", "*", "down", "-v", "--remove-orphans", "--timeout", "5", check=False)
        litellm.__exit__(None, None, None)
        webhook.server.shutdown()
        timings.this_run["end-to-end test (wall)"] = {"seconds": round(time.monotonic() - started, 1)}
        print(json.dumps(timings.this_run, indent=2))
        (images.CACHE / "last-run.json").write_text(json.dumps(timings.this_run, indent=2) + "\n")


def check_stack(stack: Stack, engine: engine_module.PrivateEngine, webhook: Webhook, real_cadvisor: bool) -> None:
    project = stack.project
    # every container healthy (Loki has no healthcheck: running); stack-config ran once and exited 0
    containers = {c["Service"]: c for c in stack.containers()}
    for service, c in containers.items():
        if service == "stack-config":
            assert c["State"] == "exited" and c.get("ExitCode", 0) == 0, c
        else:
            assert c["State"] == "running", c
            assert c["Health"] in ("healthy", "") and (c["Health"] or service == "loki"), c
    assert {"gpu-exporter", "langfuse-exporter", "probe-exporter"}.isdisjoint(containers)
    assert {"litellm-exporter", "vllm-exporter", "demo", "demo-gpu-exporter"} <= set(containers)

    # every scrape target up, by its compose service name; none for exporters that do not run
    def all_up():
        targets = stack.prometheus("/api/v1/targets")["data"]["activeTargets"]
        down = [(t["labels"]["job"], t["labels"]["instance"], t["lastError"]) for t in targets if t["health"] != "up"]
        assert not down, down
        return targets
    targets = wait_for("every target up", all_up, 240)
    hosts = {t["labels"]["instance"].split(":")[0] for t in targets}
    assert hosts - {"localhost", "host.docker.internal"} <= set(containers), hosts - set(containers)
    jobs = {t["labels"]["job"] for t in targets}
    assert {"prometheus", "alertmanager", "node", "cadvisor", "loki", "alloy", "grafana", "llmwatch-insights",
            "llmwatch-litellm", "llmwatch-vllm", "llmwatch-gpu", "llmwatch-langfuse", "llmwatch-probe",
            "litellm"} <= jobs
    instances = {(t["labels"]["job"], t["labels"]["instance"]) for t in targets}
    for absent in ("gpu-exporter:9445", "langfuse-exporter:9903", "probe-exporter:9905"):
        assert not any(i == absent for _, i in instances), absent
    assert ("llmwatch-vllm", "vllm-exporter:9902") in instances and ("llmwatch-litellm", "litellm-exporter:9901") in instances

    # LiteLLM on the host, scraped through host.docker.internal
    host_litellm = [t for t in targets if t["labels"]["job"] == "litellm" and "host.docker.internal" in t["scrapeUrl"]]
    assert host_litellm and host_litellm[0]["health"] == "up"
    assert stack.query('litellm_proxy_total_requests_metric_total{simulated!="true"}') or \
        stack.query('{job="litellm", simulated!="true"}')

    # node-exporter sees the host's interfaces (tap0 exists only in the engine's host namespace)
    devices = {r["metric"]["device"] for r in stack.query('node_network_info{job="node"}')}
    assert "tap0" in devices, devices

    # cAdvisor names the containers (through the proxy)
    if real_cadvisor:
        named = {r["metric"]["name"] for r in stack.query('container_last_seen{name!=""}')}
        assert any(name.startswith(project) for name in named), named

    # Docker only through the proxy: the socket is mounted in the proxy alone...
    for c in engine.docker("ps", "-q").stdout.split():
        inspect = json.loads(engine.docker("inspect", c).stdout)[0]
        socket_mounts = [m for m in inspect["Mounts"] if m["Source"] == str(engine.socket)]
        service = inspect["Config"]["Labels"].get("com.docker.compose.service")
        assert bool(socket_mounts) == (service == "docker-proxy"), (service, socket_mounts)
    # ...which a container off the docker-api network cannot resolve, nor reach by its address
    # (Grafana on frontend, the demo on backend), and which refuses what llmwatch does not need
    proxy_name = f"{project}-docker-proxy-1"
    networks = json.loads(engine.docker("inspect", proxy_name).stdout)[0]["NetworkSettings"]["Networks"]
    assert set(networks) == {f"{project}_docker-api"}, networks
    proxy_address = networks[f"{project}_docker-api"]["IPAddress"]
    for outsider in (f"{project}-grafana-1", f"{project}-demo-1"):
        resolve = ["python3", "-c", "import socket; socket.getaddrinfo('docker-proxy', 2375)"]
        assert engine.docker("exec", outsider, *resolve, check=False).returncode != 0, outsider
        connect = ["python3", "-c", f"import socket; socket.create_connection(('{proxy_address}', 2375), timeout=3)"]
        assert engine.docker("exec", outsider, *connect, check=False).returncode != 0, outsider

    # secrets: files 0600 of their reader, in no environment but stack-config's
    for service, path, owner in (("prometheus", "/etc/prometheus/stack/prometheus_password", "65534"),
                                 ("prometheus", "/etc/prometheus/stack/healthcheck.http", "65534"),
                                 ("alertmanager", "/etc/alertmanager/stack/alertmanager.yml", "65534"),
                                 ("litellm-exporter", "/etc/llmwatch/secrets/litellm_master_key", "10001")):
        mode = engine.docker("exec", f"{project}-{service}-1", "stat", "-c", "%a %u", path).stdout.split()
        assert mode == ["600", owner], (service, path, mode)
    for c in engine.docker("ps", "-aq", "-f", f"label=com.docker.compose.project={project}").stdout.split():
        inspect = json.loads(engine.docker("inspect", c).stdout)[0]
        service = inspect["Config"]["Labels"]["com.docker.compose.service"]
        environment = "\n".join(inspect["Config"]["Env"] or [])
        has_secret = stack.password in environment or "sk-e2e-master" in environment
        assert has_secret == (service == "stack-config"), service
    alloy = f"{project}-alloy-1"
    proxy_id = engine.docker("ps", "-q", "-f", f"name={project}-docker-proxy-1").stdout.strip()
    asks = {"GET /v1.41/containers/json": 200, f"GET /v1.41/containers/{proxy_id}/json": 200,
            f"GET /v1.41/containers/{proxy_id}/archive?path=/": 403, "GET /v1.41/images/json": 403,
            f"GET /v1.41/containers/{proxy_id}/export": 403, "POST /v1.41/containers/create": 405,
            f"POST /v1.41/containers/{proxy_id}/exec": 405, f"DELETE /v1.41/containers/{proxy_id}": 405}
    script = ("import http.client, json, sys\nout = {}\nfor ask in json.loads(sys.argv[1]):\n"
              "    method, path = ask.split(' ', 1)\n    c = http.client.HTTPConnection('docker-proxy', 2375, timeout=10)\n"
              "    c.request(method, path)\n    out[ask] = c.getresponse().status\nprint(json.dumps(out))\n")
    got = json.loads(engine.docker("exec", alloy, "python3", "-c", script, json.dumps(list(asks))).stdout)
    assert got == asks
    # and nothing llmwatch itself asked for was refused
    proxy_log = engine.docker("logs", f"{project}-docker-proxy-1").stderr + engine.docker("logs", f"{project}-docker-proxy-1").stdout
    refused = [line for line in proxy_log.splitlines() if "blocked request" in line
               and "archive" not in line and "images/json" not in line and "export" not in line
               and "containers/create" not in line and "/exec" not in line and "DELETE" not in line]
    assert not refused, refused[:5]

    # the Watchdog reaches its webhook, with links at the external URLs
    post = wait_for("Watchdog at the webhook", lambda: next(
        (p for path, p in webhook.posts if path == "/watchdog"
         and any(a["labels"]["alertname"] == "Watchdog" for a in p["alerts"])), None), 240)
    assert post["externalURL"].startswith("http://llmwatch.example:"), post["externalURL"]
    assert post["alerts"][0]["generatorURL"].startswith("http://llmwatch.example:"), post["alerts"][0]["generatorURL"]
    # the runbook link is absolute: Prometheus serves the runbooks page at its external URL
    assert post["alerts"][0]["annotations"]["runbook_url"] == \
        "http://llmwatch.example:23001/consoles/runbooks.html#watchdog", post["alerts"][0]["annotations"]

    # Alertmanager is published and asks for the password
    am = stack.port("alertmanager", 23003)
    assert engine.in_netns(http, f"http://127.0.0.1:{am}/-/ready")[0] == 401
    assert engine.in_netns(http, f"http://127.0.0.1:{am}/-/ready", stack.password)[0] == 200

    # a demo container's log lines, read through the proxy by the log reader and shipped to Loki
    def logs_shipped():
        read = stack.query('sum(loki_source_docker_target_entries_total{job="alloy", container=~".*demo.*"})')
        received = stack.query('sum(loki_distributor_lines_received_total{job="loki"})')
        return read and float(read[0]["value"][1]) > 0 and received and float(received[0]["value"][1]) > 0
    wait_for("demo log lines through the proxy to Loki", logs_shipped, 180)


def check_restart_keeps_data(stack: Stack) -> None:
    """`docker compose down` keeps the named volumes; a second `up` keeps Prometheus' data."""
    before = time.time()
    sample = stack.query('up{job="prometheus"}', at=before)
    assert sample
    stack.run("--profile", "*", "down", "--timeout", "10")
    volumes = stack.engine.docker("volume", "ls", "-q", "-f", f"label=com.docker.compose.project={stack.project}").stdout.split()
    assert f"{stack.project}_prometheus-data" in volumes, volumes
    stack.up()
    again = wait_for("the sample from before the restart", lambda: stack.query('up{job="prometheus"}', at=before), 120)
    assert again[0]["value"][0] == sample[0]["value"][0]


VLLM_STANDIN = "vllm-standin"
# The simulated vLLM server as a container's program: ready at once the first time; after a restart
# it "loads its model" for LOAD_SECONDS with its port closed, as vLLM does. SIGTERM (docker stop,
# docker restart) ends it with 0, SIGUSR1 with 1 (a crash). Its file system keeps the marker
# across restarts.
VLLM_STANDIN_PROGRAM = """\
import os, pathlib, signal, tempfile, threading, time
from llmwatch.simulation.vllm import FakeVllmServer
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
signal.signal(signal.SIGUSR1, lambda *_: os._exit(1))
marker = pathlib.Path(tempfile.gettempdir(), 'started-before')
if marker.exists():
    time.sleep(float(os.environ['LOAD_SECONDS']))
marker.touch()
with FakeVllmServer(host='0.0.0.0', port=8000):
    threading.Event().wait()
"""
# Longer than VllmInstanceDown's `for: 1m` plus a 30 s scrape and a 30 s evaluation: without the
# start grace it would page during the load.
VLLM_LOAD_SECONDS = 150


def check_vllm_lifecycle(stack: Stack, engine: engine_module.PrivateEngine, webhook: Webhook) -> None:
    """A vLLM container restarted pages nothing while it loads within its grace; an exit with code
    1 pages, with the exit code, within 2 minutes."""
    name = f"{stack.project}-{VLLM_STANDIN}"
    image = json.loads(engine.docker("inspect", f"{stack.project}-vllm-exporter-1").stdout)[0]["Config"]["Image"]
    engine.docker("run", "-d", "--name", name, "--network", f"{stack.project}_backend",
                  "--label", "llmwatch.vllm=true", "--label", "llmwatch.vllm.port=8000",
                  "--env", f"LOAD_SECONDS={VLLM_LOAD_SECONDS}", "--entrypoint", "python", image,
                  "-c", VLLM_STANDIN_PROGRAM)
    selector = f'container="{name}"'

    def state() -> str | None:
        found = stack.query(f"llmwatch_vllm_container_state{{{selector}}} == 1")
        return found[0]["metric"]["state"] if found else None

    def serving():
        return state() == "running" and stack.query(f"llmwatch_vllm_up{{{selector}}} == 1")

    wait_for("the stand-in vLLM scraped", serving, 180)

    engine.docker("restart", "-t", "10", name)
    restarted = time.time()
    wait_for("the restarted stand-in reported starting", lambda: state() == "starting", 120)
    wait_for("the stand-in serving again after its load", serving, VLLM_LOAD_SECONDS + 120)
    window = f"[{int(time.time() - restarted) + 30}s]"
    alerts = stack.query(f"max_over_time(ALERTS{{{selector}}}{window})")
    assert alerts == [], f"alerts about the container while it loaded within its grace: {alerts}"
    paged = [a["labels"]["alertname"] for _, post in webhook.posts for a in post["alerts"]
             if a["labels"].get("container") == name]
    assert paged == [], paged

    engine.docker("kill", "--signal", "USR1", name)
    exited = time.monotonic()
    wait_for("the stand-in exited with code 1", lambda: json.loads(engine.docker("inspect", name).stdout)[0]["State"]
             ["ExitCode"] == 1, 30, interval=1)

    def exit_paged():
        return next((a for path, post in webhook.posts if path == "/alerts" for a in post["alerts"]
                     if a["labels"]["alertname"] == "VllmContainerExited" and a["labels"].get("container") == name
                     and a["status"] == "firing"), None)
    alert = wait_for("VllmContainerExited at the webhook", exit_paged, 120)
    print(f"e2e: VllmContainerExited reached the webhook {time.monotonic() - exited:.0f} s after the exit")
    assert alert["labels"]["severity"] == "critical"
    assert "exited with code 1 " in alert["annotations"]["description"], alert["annotations"]
    assert alert["annotations"]["logs_url"].startswith("/d/llmwatch-logs/logs?var-container=" + name)
    engine.docker("rm", "-f", name)  # not part of the project: `compose down` would not remove it
