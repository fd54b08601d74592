"""A fake Docker Engine API on a unix socket, answering the JSON shapes the real engine does.

Enough of the API for the docker SDK: /_ping, /version, /containers/json, /containers/{id}/json,
with or without the /v1.xx prefix. Containers are dicts in the engine's inspect shape.
"""

from __future__ import annotations

import json
import re
import socketserver
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

API_VERSION = "1.47"


def container(cid: str, name: str, image: str = "vllm/vllm-openai:v0.11.0", labels: dict | None = None,
              cmd: list[str] | None = None, env: list[str] | None = None, state: str = "running",
              entrypoint: list[str] | None = None, ports: dict[int, int] | None = None,
              networks: dict[str, str] | None = None, network_mode: str = "bridge",
              device_requests: list[dict] | None = None, started_at: str = "2026-11-01T10:00:01.500000000Z") -> dict:
    """A container in ``docker inspect`` shape.

    ``ports`` maps container port -> published host port; ``networks`` network name -> IP.
    """
    entrypoint = entrypoint if entrypoint is not None else []
    cmd = cmd or []
    full = [*entrypoint, *cmd]
    return {"Id": cid, "Name": "/" + name, "Created": "2026-11-01T10:00:00.000000000Z",
            "Path": full[0] if full else "", "Args": full[1:],
            "State": {"Status": state, "Running": state == "running", "StartedAt": started_at},
            "Config": {"Image": image, "Labels": labels or {}, "Cmd": cmd, "Entrypoint": entrypoint or None,
                       "Env": env or []},
            "HostConfig": {"DeviceRequests": device_requests, "NetworkMode": network_mode},
            "NetworkSettings": {
                "Ports": {f"{cport}/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(hport)}]
                          for cport, hport in (ports or {}).items()},
                "Networks": {net: {"IPAddress": ip, "Gateway": ""} for net, ip in (networks or {}).items()}}}


def gpus(*ids: str, count: int | None = None) -> list[dict]:
    """DeviceRequests as ``docker run --gpus`` / compose ``deploy.resources`` make them."""
    return [{"Driver": "nvidia", "Count": count if count is not None else 0, "DeviceIDs": list(ids) or None,
             "Capabilities": [["gpu"]], "Options": {}}]


def _summary(c: dict) -> dict:
    """The /containers/json (list) shape of a container."""
    return {"Id": c["Id"], "Names": [c["Name"]], "Image": c["Config"]["Image"], "Labels": c["Config"]["Labels"],
            "State": c["State"]["Status"], "Status": "Up 2 hours",
            "Command": " ".join([c["Path"], *c["Args"]]).strip(), "Created": 1793527200,
            "Ports": [{"PrivatePort": int(p.split("/")[0]), "PublicPort": int(b[0]["HostPort"]), "Type": "tcp"}
                      for p, b in c["NetworkSettings"]["Ports"].items()],
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
                    return self._send(200, [_summary(c) for c in engine.containers if c["State"]["Running"]])
                match = re.fullmatch(r"/containers/([^/]+)/json", path)
                if match:
                    key = match.group(1)
                    for c in engine.containers:
                        if c["Id"].startswith(key) or c["Name"] == "/" + key:
                            return self._send(200, c)
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
