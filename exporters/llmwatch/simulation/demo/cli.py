"""``llmwatch demo``: serve simulated vLLM, LiteLLM and Langfuse until stopped.

  llmwatch demo                     everything on loopback, fixed ports, no load
  llmwatch demo --load 1            ... plus one request per second through the proxy: every SLO holds
  llmwatch demo --load 4            ... overloading the llama on purpose: its TTFT SLO breaks
  llmwatch demo --role vllm         one role per process (vllm, litellm, langfuse)
  llmwatch demo --role gpu [--load-url URL]   the GPU exporter (settings [gpu]) over a simulated
                                    8xH200 node whose load follows URL's {container: load} JSON
  llmwatch demo --role gpu --faults-file F   ... whose GPUs fail as F says, re-read every 0.2 s:
                                    {"lost": [2], "hung": [5], "driver_unloaded": false}
  llmwatch demo --host 0.0.0.0 --load 1 --targets-dir /out/prometheus/targets   (compose)

Ports: vLLM 8001-8003, LiteLLM 4000 (key sk-demo-master), Langfuse 3000 (pk-lf-demo /
sk-lf-demo), status and GPU load 8000. Point the exporters at them, e.g.
  LLMWATCH_VLLM__DISCOVERY=false LLMWATCH_VLLM__TARGETS='[{name="vllm-llama-3.1-70b", url="http://127.0.0.1:8001"}]' \\
      llmwatch vllm
  llmwatch demo --role gpu --load-url http://127.0.0.1:8000/load
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from llmwatch.core import logs
from llmwatch.simulation.demo import ROLES, Demo
from llmwatch.tools.stack_config import render
from llmwatch.tools.stack_config.cli import write

log = logging.getLogger("llmwatch.simulation.demo")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmwatch demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", choices=(*ROLES, "gpu"), default="all", help="what this process serves (default all)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--load", type=float, default=0.0, help="requests per second through the proxy (default 0)")
    parser.add_argument("--load-url", default="",
                        help="--role gpu: the simulated containers' load follows this URL (the demo's /load)")
    parser.add_argument("--faults-file", type=Path,
                        help="--role gpu: lose, hang or unload the simulated GPUs as this JSON file says")
    parser.add_argument("--any-ports", action="store_true",
                        help="listen on free ports instead of the fixed ones (see --urls-file)")
    parser.add_argument("--urls-file", type=Path,
                        help="write the served URLs here as JSON once listening; removed on exit")
    parser.add_argument("--targets-dir", type=Path,
                        help="write Prometheus target files for the demo exporters here; removed on exit")
    args, rest = parser.parse_known_args(argv)
    if args.role == "gpu":
        return simulated_gpu_exporter(args.load_url, rest, args.faults_file)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.load < 0:
        parser.error("--load must be >= 0")
    logs.configure("INFO", frozenset())

    try:
        demo = Demo(host=args.host, role=args.role, load_rate=args.load, fixed_ports=not args.any_ports).start()
    except OSError as e:
        print(f"llmwatch demo: cannot listen: {e}", file=sys.stderr)
        return 1
    written = []
    if args.targets_dir:
        for name, targets in render.demo_targets().items():
            write(args.targets_dir / name, render.dump_json(targets))
            written.append(args.targets_dir / name)
    if args.urls_file:
        write(args.urls_file, json.dumps(demo.urls()))
        written.append(args.urls_file)
    log.info("serving SIMULATED upstreams", extra={"urls": demo.urls(), "load_per_second": args.load})

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    for path in written:
        path.unlink(missing_ok=True)
    demo.close()
    return 0


def simulated_gpu_exporter(load_url: str, argv: list[str], faults_file: Path | None = None) -> int:
    """The real GPU exporter (its settings, server and collector) over the simulated node."""
    from llmwatch import exporters
    from llmwatch.core import runner
    from llmwatch.exporters import gpu
    from llmwatch.simulation.nvml import SimulatedContainers, http_loads, simulated_node, watch_faults

    def build(settings):
        node = simulated_node()
        if load_url:
            node.load_source = http_loads(load_url)
        if faults_file:
            watch_faults(node, faults_file)
        return gpu.build(settings, nvml=node, containers=SimulatedContainers())

    return runner.run(gpu.SPEC, argv, exporters.known_sections(), build=build, prog="llmwatch demo --role gpu")
