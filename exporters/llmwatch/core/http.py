"""The HTTP server every exporter runs: ``/metrics``, ``/health`` and a small landing page.

``/metrics`` is prometheus-client's WSGI app (content negotiation, OpenMetrics, gzip) over the
exporter's own registry: no process/GC collectors unless the exporter adds them.

An exporter that passes thousands of upstream series through (vLLM) can hand over families that
carry their sample lines already written (``text_lines()``); with ``text_only`` /metrics then
always answers the classic text format, which every Prometheus accepts, and writes those lines as
they are instead of formatting each sample again.
"""

from __future__ import annotations

import gzip
import html
import logging
import threading
from collections.abc import Iterable
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, generate_latest, make_wsgi_app
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

log = logging.getLogger(__name__)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
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
                 description: str = "", text_only: bool = False) -> WSGIServer:
    """Serve in a daemon thread; returns the server (``server.server_port``, ``server.shutdown()``)."""
    server = make_server(address, port, make_app(exporter, registry, description, text_only),
                         server_class=_ThreadingServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name=f"{exporter}-http", daemon=True).start()
    log.info("serving", extra={"exporter": exporter, "address": address, "port": server.server_port})
    return server
