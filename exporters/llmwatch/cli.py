"""The ``llmwatch`` command: ``llmwatch <exporter>`` serves one exporter until SIGTERM;
``llmwatch <tool> ...`` runs a tool. ``python -m llmwatch`` is the same command.

The exporters come from :data:`llmwatch.exporters.NAMES`; the tools are listed here, each a
module with ``main(argv) -> int``, imported only when run.
"""

from __future__ import annotations

import importlib
import sys

from llmwatch import __version__, exporters
from llmwatch.core import runner

# command -> (module with main(argv), one line for --help)
TOOLS = {
    "simulate": ("llmwatch.tools.simulate.cli", "the TTFT simulator: run, compare, sweep, capacity"),
    "loadgen": ("llmwatch.tools.loadgen.cli", "Poisson load of streamed completions, with latency percentiles"),
    "demo": ("llmwatch.simulation.demo.cli", "serve simulated vLLM, LiteLLM, Langfuse and a GPU node's load"),
    "stack-config": ("llmwatch.tools.stack_config.cli", "write Prometheus' and Alertmanager's files from .env"),
    "dashboards": ("llmwatch.tools.dashboards.cli", "write (or --check) the Grafana dashboards' JSON"),
    "rules": ("llmwatch.tools.rules.cli", "write (or --check) the Prometheus rule files"),
    "top": ("llmwatch.tools.top.cli", "the stack at a glance in the terminal: models, GPUs, alerts"),
}


def _usage() -> str:
    width = max(map(len, [*exporters.NAMES, *TOOLS]))
    lines = ["usage: llmwatch COMMAND [ARGS...]", "", "exporters (llmwatch NAME [--check-config]):"]
    lines += [f"  {s.name:<{width}}  {s.summary}" for s in exporters.specs()]
    lines += ["", "tools (llmwatch NAME --help for their arguments):"]
    lines += [f"  {name:<{width}}  {line}" for name, (_, line) in TOOLS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"llmwatch {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command in TOOLS:
        return importlib.import_module(TOOLS[command][0]).main(rest)
    if command not in exporters.NAMES:
        print(f"llmwatch: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    return runner.run(exporters.spec(command), rest, exporters.known_sections())
