"""Whatever a Langfuse API (or something in its place) answers gives values or a named error, never a crash."""

from __future__ import annotations

import json

from hypothesis import given, settings, strategies as st
from prometheus_client.parser import text_string_to_metric_families

from llmwatch.core.fetch import Reply
from llmwatch.exporters.langfuse import api
from llmwatch.exporters.langfuse.collector import LangfuseExporter
from llmwatch.exporters.langfuse.totals import SourceError
from tests.langfuse.scenarios import NOW
from tests.procs import render

KEYS = ["data", "providedModelName", "type", "level", "name", "environment", "isRootObservation", "count_count",
        "release", "traceName", "traceRelease",
        "sum_inputTokens", "sum_outputTokens", "sum_totalCost", "sum_value", "p50_latency", "p95_latency",
        "p99_timeToFirstToken", "version", "status", "message"]
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5),
                                                                                inner, max_size=6), max_leaves=25)
PARSERS = [lambda p: api.observation_rows(p, "x"), lambda p: api.trace_rows(p, "x"), lambda p: api.score_rows(p, "x"),
           lambda p: api.latency_rows(p, "x"), lambda p: api.latency_rows(p, "x", by_environment=True),
           api.environments, *(lambda p, f=field: api.trace_group_rows(p, "x", f)
                               for fields in api.TRACE_FIELDS.values() for field in fields.values())]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(PARSERS), JSON)
def test_parsers_return_rows_or_a_named_error(parser, payload):
    try:
        parser(payload)
    except SourceError as e:
        assert e.reason == "invalid_answer" and str(e)


class CannedFetcher:
    """Every URL gets the same drawn body (the I/O boundary); health names a version."""

    def __init__(self, health: bytes, body: bytes):
        self.health, self.body = health, body

    def get_all(self, urls, timeout):
        return [Reply(200, self.health if url.endswith("/api/public/health") else self.body) for url in urls]

    def close(self):
        pass


@settings(max_examples=200, deadline=None)
@given(JSON.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=40),
       JSON.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=40))
def test_no_answer_breaks_metrics(health, body):
    exporter = LangfuseExporter(url="http://langfuse", fetcher=CannedFetcher(health, body), budget=1.0,
                                wall=lambda: NOW)
    text = render(exporter)
    list(text_string_to_metric_families(text))
    assert 'scrape_errors_total{reason="exception"} 0.0' in text


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=20))
def test_any_version_string_picks_a_source_or_names_the_problem(version):
    health = json.dumps({"status": "OK", "version": version}).encode()
    exporter = LangfuseExporter(url="http://langfuse", fetcher=CannedFetcher(health, b'{"data": []}'), budget=1.0,
                                wall=lambda: NOW)
    text = render(exporter)
    assert 'scrape_errors_total{reason="exception"} 0.0' in text
