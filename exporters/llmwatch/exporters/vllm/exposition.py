"""Reading a target's Prometheus text exposition, fast enough for ten 150 KB bodies per scrape.

prometheus-client's parser is the reference grammar, but it costs ~20 ms per 150 KB body, all of
it in label parsing. Between two scrapes of one target only the values change: the series text
``name{labels}`` repeats byte for byte. :class:`ExpositionReader` therefore splits each line into
series text and value itself, and hands a series text to prometheus-client's parser only the
first time it sees it; the result (sample name and labels, with the target's own labels added) is
cached. A fuzz test checks that this reader and prometheus-client's parser agree.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import NamedTuple

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

TYPES = {"counter", "gauge", "histogram", "summary", "untyped", "unknown", "gaugehistogram", "info", "stateset"}
# Sample-name suffixes that belong to a family of each type (prometheus-client's own rules).
SUFFIXES = {
    "counter": ("_total", "_created", ""),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "summary": ("", "_sum", "_count", "_created"),
}
# Label values that are numbers: written one way, so "1" from one target and "1.0" from another
# are the same bucket in sum by (le).
NUMERIC_LABELS = ("le", "quantile")


METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class InvalidLine(ValueError):
    pass


class Series(NamedTuple):
    """One sample: its name, labels and value, and its labels already written out for the text format."""

    name: str
    labels: dict[str, str]
    value: float
    labels_text: str  # '{a="1",b="2"}' (or "") with the reader's extra labels, escaped

    def line(self, name: str | None = None) -> str:
        value = repr(self.value) if math.isfinite(self.value) else floatToGoString(self.value)
        return f"{name or self.name}{self.labels_text} {value}"


@dataclass
class Family:
    """One metric family of one exposition."""

    name: str
    type: str
    help: str = ""
    samples: list[Series] = field(default_factory=list)


def family_name(declared: str, type_: str) -> str:
    """The family name prometheus-client uses: a counter declared ``x_total`` is family ``x``."""
    if type_ == "counter" and declared.endswith("_total"):
        return declared[: -len("_total")]
    return declared


def _unescape_help(text: str) -> str:
    return text.replace("\\\\", "\x00").replace("\\n", "\n").replace("\x00", "\\")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def labels_text(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items())) + "}"


def _canonical_number(value: str) -> str:
    try:
        return floatToGoString(float(value))
    except ValueError:
        return value


class ExpositionReader:
    """Parses one target's expositions, scrape after scrape, reusing what it learnt.

    ``extra_labels`` (the target's identity, e.g. ``container``) are added to every sample; an
    upstream label of the same name is kept as ``exported_<name>``, as Prometheus does.
    """

    def __init__(self, extra_labels: dict[str, str] | None = None, max_cached: int = 200_000):
        self.extra_labels = dict(extra_labels or {})
        self.max_cached = max_cached
        self._series: dict[str, tuple[str, dict[str, str], str]] = {}

    def _series_of(self, text: str) -> tuple[str, dict[str, str], str]:
        cached = self._series.get(text)
        if cached is not None:
            return cached
        try:
            families = list(text_string_to_metric_families(text + " 0\n"))
        except Exception as e:  # the reference parser raises ValueError, sometimes IndexError/KeyError
            raise InvalidLine(f"invalid series {text[:120]!r}: {e}") from None
        if len(families) != 1 or len(families[0].samples) != 1:
            raise InvalidLine(f"invalid series {text[:120]!r}")
        sample = families[0].samples[0]
        # The reference parser lets through names Prometheus would refuse ("a b{...}"); refuse them here.
        if not METRIC_NAME.fullmatch(sample.name) or not all(LABEL_NAME.fullmatch(k) for k in sample.labels):
            raise InvalidLine(f"invalid metric or label name in {text[:120]!r}")
        labels = {}
        for key, value in sample.labels.items():
            if key in self.extra_labels:
                key = "exported_" + key
            labels[key] = _canonical_number(value) if key in NUMERIC_LABELS else value
        labels.update(self.extra_labels)
        if len(self._series) >= self.max_cached:
            self._series.clear()  # an upstream with churning labels must not grow memory forever
        entry = self._series[text] = (sample.name, labels, labels_text(labels))
        return entry

    def read(self, text: str) -> tuple[list[Family], list[str]]:
        """Families in order of appearance, and one message per line that could not be read.

        Timestamps are dropped (the sample is re-exposed at our scrape time); a series repeated
        in one body is kept once.
        """
        families: dict[str, Family] = {}
        owner: dict[str, str] = {}  # sample name -> family name, from TYPE lines
        helps: dict[str, str] = {}
        seen: set[str] = set()
        problems: list[str] = []
        current: Family | None = None

        def declare(name: str, type_: str) -> Family:
            fam_name = family_name(name, type_)
            fam = families.get(fam_name)
            if fam is None:
                fam = families[fam_name] = Family(fam_name, type_, helps.get(fam_name, helps.get(name, "")))
            for suffix in SUFFIXES.get(type_, ("",)):
                owner.setdefault(fam_name + suffix, fam_name)
            return fam

        for line in text.split("\n"):  # not splitlines(): \x85 or \u2028 may sit in a label value
            if not line or line.isspace():
                continue
            if line[0] == "#":
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[1] == "HELP":
                    helps[parts[2]] = _unescape_help(parts[3]) if len(parts) == 4 else ""
                    fam = families.get(parts[2]) or families.get(family_name(parts[2], "counter"))
                    if fam is not None and not fam.help:
                        fam.help = helps[parts[2]]
                elif len(parts) == 4 and parts[1] == "TYPE":
                    type_ = parts[3].strip()
                    if type_ not in TYPES:
                        problems.append(f"unknown type {type_!r} for {parts[2]}")
                        continue
                    current = declare(parts[2], "unknown" if type_ == "untyped" else type_)
                continue
            brace = line.find("{")
            if brace >= 0:
                end = line.rfind("}")
                if end < brace:
                    problems.append(f"unterminated labels: {line[:120]!r}")
                    continue
                key, rest = line[: end + 1], line[end + 1:].split()
            else:
                parts = line.split()
                key, rest = parts[0], parts[1:]
            if not rest or len(rest) > 2:
                problems.append(f"expected a value (and an optional timestamp): {line[:120]!r}")
                continue
            try:
                value = float(rest[0])
                name, labels, text_of_labels = self._series_of(key)
            except (ValueError, InvalidLine) as e:
                problems.append(str(e) if isinstance(e, InvalidLine) else f"invalid value in {line[:120]!r}")
                continue
            if key in seen:
                continue
            seen.add(key)
            if current is not None and owner.get(name) == current.name:
                fam = current
            elif name in owner:
                fam = families[owner[name]]
            else:
                fam = current = declare(name, "unknown")
            fam.samples.append(Series(name, labels, value, text_of_labels))
        return list(families.values()), problems
