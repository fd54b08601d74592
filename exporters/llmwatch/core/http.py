"""The HTTP server every exporter runs: ``/metrics``, ``/health`` and a small landing page.

``/metrics`` is prometheus-client's WSGI app (content negotiation, OpenMetrics, gzip) over the
exporter's own registry: no process/GC collectors unless the exporter adds them.

An exporter that passes thousands of upstream series through (vLLM) can hand over families that
carry their sample lines already written (``text_lines()``); with ``text_only`` /metrics then
always answers the classic text format, which every Prometheus accepts, and writes those lines as
they are instead of formatting each sample again.

The server is bounded: a connection that has not sent its request within ``read_timeout``
seconds (or stops reading the answer that long) is closed, and beyond ``max_connections`` open
at once a new one gets ``503`` straight away instead of a thread of its own, so half-sent
requests cannot pile up threads and memory.
"""

from __future__ import annotations

import gzip
import html
import logging
import threading
from collections.abc import Iterable
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry, generate_latest, make_wsgi_app
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

log = logging.getLogger(__name__)


# Defaults for every exporter: far above what Prometheus needs (a request every few seconds, each
# answered within the scrape budget), far below what exhausts threads or memory.
READ_TIMEOUT_SECONDS = 10.0
MAX_CONNECTIONS = 64

_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 22\r\n"
         b"Retry-After: 1\r\nConnection: close\r\n\r\ntoo many connections\r\n")


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    """A thread per connection, at most ``max_connections`` of them; never joined on close."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128  # socketserver's 5 makes a burst of connections wait on SYN retries

    def __init__(self, *args, read_timeout: float, max_connections: int, **kwargs):
        self.read_timeout = read_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            log.debug("connection refused: too many open", extra={"client": client_address[0]})
            try:
                request.sendall(_BUSY)  # a fresh socket's send buffer takes it without blocking
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _QuietHandler(WSGIRequestHandler):
    def setup(self):
        self.timeout = self.server.read_timeout  # applied to the socket by StreamRequestHandler.setup
        super().setup()

    def handle(self):
        try:
            super().handle()
        except (TimeoutError, ConnectionError) as e:  # a slow or vanished client, not a server error
            log.debug("connection closed", extra={"client": self.client_address[0], "error": type(e).__name__})

    def log_message(self, format, *args):  # noqa: A002 - signature from BaseHTTPRequestHandler
        log.debug("http request", extra={"client": self.client_address[0], "request": format % args})


class _Families:
    """A registry-shaped wrapper so generate_latest can write a list of families."""

    def __init__(self, families: Iterable):
        self.families = families

    def collect(self):
        return self.families


_TEXT_TYPES = {"counter": "counter", "gauge": "gauge", "histogram": "histogram", "summary": "summary",
               "info": "gauge", "stateset": "gauge", "gaugehistogram": "histogram", "unknown": "untyped"}


def render_text(registry) -> bytes:
    """Text format 0.0.4; families with ``text_lines()`` are written as they are, others by prometheus-client."""
    parts, plain = [], []
    for family in registry.collect():
        lines = getattr(family, "text_lines", None)
        if lines is None:
            plain.append(family)
            continue
        if plain:
            parts.append(generate_latest(_Families(plain)))
            plain = []
        name = family.name + ("_total" if family.type == "counter" else "")
        doc = family.documentation.replace("\\", r"\\").replace("\n", r"\n")
        body = "\n".join([f"# HELP {name} {doc}", f"# TYPE {name} {_TEXT_TYPES.get(family.type, 'untyped')}",
                          *lines()])
        parts.append(body.encode() + b"\n")
    if plain:
        parts.append(generate_latest(_Families(plain)))
    return b"".join(parts)


def _text_app(registry):
    def app(environ, start_response):
        body = render_text(registry)
        headers = [("Content-Type", CONTENT_TYPE_PLAIN_0_0_4)]
        if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
            body = gzip.compress(body, compresslevel=1)
            headers.append(("Content-Encoding", "gzip"))
        start_response("200 OK", headers + [("Content-Length", str(len(body)))])
        return [body]

    return app


def make_app(exporter: str, registry: CollectorRegistry, description: str = "", text_only: bool = False):
    metrics_app = _text_app(registry) if text_only else make_wsgi_app(registry)
    page = (f"<!doctype html><html><head><title>llmwatch {exporter} exporter</title></head><body>"
            f"<h1>llmwatch {html.escape(exporter)} exporter</h1><p>{html.escape(description)}</p>"
            '<ul><li><a href="metrics">/metrics</a></li><li><a href="health">/health</a></li></ul>'
            "</body></html>").encode()

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return metrics_app(environ, start_response)
        if path == "/health":
            # Alive and serving; the state of upstreams is in the *_up metrics, not here.
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b'{"status":"ok"}']
        if path == "/":
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [page]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: try /metrics\n"]

    return app


def start_server(exporter: str, registry: CollectorRegistry, address: str, port: int,
                 description: str = "", text_only: bool = False, *, read_timeout: float = READ_TIMEOUT_SECONDS,
                 max_connections: int = MAX_CONNECTIONS) -> WSGIServer:
    """Serve in a daemon thread; returns the server (``server.server_port``, ``server.shutdown()``)."""
    server = _ThreadingServer((address, port), _QuietHandler, read_timeout=read_timeout,
                              max_connections=max_connections)
    server.set_app(make_app(exporter, registry, description, text_only))
    threading.Thread(target=server.serve_forever, name=f"{exporter}-http", daemon=True).start()
    log.info("serving", extra={"exporter": exporter, "address": address, "port": server.server_port})
    return server
