"""Anything a proxy (or whatever answers in its place) sends must give up 0 or values, never a crash."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings, strategies as st
from prometheus_client.parser import text_string_to_metric_families

from llmwatch.core.fetch import Reply
from llmwatch.exporters.litellm import payloads
from llmwatch.exporters.litellm.collector import LitellmExporter
from llmwatch.simulation.litellm import FakeLitellmServer, sample_state
from tests.litellm.scenarios import TODAY
from tests.procs import render

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
                    max_leaves=30)
FIELDS = ["spend", "max_budget", "token", "key_alias", "expires", "blocked", "team_id", "user_id", "data", "keys",
          "users", "total", "total_pages", "total_count", "db", "status", "litellm_version", "success_callbacks",
          "cache", "litellm_params", "model_info", "model", "api_base", "daily_data", "date", "healthy_endpoints",
          "num_rate_limit_exceptions", "input_cost_per_token", "id", "model_name", "budget_limits", "budget_duration",
          "reset_at", "budget_reset_at", "soft_budget", "user_id", "input_cost_per_second", "cache_read_input_token_cost"]
# Objects with LiteLLM's own field names reach deeper into the parsers than random keys.
SHAPED = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                      lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(FIELDS), inner,
                                                                                  max_size=6), max_leaves=30)
PARSERS = [payloads.readiness, payloads.deployments, payloads.deployment_health, payloads.global_spend,
           lambda p: payloads.page(p, "/key/list", "keys"), lambda p: payloads.spenders(p if isinstance(p, list) else [p], "key"),
           lambda p: payloads.spenders(p if isinstance(p, list) else [p], "team"),
           lambda p: payloads.rate_limit_errors(p, "Nov 22"),
           lambda p: payloads.spenders(p if isinstance(p, list) else [p], "user"),
           lambda p: payloads.proxy_budget(p if isinstance(p, list) else [p]),
           lambda p: payloads.budget_windows(p, "budget_limits")]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(PARSERS), JSON | SHAPED)
def test_parsers_return_values_or_name_the_bad_shape(parser, payload):
    try:
        parser(payload)
    except payloads.BadPayload as e:
        assert str(e)


class CannedFetcher:
    """Answers each URL with the fake proxy's real answer, except the chosen endpoints (the I/O boundary)."""

    def __init__(self, replace: dict[str, bytes]):
        self.proxy = FakeLitellmServer(state=sample_state(keys=12))
        self.replace = replace

    def get_all(self, urls, timeout):
        replies = []
        for url in urls:
            path = url.removeprefix("http://proxy")
            route = path.split("?", 1)[0]
            status, _, body = self.proxy.answer(path, {"authorization": "Bearer sk-master"})
            if route in self.replace:
                status, body = 200, self.replace[route]
            replies.append(Reply(status, body) if status == 200 else Reply(status, body, error="http_status"))
        return replies

    def close(self):
        self.proxy.close()


ROUTES = ["/health/readiness", "/health/readiness/details", "/model/info", "/health", "/global/spend", "/key/list", "/team/list", "/user/list",
          "/global/activity/exceptions/deployment"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(ROUTES), (JSON | SHAPED).map(lambda v: json.dumps(v).encode()) | st.binary(max_size=50),
                       min_size=1, max_size=3))
def test_no_answer_breaks_metrics(replace):
    exporter = LitellmExporter(url="http://proxy", fetcher=CannedFetcher(replace), budget=1.0,
                               deployment_health=True, top_n=3, today=lambda: TODAY)
    try:
        text = render(exporter)
    finally:
        exporter.close()
    list(text_string_to_metric_families(text))  # what Prometheus gets must parse
    assert 'scrape_errors_total{reason="exception"} 0.0' in text
    assert "llmwatch_litellm_up " in text
