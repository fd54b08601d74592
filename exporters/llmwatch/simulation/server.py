"""A loopback HTTP server for simulated upstreams (vLLM, LiteLLM, Langfuse): demo mode and tests.

Subclasses answer ``answer(path, headers) -> (status, content type, body)`` for GET and
``answer_post(path, headers, body)`` for POST; a body that is an iterator of bytes is streamed
(chunked transfer encoding, each piece flushed as it comes: server-sent events). Every server can
hang (hold requests until :meth:`release` or close) and add latency, the two ways a slow upstream
shows itself; requests are recorded so tests can count what an exporter asked. ``close()`` also
cuts the connections clients keep alive, as a killed process would.
"""

from __future__ import annotations

import socket
import sys
import threading
import traceback
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class CutStream(Exception):
    """Raised by a streamed body to end the response without its final chunk, as a crashed server does."""


def _quiet_disconnects(request, client_address) -> None:
    """A client closing its connection is normal; anything else is printed as the server would."""
    if not isinstance(sys.exc_info()[1], OSError):
        traceback.print_exc()


class FakeServer:
    def __init__(self, *, hang: bool = False, latency: float = 0.0, host: str = "127.0.0.1", port: int = 0):
        self.hang, self.latency = hang, latency
        self.requests: list[str] = []
        self.headers: list[dict[str, str]] = []
        self._release = threading.Event()
        self._connections: set[socket.socket] = set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                server._connections.add(self.connection)

            def finish(self):
                server._connections.discard(self.connection)
                super().finish()

            def _begin(self) -> dict[str, str]:
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.requests.append(self.path)
                server.headers.append(headers)
                if server.hang:
                    server._release.wait()
                if server.latency:
                    time.sleep(server.latency)
                return headers

            def _send(self, status: int, content_type: str, body) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                if isinstance(body, bytes):
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                try:
                    for piece in body:
                        if piece:
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.write(b"0\r\n\r\n")
                except CutStream:  # the body asked to drop the connection mid-stream
                    self.close_connection = True
                except OSError:  # the client went away
                    self.close_connection = True
                finally:
                    close = getattr(body, "close", None)
                    if close:
                        close()

            def do_GET(self):
                headers = self._begin()
                self._send(*server.answer(self.path, headers))

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                payload = self.rfile.read(length) if length else b""
                headers = self._begin()
                self._send(*server.answer_post(self.path, headers, payload))

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self._httpd.handle_error = _quiet_disconnects
        # close() waits for serve_forever to notice, up to one poll interval (0.5 s by default):
        # tests start and close hundreds of these servers
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)

    def answer(self, path: str, headers: dict[str, str]) -> tuple[int, str, bytes]:
        raise NotImplementedError

    def answer_post(self, path: str, headers: dict[str, str], body: bytes):
        """``(status, content type, bytes or an iterator of bytes)``; no POST endpoints by default."""
        return 405, "application/json", b'{"detail": "Method Not Allowed"}'

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def release(self) -> None:
        self._release.set()

    def start(self):
        self._thread.start()
        return self

    def close(self) -> None:
        self._release.set()
        if self._thread.is_alive():  # shutdown() waits for serve_forever, which never ran otherwise
            self._httpd.shutdown()
        self._httpd.server_close()
        for connection in list(self._connections):
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


class _Fixed:
    """A fixed list of metric families, as a prometheus_client collector."""

    def __init__(self, families: list):
        self.families = families

    def collect(self):
        return self.families


def exposition(families: list) -> bytes:
    """Prometheus text format for these metric families: what a simulated /metrics serves."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    registry.register(_Fixed(families))
    return generate_latest(registry)
