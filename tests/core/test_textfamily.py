"""TextFamily writes exactly what prometheus-client would write for the same samples."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from llmwatch.core.http import render_text
from llmwatch.core.textfamily import TextFamily

label_names = st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True), max_size=3, unique=True)
label_values = st.text(st.sampled_from('a1 ,="{}\\\né'), max_size=6)
values = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(0, 2**64).map(float))


class Families:
    def __init__(self, families):
        self.families = families

    def collect(self):
        return self.families


@settings(max_examples=200, deadline=None)
@given(label_names, st.data(), st.booleans())
def test_lines_match_prometheus_client(names, data, counter):
    rows = data.draw(st.lists(st.tuples(st.tuples(*[label_values] * len(names)), values), max_size=4,
                              unique_by=lambda r: r[0]))
    reference = (CounterMetricFamily if counter else GaugeMetricFamily)("x_total" if counter else "x", "Help \\ me.",
                                                                        labels=names)
    mine = TextFamily("x_total" if counter else "x", "Help \\ me.", names, "counter" if counter else "gauge")
    for labels, value in rows:
        reference.add_metric(list(labels), value)
        mine.add_metric(list(labels), value)
    assert render_text(Families([mine])) == generate_latest(Families([reference]))
    assert generate_latest(Families([mine])) == generate_latest(Families([reference]))
