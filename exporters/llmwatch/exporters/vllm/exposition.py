"""Reading a target's Prometheus text exposition in one pass, fast enough for ten 150 KB bodies per scrape.

Between two scrapes of one target only the values change: the series text ``name{labels}``
repeats byte for byte. :class:`ExpositionReader` therefore splits each line into series text and
value itself and looks the series text up in a per-target cache of :class:`SeriesText` entries:
parsed once (name and labels, the target's own labels added, ``le`` written one way), and holding
the line prefix to write it out again. A sample is then just (entry, value text) in two lists of
its family: no object per sample. The series text is parsed by a strict regular expression
covering what real servers write; anything else goes to prometheus-client's parser, the
reference grammar. Fuzz tests check that both agree with prometheus-client's parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple

from prometheus_client.parser import _replace_escaping, text_string_to_metric_families
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
# The series text as servers write it: a name, then optional labels without spaces, values quoted
# with backslash escapes. Whatever does not match this goes to prometheus-client's parser.
_QUOTED = r'"(?:[^"\\]|\\.)*"'
PLAIN_SERIES = re.compile(rf"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{{((?:[a-zA-Z_][a-zA-Z0-9_]*={_QUOTED},)*"
                          rf"(?:[a-zA-Z_][a-zA-Z0-9_]*={_QUOTED})?)\}})?")
LABEL_PAIR = re.compile(rf"([a-zA-Z_][a-zA-Z0-9_]*)=({_QUOTED}),?")


class InvalidLine(ValueError):
    pass


class SeriesText:
    """One distinct series of a target, parsed once: its sample name, labels (with the target's
    labels added) and the text written before its value (``name{labels} ``)."""

    __slots__ = ("name", "labels", "prefix", "dropped", "seen", "_renamed")

    def __init__(self, name: str, labels: dict[str, str], labels_text: str, dropped: bool = False):
        self.name, self.labels = name, labels
        self.prefix = f"{name}{labels_text} "
        self.dropped = dropped  # left out of every read (a *_created sample, when the reader drops them)
        self.seen = -1  # the last read that had this series: a repeat in one body is kept once
        self._renamed: SeriesText | None = None

    def renamed(self, old_family: str, new_family: str) -> "SeriesText":
        """The same series under the family's new name (cached: the rename of a family never changes)."""
        if self._renamed is None:
            self._renamed = SeriesText(new_family + self.name[len(old_family):], self.labels, self.labels_text)
        return self._renamed

    @property
    def labels_text(self) -> str:
        return self.prefix[len(self.name):-1]


class Series(NamedTuple):
    """One sample as an object, for callers that want one (tests, tools); the scrape does not build them."""

    name: str
    labels: dict[str, str]
    value: float
    labels_text: str  # '{a="1",b="2"}' (or "") with the reader's extra labels, escaped

    def line(self, name: str | None = None) -> str:
        return f"{name or self.name}{self.labels_text} {number_text(self.value)}"


def number_text(value: float) -> str:
    """A sample value as written out: Python's shortest repr, or Prometheus' +Inf, -Inf and NaN."""
    return repr(value) if value - value == 0 else floatToGoString(value)


@dataclass
class Family:
    """One metric family of one exposition: its samples as parallel lists of series and value text."""

    name: str
    type: str
    help: str = ""
    series: list[SeriesText] = field(default_factory=list)
    values: list[str] = field(default_factory=list)  # as written out (number_text)

    @property
    def samples(self) -> list[Series]:
        return [Series(s.name, s.labels, float(v), s.labels_text) for s, v in zip(self.series, self.values)]


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

    def __init__(self, extra_labels: dict[str, str] | None = None, max_cached: int = 200_000,
                 drop_created: bool = False):
        self.extra_labels = dict(extra_labels or {})
        self.max_cached = max_cached
        self.drop_created = drop_created  # *_created samples: creation times, not measurements
        self._series: dict[str, SeriesText] = {}  # series text as sent -> its entry
        self._canonical: dict[str, SeriesText] = {}  # prefix (name{labels} as written) -> the one entry
        self._reads = 0

    def _parse_series(self, text: str) -> tuple[str, dict[str, str]]:
        """Sample name and labels of a series text, by the fast grammar or else the reference parser."""
        match = PLAIN_SERIES.fullmatch(text)
        if match is not None and not text.startswith("__") and "{__" not in text and ",__" not in text:
            labels = {}
            pairs = 0
            for key, quoted in LABEL_PAIR.findall(match.group(2) or ""):
                value = quoted[1:-1]
                labels[key] = _replace_escaping(value) if "\\" in value else value
                pairs += 1
            if pairs == len(labels):
                return match.group(1), labels
            raise InvalidLine(f"invalid series {text[:120]!r}: duplicate label name")
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
        return sample.name, sample.labels

    def _series_of(self, text: str) -> SeriesText:
        cached = self._series.get(text)
        if cached is not None:
            return cached
        name, parsed = self._parse_series(text)
        labels = {}
        for key, value in parsed.items():
            if key in self.extra_labels:
                key = "exported_" + key
            labels[key] = _canonical_number(value) if key in NUMERIC_LABELS else value
        labels.update(self.extra_labels)
        if len(self._series) >= self.max_cached:
            # an upstream with churning labels must not grow memory forever
            self._series.clear()
            self._canonical.clear()
        entry = SeriesText(name, labels, labels_text(labels), self.drop_created and name.endswith("_created"))
        entry = self._series[text] = self._canonical.setdefault(entry.prefix, entry)
        return entry

    def read(self, text: str) -> tuple[list[Family], list[str]]:
        """Families in order of appearance, and one message per line that could not be read.

        Timestamps are dropped (the sample is re-exposed at our scrape time); a series repeated
        in one body (even spelt differently, e.g. ``le="1"`` and ``le="1.0"``) is kept once.
        """
        families: dict[str, Family] = {}
        owner: dict[str, Family] = {}  # sample name -> its family, from TYPE lines
        helps: dict[str, str] = {}
        problems: list[str] = []
        current: Family | None = None
        cache = self._series
        self._reads += 1
        this_read = self._reads

        def declare(name: str, type_: str) -> Family:
            fam_name = family_name(name, type_)
            fam = families.get(fam_name)
            if fam is None:
                fam = families[fam_name] = Family(fam_name, type_, helps.get(fam_name, helps.get(name, "")))
            for suffix in SUFFIXES.get(type_, ("",)):
                owner.setdefault(fam_name + suffix, fam)
            return fam

        for line in text.split("\n"):  # not splitlines(): \x85 or \u2028 may sit in a label value
            if not line:
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
            # The common line, "series value": one split and one look-up.
            space = line.rfind(" ")
            key, value_text = line[:space], line[space + 1:]
            series = cache.get(key)
            try:
                if series is None:  # a new series, a timestamp, odd spacing or an invalid line
                    if line.isspace():
                        continue
                    key, value_text = _split_line(line)
                    series = self._series_of(key)
                value = float(value_text)
                if "_" in value_text:  # Python reads 1_000, Prometheus does not
                    raise ValueError(value_text)
            except InvalidLine as e:
                problems.append(str(e))
                continue
            except ValueError:
                problems.append(f"invalid value in {line[:120]!r}")
                continue
            if series.seen == this_read or series.dropped:
                continue
            series.seen = this_read
            fam = owner.get(series.name)
            if fam is None:
                fam = current = declare(series.name, "unknown")
            fam.series.append(series)
            fam.values.append(repr(value) if value - value == 0 else floatToGoString(value))
        return list(families.values()), problems


def _split_line(line: str) -> tuple[str, str]:
    """Series text and value of a sample line (a timestamp after the value is dropped)."""
    brace = line.find("{")
    if brace >= 0:
        end = line.rfind("}")
        if end < brace:
            raise InvalidLine(f"unterminated labels: {line[:120]!r}")
        key, rest = line[: end + 1], line[end + 1:].split()
    else:
        parts = line.split()
        key, rest = parts[0], parts[1:]
    if not rest or len(rest) > 2:
        raise InvalidLine(f"expected a value (and an optional timestamp): {line[:120]!r}")
    return key, rest[0]
