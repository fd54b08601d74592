"""The contract every exporter fulfils, so the command line, the settings loader and the docs
can treat them alike without knowing any of them.

An exporter package (``llmwatch.exporters.<name>``) defines ``SPEC``, an :class:`ExporterSpec`:
its settings section, a description, and ``build(settings)`` returning a running
:class:`Exporter`. The package's ``__init__`` stays light (settings dataclass and ``SPEC``);
``build`` imports the heavy parts, so listing the exporters costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar, runtime_checkable

from prometheus_client.registry import Collector

from llmwatch.core.settings import Settings

S = TypeVar("S")


@runtime_checkable
class Exporter(Protocol):
    """A running exporter: what /metrics serves, and how to stop it (threads, connections)."""

    collector: Collector

    def close(self) -> None: ...


@dataclass(frozen=True)
class ExporterSpec(Generic[S]):
    """What an exporter declares about itself."""

    name: str  # the command (``llmwatch <name>``) and its settings section ``[<name>]``
    summary: str  # a few words for ``llmwatch --help`` and the docs
    settings: type[S]  # frozen dataclass of that section (fields made with ``core.settings.setting``)
    description: str  # what it serves, for ``--help`` and the landing page
    build: Callable[[Settings[S]], Exporter]
    # Other sections it reads, as partial views: section -> dataclass of the keys it needs.
    reads: Mapping[str, type] = field(default_factory=dict)
    # /metrics writes pre-rendered families as they are, always in the classic text format.
    text_only: bool = False
