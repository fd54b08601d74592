"""A fake Docker Engine API on a unix socket, answering the JSON shapes the real engine does.

Enough of the API for the docker SDK: /_ping, /version, /containers/json (running containers, or
every one with ``all``), /containers/{id}/json, with or without the /v1.xx prefix. Containers are
dicts in the engine's inspect shape; :func:`exit_container` and :func:`start_container` change
them as the engine does when a process ends or starts (Engine API ``ContainerState``).
"""

from __future__ import annotations

import json
import re
import socketserver
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs

API_VERSION = "1.47"
NEVER = "0001-01-01T00:00:00Z"  # how Docker writes a time that has not happened (FinishedAt of a running container)


def container(cid: str, name: str, image: str = "vllm/vllm-openai:v0.11.0", labels: dict | None = None,
              cmd: list[str] | None = None, env: list[str] | None = None, state: str = "running",
              entrypoint: list[str] | None = None, ports: dict[int, int] | None = None,
              networks: dict[str, str] | None = None, network_mode: str = "bridge",
              device_requests: list[dict] | None = None, started_at: str = "2026-11-01T10:00:01.500000000Z",
              finished_at: str = NEVER, exit_code: int = 0, oom_killed: bool = False, restart_count: int = 0) -> dict:
    """A container in ``docker inspect`` shape.

    ``ports`` maps container port -> published host port; ``networks`` network name -> IP. A
    container that is not running has no published ports and no IP addresses, as with the real engine.
    """
    entrypoint = entrypoint if entrypoint is not None else []
    cmd = cmd or []
    full = [*entrypoint, *cmd]
    running = state in ("running", "paused")  # a paused container's process still exists
    return {"Id": cid, "Name": "/" + name, "Created": "2026-11-01T10:00:00.000000000Z",
            "Path": full[0] if full else "", "Args": full[1:], "RestartCount": restart_count,
            "State": {"Status": state, "Running": running, "Paused": state == "paused",
                      "Restarting": state == "restarting", "OOMKilled": oom_killed, "Dead": state == "dead",
                      "Pid": 4242 if running else 0, "ExitCode": exit_code, "Error": "",
                      "StartedAt": NEVER if state == "created" else started_at, "FinishedAt": finished_at},
            "Config": {"Image": image, "Labels": labels or {}, "Cmd": cmd, "Entrypoint": entrypoint or None,
                       "Env": env or []},
            "HostConfig": {"DeviceRequests": device_requests, "NetworkMode": network_mode},
            "NetworkSettings": {
                "Ports": {f"{cport}/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(hport)}]
                          for cport, hport in (ports or {}).items()} if running else {},
                "Networks": {net: {"IPAddress": ip if running else "", "Gateway": ""}
                             for net, ip in (networks or {}).items()}},
            "_ports": dict(ports or {}), "_ips": dict(networks or {})}  # what it gets back when started


def docker_time(unix: float) -> str:
    """A unix time as Docker writes it: RFC 3339 in UTC with nanoseconds."""
    moment = datetime.fromtimestamp(unix, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}000Z"


def exit_container(c: dict, code: int, at: float, oom_killed: bool = False, restarting: bool = False) -> None:
    """The container's process ended: exited, or restarting when its restart policy brings it back
    (Docker keeps the exit code, OOM flag and finish time until the next start)."""
    c["State"].update(Status="restarting" if restarting else "exited", Running=restarting, Restarting=restarting,
                      Paused=False, Pid=0, ExitCode=code, OOMKilled=oom_killed, FinishedAt=docker_time(at))
    c["NetworkSettings"]["Ports"] = {}
    for network in c["NetworkSettings"]["Networks"].values():
        network["IPAddress"] = ""


def start_container(c: dict, at: float, by_policy: bool = False) -> None:
    """The container (re)starts: running again, exit code and OOM flag reset; a restart by the
    restart policy counts in RestartCount, a manual start resets it."""
    c["State"].update(Status="running", Running=True, Restarting=False, Paused=False, Pid=4242, ExitCode=0,
                      OOMKilled=False, Error="", StartedAt=docker_time(at))
    c["RestartCount"] = c.get("RestartCount", 0) + 1 if by_policy else 0
    c["NetworkSettings"]["Ports"] = {f"{cport}/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(hport)}]
                                     for cport, hport in c["_ports"].items()}
    for name, network in c["NetworkSettings"]["Networks"].items():
        network["IPAddress"] = c["_ips"][name]


def gpus(*ids: str, count: int | None = None) -> list[dict]:
    """DeviceRequests as ``docker run --gpus`` / compose ``deploy.resources`` make them."""
    return [{"Driver": "nvidia", "Count": count if count is not None else 0, "DeviceIDs": list(ids) or None,
             "Capabilities": [["gpu"]], "Options": {}}]


def _status(state: dict) -> str:
    """The list's human-readable Status, as ``docker ps`` shows it."""
    if state["Status"] == "exited":
        return f"Exited ({state['ExitCode']}) 2 minutes ago"
    if state["Status"] == "restarting":
        return f"Restarting ({state['ExitCode']}) 2 seconds ago"
    if state["Status"] == "created":
        return "Created"
    if state["Status"] == "dead":
        return "Dead"
    return "Up 2 hours (Paused)" if state["Paused"] else "Up 2 hours"


def _summary(c: dict) -> dict:
    """The /containers/json (list) shape of a container."""
    return {"Id": c["Id"], "Names": [c["Name"]], "Image": c["Config"]["Image"], "Labels": c["Config"]["Labels"],
            "State": c["State"]["Status"], "Status": _status(c["State"]),
            "Command": " ".join([c["Path"], *c["Args"]]).strip(), "Created": 1793527200,
            "Ports": [{"PrivatePort": int(p.split("/")[0]), "PublicPort": int(b[0]["HostPort"]), "Type": "tcp"}
                      for p, b in c["NetworkSettings"]["Ports"].items() if b],
            "HostConfig": {"NetworkMode": c["HostConfig"]["NetworkMode"]}}


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class FakeDockerEngine:
    def __init__(self, socket_path: Path, containers: list[dict] | None = None):
        self.socket_path = Path(socket_path)
        self.containers = list(containers or [])
        self.requests: list[str] = []
        self.down = False  # answer 500 to container calls, as an engine in trouble does
        engine = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def address_string(self):
                return "unix"

            def do_GET(self):
                engine.requests.append(self.path)
                path = re.sub(r"^/v[0-9.]+", "", self.path.split("?", 1)[0])
                if path == "/_ping":
                    return self._send(200, "OK", "text/plain")
                if path == "/version":
                    return self._send(200, {"ApiVersion": API_VERSION, "Version": "28.2.2", "MinAPIVersion": "1.24"})
                if engine.down:
                    return self._send(500, {"message": "engine unavailable"})
                if path == "/containers/json":
                    # the engine reads all as a boolean ("1", "true"); without it, running containers only
                    every = parse_qs(self.path.partition("?")[2]).get("all", ["0"])[-1] in ("1", "true", "True")
                    return self._send(200, [_summary(c) for c in engine.containers if every or c["State"]["Running"]])
                match = re.fullmatch(r"/containers/([^/]+)/json", path)
                if match:
                    key = match.group(1)
                    for c in engine.containers:
                        if c["Id"].startswith(key) or c["Name"] == "/" + key:
                            return self._send(200, {k: v for k, v in c.items() if not k.startswith("_")})
                    return self._send(404, {"message": f"No such container: {key}"})
                return self._send(404, {"message": "page not found"})

            def _send(self, status, body, content_type="application/json"):
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = _Server(str(self.socket_path), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def __enter__(self) -> "FakeDockerEngine":
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
