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
              cmd: list[str] | None = None, env: list[str] | None = None, state: str = "running") -> dict:
    """A container in ``docker inspect`` shape."""
    return {"Id": cid, "Name": "/" + name, "Created": "2026-11-01T10:00:00.000000000Z",
            "State": {"Status": state, "Running": state == "running", "StartedAt": "2026-11-01T10:00:01.5Z"},
            "Config": {"Image": image, "Labels": labels or {}, "Cmd": cmd or [], "Env": env or []},
            "HostConfig": {"DeviceRequests": None}, "NetworkSettings": {"Networks": {}}}


def _summary(c: dict) -> dict:
    """The /containers/json (list) shape of a container."""
    return {"Id": c["Id"], "Names": [c["Name"]], "Image": c["Config"]["Image"], "Labels": c["Config"]["Labels"],
            "State": c["State"]["Status"], "Command": " ".join(c["Config"]["Cmd"]), "Created": 1793527200}


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class FakeDockerEngine:
    def __init__(self, socket_path: Path, containers: list[dict] | None = None):
        self.socket_path = Path(socket_path)
        self.containers = list(containers or [])
        self.requests: list[str] = []
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
