"""A metric family that writes its own text lines: what an exporter with hundreds of samples per
scrape hands the HTTP server instead of prometheus-client's families.

prometheus-client formats every sample again on every scrape (name and label validation, label
escaping, one format call per label): for the GPU exporter that was half of a scrape. A
:class:`TextFamily` writes each sample's line once, as it is added, from a label text kept per
distinct label set (a GPU's ``gpu="3"`` is escaped and joined once per process, not per scrape).
:func:`llmwatch.core.http.render_text` writes those lines as they are; ``samples`` keeps the
family usable by prometheus-client's own exposition (OpenMetrics, tests).
"""

from __future__ import annotations

from functools import lru_cache

from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


@lru_cache(maxsize=8192)
def label_text(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    """``{a="1",b="2"}``, sorted by name as prometheus-client writes it ("" without labels)."""
    if not names:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(zip(names, values))) + "}"


class TextFamily:
    """A gauge or counter family, shaped like prometheus-client's (``name``, ``documentation``,
    ``type``, ``samples``, ``add_metric``), that also has ``text_lines()``.

    A counter's name may be given with or without ``_total``, as with CounterMetricFamily.
    """

    unit = ""

    def __init__(self, name: str, documentation: str, labels: list[str] | tuple[str, ...] = (),
                 type_: str = "gauge"):
        if type_ == "counter" and name.endswith("_total"):
            name = name[: -len("_total")]
        self.name, self.documentation, self.type = name, documentation, type_
        self.sample_name = name + "_total" if type_ == "counter" else name
        self.label_names = tuple(labels)
        self._label_values: list[tuple[str, ...]] = []
        self._values: list[float] = []
        self._lines: list[str] = []

    def add_metric(self, labels: list[str] | tuple[str, ...], value: float) -> None:
        values = tuple(labels)
        self._label_values.append(values)
        self._values.append(value)
        self._lines.append(f"{self.sample_name}{label_text(self.label_names, values)} {floatToGoString(value)}")

    def text_lines(self) -> list[str]:
        return self._lines

    @property
    def samples(self) -> list[Sample]:
        return [Sample(self.sample_name, dict(zip(self.label_names, values)), float(value))
                for values, value in zip(self._label_values, self._values)]
