"""Serve one exporter until SIGTERM: settings, logging, the HTTP server, a clean stop.

The ``llmwatch <exporter>`` command runs this with the exporter's own ``build``; the demo runs
it with a ``build`` that hands the GPU exporter a simulated node, so the demo serves the same
exporter code, settings and server as production.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from llmwatch.core import logs, settings as settings_mod
from llmwatch.core.exporter import Exporter, ExporterSpec
from llmwatch.core.http import start_server

log = logging.getLogger("llmwatch")


def run(spec: ExporterSpec, argv: Sequence[str], known_sections: Iterable[str], *,
        build: Callable[[settings_mod.Settings[Any]], Exporter] | None = None, prog: str = "") -> int:
    """Parse ``--check-config``, load and check settings, then serve until SIGTERM or SIGINT.

    Exit status: 0 after a clean stop or a good ``--check-config``, 2 for bad settings (one line
    per bad key on stderr), 1 when the port cannot be bound.
    """
    parser = argparse.ArgumentParser(prog=prog or f"llmwatch {spec.name}", description=spec.description)
    parser.add_argument("--check-config", action="store_true",
                        help="validate settings, print the effective values (secrets masked) and exit")
    args = parser.parse_args(list(argv))
    try:
        loaded = settings_mod.load(spec.name, spec.settings, known_sections=set(known_sections),
                                   reads=dict(spec.reads))
    except settings_mod.SettingsError as e:
        for problem in e.problems:
            print(f"llmwatch {spec.name}: {problem}", file=sys.stderr)
        return 2
    if args.check_config:
        print(settings_mod.describe(loaded, spec.name))
        print(f"llmwatch {spec.name}: configuration ok")
        return 0

    logs.configure(loaded.common.log_level, loaded.secrets)
    exporter = (build or spec.build)(loaded)
    if not isinstance(exporter, Exporter):
        raise TypeError(f"{spec.name}: build() returned {type(exporter).__name__}, which lacks collector or close()")
    registry = CollectorRegistry()
    registry.register(exporter.collector)
    port = loaded.exporter.port
    try:
        server = start_server(spec.name, registry, loaded.common.listen_address, port, spec.description,
                              text_only=spec.text_only)
    except OSError as e:
        log.error("cannot listen", extra={"address": loaded.common.listen_address, "port": port, "error": str(e)})
        exporter.close()
        return 1

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    log.info("stopping", extra={"exporter": spec.name})
    server.shutdown()
    exporter.close()
    return 0
