"""``python -m exporters <name>``: load settings, then serve one exporter until SIGTERM."""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading

from prometheus_client import CollectorRegistry

from exporters.core import logs, settings as settings_mod
from exporters.core.http import start_server

log = logging.getLogger("exporters")

# Exporter name -> module. Each module has SECTION, SETTINGS (a frozen dataclass), DESCRIPTION,
# optionally ALSO (other sections it reads: name -> dataclass), and build(settings) returning an object with .collector and .close(), and optionally
# .text_only = True (see exporters.core.http: families with pre-rendered lines).
EXPORTERS = {
    "gpu": "exporters.gpu",
    "insights": "exporters.insights",
    "langfuse": "exporters.langfuse",
    "litellm": "exporters.litellm",
    "probe": "exporters.probe",
    "vllm": "exporters.vllm",
}
# Every section any exporter reads, so a typo in any LLMWATCH_* variable is reported.
KNOWN_SECTIONS = {"common", "docker", "gpu", "vllm", "litellm", "langfuse", "insights", "probe"}


# Commands that are not exporters: the TTFT simulator, the load generator, the simulated upstreams.
TOOLS = {"simulate": "exporters.simulator.cli", "loadgen": "exporters.loadgen.cli", "demo": "exporters.demo.cli"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in TOOLS:
        return importlib.import_module(TOOLS[argv[0]]).main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m exporters", description="llmwatch exporters")
    parser.add_argument("exporter", choices=sorted(EXPORTERS),
                        help="which exporter to run (or: simulate, loadgen, demo --help)")
    parser.add_argument("--check-config", action="store_true",
                        help="validate settings, print the effective values (secrets masked) and exit")
    args = parser.parse_args(argv)

    module = importlib.import_module(EXPORTERS[args.exporter])
    try:
        loaded = settings_mod.load(module.SECTION, module.SETTINGS, known_sections=KNOWN_SECTIONS,
                                   also=getattr(module, "ALSO", None))
    except settings_mod.SettingsError as e:
        for problem in e.problems:
            print(f"llmwatch {args.exporter}: {problem}", file=sys.stderr)
        return 2
    if args.check_config:
        print(settings_mod.describe(loaded, module.SECTION))
        print(f"llmwatch {args.exporter}: configuration ok")
        return 0

    logs.configure(loaded.common.log_level, loaded.secrets)
    exporter = module.build(loaded)
    registry = CollectorRegistry()
    registry.register(exporter.collector)
    port = getattr(loaded.exporter, "port")
    try:
        server = start_server(args.exporter, registry, loaded.common.listen_address, port, module.DESCRIPTION,
                              text_only=getattr(exporter, "text_only", False))
    except OSError as e:
        log.error("cannot listen", extra={"address": loaded.common.listen_address, "port": port, "error": str(e)})
        exporter.close()
        return 1

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    log.info("stopping", extra={"exporter": args.exporter})
    server.shutdown()
    exporter.close()
    return 0
