"""Fuzzing: the reader agrees with prometheus-client's parser, and no upstream body breaks /metrics."""

from __future__ import annotations

import math
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from llmwatch.core.http import render_text
from llmwatch.exporters.vllm.collector import VllmExporter
from llmwatch.upstreams.vllm_discovery import Target
from llmwatch.exporters.vllm.exposition import ExpositionReader
from llmwatch.core.fetch import Reply

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_TEXT = [p.read_text() for p in sorted(FIXTURES.glob("*.prom"))]

names = st.from_regex(r"(vllm:|http_)?[a-z][a-z0-9_]{0,12}", fullmatch=True).filter(
    lambda n: not n.endswith(("_total", "_created", "_bucket", "_sum", "_count")))
label_names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(lambda n: n not in ("le", "quantile"))
label_values = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
values = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**12, 10**12).map(float))


def escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


@st.composite
def expositions(draw):
    """Valid text-format expositions: gauges, counters, untyped, histograms, with escaped labels."""
    lines, used = [], set()
    for _ in range(draw(st.integers(1, 6))):
        name = draw(names)
        if name in used:
            continue
        used.add(name)
        kind = draw(st.sampled_from(["gauge", "counter", "untyped", "histogram"]))
        keys = draw(st.lists(label_names, max_size=3, unique=True))
        rows = draw(st.lists(st.tuples(*[label_values] * len(keys)), min_size=1, max_size=3, unique=True))
        lines.append(f"# HELP {name}{'_total' if kind == 'counter' else ''} {draw(st.text(max_size=10)).replace(chr(10), ' ').replace(chr(92), '/')}")
        lines.append(f"# TYPE {name}{'_total' if kind == 'counter' else ''} {kind}")
        for row in rows:
            pairs = [f'{k}="{escape(v)}"' for k, v in zip(keys, row)]
            labels = "{" + ",".join(pairs) + "}" if pairs else ""
            if kind == "histogram":
                for le in ("0.5", "1.0", "+Inf"):
                    lines.append(f'{name}_bucket{{{",".join([*pairs, f"le={chr(34)}{le}{chr(34)}"])}}} 1')
                lines.append(f"{name}_count{labels} 1")
                lines.append(f"{name}_sum{labels} {floatToGoString(draw(values))}")
            else:
                lines.append(f"{name}{'_total' if kind == 'counter' else ''}{labels} {floatToGoString(draw(values))}")
    return "\n".join(lines) + "\n"


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@settings(max_examples=300, deadline=None)
@given(expositions())
def test_reader_agrees_with_prometheus_client(text):
    reference = [(fam.name, fam.type, s.name, s.labels, s.value)
                 for fam in text_string_to_metric_families(text) for s in fam.samples]
    families, problems = ExpositionReader().read(text)
    mine = [(fam.name, fam.type, s.name, s.labels, s.value) for fam in families for s in fam.samples]
    assert not problems
    assert len(mine) == len(reference)
    for m, r in zip(mine, reference):
        assert m[:4] == r[:4]
        assert same(m[4], r[4])


@settings(max_examples=300, deadline=None)
@given(expositions())
def test_written_lines_parse_back_to_the_same_samples(text):
    families, _ = ExpositionReader({"container": "c"}).read(text)
    written = "\n".join(s.line() for fam in families for s in fam.samples) + "\n"
    back = [s for fam in text_string_to_metric_families(written) for s in fam.samples]
    originals = [s for fam in families for s in fam.samples]
    assert [(s.name, s.labels) for s in back] == [(s.name, s.labels) for s in originals]
    assert all(same(a.value, b.value) for a, b in zip(back, originals))


class CannedFetcher:
    """The fetcher's interface, answering every URL with canned replies (the I/O boundary)."""

    def __init__(self, bodies: dict[str, bytes]):
        self.bodies = bodies

    def as_completed(self, urls, timeout):
        for i, url in enumerate(urls):
            body = self.bodies.get(url.rsplit("/", 1)[0].rstrip("/"), b"") if url.endswith("/metrics") else b"{}"
            yield i, Reply(200, body)

    def close(self):
        pass


def exporter_for(*bodies: bytes) -> VllmExporter:
    targets = [Target(name=f"t{i}", url=f"http://t{i}", source="static") for i in range(len(bodies))]
    fetcher = CannedFetcher({t.url: b for t, b in zip(targets, bodies)})
    return VllmExporter(static_targets=targets, discovery=None, fetcher=fetcher, budget=1.0)


def metrics_of(exporter: VllmExporter) -> str:
    registry = CollectorRegistry()
    registry.register(exporter.collector)
    text = render_text(registry).decode()
    list(text_string_to_metric_families(text))  # what Prometheus gets must parse
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000), st.text(max_size=2000))
def test_no_body_breaks_metrics(raw, text):
    out = metrics_of(exporter_for(raw, text.encode("utf-8", "surrogatepass")))
    assert "llmwatch_vllm_up{" in out
    assert "scrape_errors_total{reason=\"exception\"} 0.0" in out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FIXTURE_TEXT), st.data())
def test_corrupted_fixtures_never_break_metrics(fixture, data):
    lines = fixture.splitlines()
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(lines) - 1))
        line = lines[i]
        cut = data.draw(st.integers(0, len(line)))
        junk = data.draw(st.text(st.sampled_from('{}",=\\ \n#le+Inf.0e9x'), max_size=6))
        lines[i] = line[:cut] + junk + line[cut + data.draw(st.integers(0, 3)):]
    body = "\n".join(lines).encode()
    out = metrics_of(exporter_for(body, fixture.encode()))
    assert "scrape_errors_total{reason=\"exception\"} 0.0" in out
    assert 'llmwatch_vllm_up{container="t1"} 1.0' in out


@settings(max_examples=100, deadline=None)
@given(expositions(), expositions())
def test_two_targets_sending_anything_valid_merge_without_duplicates(a, b):
    out = metrics_of(exporter_for(a.encode(), b.encode()))
    seen = set()
    for line in out.split("\n"):
        if line and not line.startswith("#"):
            series = line.rsplit(" ", 1)[0]
            assert series not in seen, f"duplicate series {series}"
            seen.add(series)
