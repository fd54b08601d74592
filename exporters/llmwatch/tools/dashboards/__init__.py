"""llmwatch's Grafana dashboards as code: one module per board, written to ``dashboards/llmwatch/``.

``llmwatch dashboards`` rewrites the JSON files Grafana provisions; ``--check`` only
reports the files that differ from what the code builds (a test runs it).
"""

from __future__ import annotations

from llmwatch.tools.dashboards import containers, cost, gpu, langfuse, litellm, logs, overview, system, vllm

# file name -> builder; the folder name becomes the Grafana folder (foldersFromFilesStructure).
BOARDS = {
    "overview": overview.build, "system": system.build, "gpu": gpu.build, "containers": containers.build,
    "vllm": vllm.build, "litellm": litellm.build, "langfuse": langfuse.build, "logs": logs.build,
    "cost": cost.build,
}
FOLDER = "llmwatch"


def render() -> dict[str, str]:
    """Every board's JSON text, by file name relative to the dashboards directory."""
    import json

    return {f"{FOLDER}/{name}.json": json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
            for name, build in BOARDS.items()}
