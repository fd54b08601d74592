"""The HTTP server every exporter runs: ``/metrics``, ``/health`` and a small landing page.

``/metrics`` is prometheus-client's WSGI app (content negotiation, OpenMetrics, gzip) over the
exporter's own registry: no process/GC collectors unless the exporter adds them.
"""

from __future__ import annotations

import html
import logging
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

log = logging.getLogger(__name__)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - signature from BaseHTTPRequestHandler
        log.debug("http request", extra={"client": self.client_address[0], "request": format % args})


def make_app(exporter: str, registry: CollectorRegistry, description: str = ""):
    metrics_app = make_wsgi_app(registry)
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
                 description: str = "") -> WSGIServer:
    """Serve in a daemon thread; returns the server (``server.server_port``, ``server.shutdown()``)."""
    server = make_server(address, port, make_app(exporter, registry, description),
                         server_class=_ThreadingServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name=f"{exporter}-http", daemon=True).start()
    log.info("serving", extra={"exporter": exporter, "address": address, "port": server.server_port})
    return server
