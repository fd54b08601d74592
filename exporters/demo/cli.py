"""``python -m exporters demo``: serve simulated vLLM, LiteLLM and Langfuse until stopped.

  python -m exporters demo                     everything on loopback, fixed ports, no load
  python -m exporters demo --load 1            ... plus one request per second through the proxy
  python -m exporters demo --role vllm         one role per process (vllm, litellm, langfuse)
  python -m exporters demo --host 0.0.0.0 --load 1 --targets-dir /out/prometheus/targets   (compose)

Ports: vLLM 8001-8003, LiteLLM 4000 (key sk-demo-master), Langfuse 3000 (pk-lf-demo /
sk-lf-demo), status and GPU load 8000. Point the exporters at them, e.g.
  LLMWATCH_VLLM__DISCOVERY=false LLMWATCH_VLLM__TARGETS='[{name="vllm-llama-3.1-70b", url="http://127.0.0.1:8001"}]' \\
      python -m exporters vllm
  LLMWATCH_GPU__SIMULATE=true LLMWATCH_GPU__SIMULATE_LOAD_URL=http://127.0.0.1:8000/load python -m exporters gpu
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from exporters.core import logs
from exporters.demo import ROLES, Demo
from exporters.stack import render
from exporters.stack.__main__ import write

log = logging.getLogger("exporters.demo")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m exporters demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", choices=ROLES, default="all", help="what this process serves (default all)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--load", type=float, default=0.0, help="requests per second through the proxy (default 0)")
    parser.add_argument("--targets-dir", type=Path,
                        help="write Prometheus target files for the demo exporters here; removed on exit")
    args = parser.parse_args(argv)
    if args.load < 0:
        parser.error("--load must be >= 0")
    logs.configure("INFO", frozenset())

    try:
        demo = Demo(host=args.host, role=args.role, load_rate=args.load).start()
    except OSError as e:
        print(f"llmwatch demo: cannot listen: {e}", file=sys.stderr)
        return 1
    written = []
    if args.targets_dir:
        for name, targets in render.demo_targets().items():
            write(args.targets_dir / name, render.dump_json(targets))
            written.append(args.targets_dir / name)
    log.info("serving SIMULATED upstreams", extra={"urls": demo.urls(), "load_per_second": args.load})

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    for path in written:
        path.unlink(missing_ok=True)
    demo.close()
    return 0
