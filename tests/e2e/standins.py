"""Stand-ins for Grafana, Loki and Alloy in the end-to-end test (standard library only; they run
on the test's Debian base image under the image names docker-compose.yml gives).

    python3 standins.py grafana    /api/health and /metrics on GF_SERVER_HTTP_PORT
    python3 standins.py loki ...   /ready, /metrics and the push API on 23002; counts what it gets
    python3 standins.py alloy ...  what config/alloy/config.alloy asks of Alloy, in small: lists the
                                   containers and follows their logs through the Docker API at
                                   its `host` (the socket proxy), pushes each line to its loki.write
                                   URL (with its external `host` label and basic auth, as an agent
                                   host's configuration has them), and counts them in /metrics
                                   under Alloy's metric names

Grafana's and Loki's own servers are not built for the test (Loki is AGPL), and Alloy's program
cannot be built from its Go module (images.py says why); so what the test proves of them is what
these do: that the compose wiring (names, ports, networks, the proxy's allowlist, healthchecks)
lets a log reader reach Docker's logs through the proxy and Loki.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COUNTS: dict[str, float] = {}
LOCK = threading.Lock()


def count(series: str, value: float = 1) -> None:
    with LOCK:
        COUNTS[series] = COUNTS.get(series, 0) + value


def exposition() -> bytes:
    with LOCK:
        return "".join(f"{series} {value}\n" for series, value in sorted(COUNTS.items())).encode()


def serve(port: int, routes: dict[str, tuple[int, str, bytes | callable]], post=None) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path not in routes:
                self.send_response(404)
                self.end_headers()
                return
            status, kind, body = routes[path]
            body = body() if callable(body) else body
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status = post(self.path, body, self.headers) if post else 404
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()


def grafana() -> None:
    port = int(os.environ.get("GF_SERVER_HTTP_PORT", "3000"))
    count('grafana_build_info{edition="stand-in"}')
    serve(port, {"/api/health": (200, "application/json", b'{"database": "ok", "version": "stand-in"}'),
                 "/metrics": (200, "text/plain", exposition)})


def loki() -> None:
    """Loki's push API (no authentication, as Loki's own); it also counts lines by the stream's
    `host` and `compose_project` labels and whether the push came with basic auth (an agent host's
    Alloy sends it), as stream_host, compose_project and auth: a plain `host` label on a scraped
    series would become exported_host under the scrape's own."""
    def push(path: str, body: bytes, headers) -> int:
        if path != "/loki/api/v1/push":
            return 404
        auth = "basic" if (headers.get("Authorization") or "").startswith("Basic ") else "none"
        streams = json.loads(body)["streams"]
        for stream in streams:
            count('loki_distributor_lines_received_total{tenant="fake"}', len(stream["values"]))
            labels = stream["stream"]
            count(f'loki_standin_lines_received_total{{stream_host="{labels.get("host", "")}",'
                  f'compose_project="{labels.get("compose_project", "")}",auth="{auth}"}}', len(stream["values"]))
        count("loki_standin_push_requests_total")
        return 204

    count('loki_distributor_lines_received_total{tenant="fake"}', 0)
    serve(23002, {"/ready": (200, "text/plain", b"ready\n"), "/metrics": (200, "text/plain", exposition)}, push)


def _docker_get(address: str, path: str, timeout: float | None = 10) -> http.client.HTTPResponse:
    host, port = address.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    connection.request("GET", path)
    response = connection.getresponse()
    if response.status != 200:
        raise OSError(f"GET {path}: {response.status} {response.read()[:200]!r}")
    return response


def _frames(response):
    """Docker's multiplexed log stream (no TTY): 8-byte header (stream, 0, 0, 0, size), then data."""
    while header := response.read(8):
        if len(header) < 8:
            return
        stream, size = header[0], struct.unpack(">I", header[4:])[0]
        yield ("stdout" if stream == 1 else "stderr"), response.read(size)


def alloy(config_path: str) -> None:
    config = open(config_path).read()
    docker = re.search(r'host\s*=\s*"tcp://([^"]+)"', config).group(1)
    push_url = re.search(r'url\s*=\s*"http://([^/"]+)(/[^"]*)"', config)
    loki_address, push_path = push_url.group(1), push_url.group(2)
    # an agent host's loki.write: every stream labelled with the host, basic auth from a file
    external = re.search(r'external_labels\s*=\s*\{\s*host\s*=\s*"([^"]+)"', config)
    host_label = {"host": external.group(1)} if external else {}
    password_file = re.search(r'password_file\s*=\s*"([^"]+)"', config)
    auth_headers = {}
    if password_file:
        user = re.search(r'username\s*=\s*"([^"]+)"', config).group(1)
        password = open(password_file.group(1)).read()
        auth_headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    followed: set[str] = set()
    count('loki_source_docker_target_entries_total{component_id="loki.source.docker.containers"}', 0)

    def push(labels: dict[str, str], lines: list[str]) -> None:
        body = json.dumps({"streams": [{"stream": {**labels, **host_label},
                                        "values": [[str(time.time_ns()), line] for line in lines]}]})
        host, port = loki_address.split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("POST", push_path, body=body, headers={"Content-Type": "application/json", **auth_headers})
        status = connection.getresponse().status
        count(f'loki_write_sent_entries_total{{component_id="loki.write.local",status="{status}"}}', len(lines))

    def follow(container: dict) -> None:
        name = container["Names"][0].lstrip("/")
        labels = container.get("Labels") or {}
        stream_labels = {"container": name,
                         "compose_service": labels.get("com.docker.compose.service", ""),
                         "compose_project": labels.get("com.docker.compose.project", "")}
        since = int(time.time()) - 60
        try:
            _docker_get(docker, f"/containers/{container['Id']}/json")  # as loki.source.docker does
            response = _docker_get(docker, f"/containers/{container['Id']}/logs?follow=1&stdout=1&stderr=1"
                                           f"&since={since}", timeout=None)
            for stream, data in _frames(response):
                lines = data.decode(errors="replace").splitlines()
                count('loki_source_docker_target_entries_total{component_id="loki.source.docker.containers",'
                      f'container="{name}"}}', len(lines))
                push({**stream_labels, "stream": stream}, lines)
        except Exception as e:  # noqa: BLE001 - a stand-in: count it and let discovery retry
            count(f'alloy_standin_errors_total{{container="{name}"}}')
            print(f"alloy stand-in: {name}: {e}", file=sys.stderr, flush=True)
        finally:
            followed.discard(container["Id"])

    def discover() -> None:
        while True:
            try:
                response = _docker_get(docker, "/containers/json")
                for container in json.loads(response.read()):
                    if container["Id"] not in followed:
                        followed.add(container["Id"])
                        threading.Thread(target=follow, args=(container,), daemon=True).start()
                count("alloy_standin_discovery_refreshes_total")
            except Exception as e:  # noqa: BLE001
                count("alloy_standin_errors_total")
                print(f"alloy stand-in: discovery: {e}", file=sys.stderr, flush=True)
            time.sleep(5)

    threading.Thread(target=discover, daemon=True).start()
    address = re.search(r"--server.http.listen-addr=\S*:(\d+)", " ".join(sys.argv)).group(1)
    serve(int(address), {"/-/ready": (200, "text/plain", b"Alloy is ready.\n"),
                         "/metrics": (200, "text/plain", exposition)})


def cadvisor() -> None:
    """Only where cAdvisor cannot be built: answers its healthcheck and an empty /metrics."""
    count('cadvisor_version_info{cadvisorVersion="stand-in"}')
    serve(8080, {"/healthz": (200, "text/plain", b"ok"), "/metrics": (200, "text/plain", exposition)})


if __name__ == "__main__":
    role = sys.argv[1]
    if role == "grafana":
        grafana()
    elif role == "loki":
        loki()
    elif role == "cadvisor":
        cadvisor()
    elif role == "alloy":
        alloy(next(a for a in sys.argv[2:] if a.endswith(".alloy")))
    else:
        sys.exit(f"unknown role {role}")
