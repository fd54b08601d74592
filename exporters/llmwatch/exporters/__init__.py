"""The exporters, one package each, and the one list of them.

Each ``llmwatch.exporters.<name>`` package defines ``SPEC`` (see :mod:`llmwatch.core.exporter`).
The command line's choices, the settings sections known to the loader and the docs' list are all
derived from :data:`NAMES`: adding an exporter is its own folder plus one name here.
Exporters never import each other; what two of them share lives in :mod:`llmwatch.upstreams`.
"""

from __future__ import annotations

import importlib

from llmwatch.core.exporter import ExporterSpec
from llmwatch.core.settings import SHARED_SECTIONS

NAMES = (
    "gpu",
    "vllm",
    "litellm",
    "langfuse",
    "insights",
    "probe",
)


def spec(name: str) -> ExporterSpec:
    if name not in NAMES:
        raise KeyError(f"no exporter {name!r}; exporters are {', '.join(NAMES)}")
    return importlib.import_module(f"{__name__}.{name}").SPEC


def specs() -> list[ExporterSpec]:
    return [spec(name) for name in NAMES]


def known_sections() -> set[str]:
    """Every settings section any exporter reads, so a misspelt LLMWATCH_* variable is reported."""
    sections = set(SHARED_SECTIONS)
    for s in specs():
        sections |= {s.name, *s.reads}
    return sections
