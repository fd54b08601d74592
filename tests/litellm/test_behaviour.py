"""What the LiteLLM exporter promises: no LLM calls, bounded labels, caches honoured, failures as up 0."""

from __future__ import annotations

import contextlib
import itertools
import logging

import pytest

from llmwatch.simulation.litellm import FakeLitellmServer, key, sample_state
from tests.litellm.scenarios import make_exporter
from tests.procs import render, samples, value


def routes(server: FakeLitellmServer) -> list[str]:
    return [r.split("?", 1)[0] for r in server.requests]


def stepping_clock(step: float):
    """Each reading is ``step`` seconds after the previous one."""
    ticks = itertools.count()
    return lambda: next(ticks) * step


def test_health_is_never_asked_unless_background_checks_are_declared():
    """/health without LiteLLM's background checks makes a real LLM call per deployment."""
    with FakeLitellmServer() as server, contextlib.closing(make_exporter(server.url)) as exporter:
        text = render(exporter)
        render(exporter)
    assert "/health" not in routes(server)
    assert "llmwatch_litellm_deployment_healthy" not in text
    assert value(text, "llmwatch_litellm_up") == 1


def test_deployment_health_reports_each_endpoint_and_respects_its_cache():
    with FakeLitellmServer() as server, contextlib.closing(
            make_exporter(server.url, deployment_health=True, health_seconds=3600)) as exporter:
        text = render(exporter)
        render(exporter)
    assert routes(server).count("/health") == 1
    assert value(text, "llmwatch_litellm_deployment_healthy", api_base="http://vllm-llama-b:8000/v1") == 0
    assert value(text, "llmwatch_litellm_deployment_healthy", api_base="http://vllm-llama-a:8000/v1") == 1


def test_cached_answers_are_not_asked_again_but_health_is_every_scrape():
    with FakeLitellmServer() as server, contextlib.closing(make_exporter(server.url)) as exporter:
        render(exporter)
        first = len(server.requests)
        text = render(exporter)
    assert sorted(routes(server)[first:]) == ["/health/liveliness", "/health/readiness"]
    assert value(text, "llmwatch_litellm_global_spend_usd") == 510.75  # served from the cache


def test_a_failed_admin_refresh_drops_the_spend_families_instead_of_serving_them_stale():
    with FakeLitellmServer() as server, contextlib.closing(
            make_exporter(server.url, admin_seconds=0, metadata_seconds=3600)) as exporter:
        assert value(render(exporter), "llmwatch_litellm_global_spend_usd") == 510.75
        server.state.global_spend = "lots"  # a garbled refresh
        text = render(exporter)
    assert "llmwatch_litellm_global_spend_usd" not in text
    assert "llmwatch_litellm_team_spend_usd" not in text
    assert value(text, "llmwatch_litellm_up") == 0
    assert value(text, "llmwatch_litellm_scrape_errors_total", reason="invalid_answer") == 1
    assert value(text, "llmwatch_litellm_endpoint_up", endpoint="/global/spend") == 0


def test_top_n_plus_other_adds_up_to_every_keys_spend():
    state = sample_state(keys=250)
    with FakeLitellmServer(state=state) as server, contextlib.closing(make_exporter(server.url, top_n=7)) as exporter:
        text = render(exporter)
    shown = {dict(ls)["hashed_api_key"]: v for (n, ls), v in samples(text).items() if n == "llmwatch_litellm_key_spend_usd"}
    assert len(shown) == 8 and "other" in shown
    assert sum(shown.values()) == pytest.approx(sum(k["spend"] for k in state.keys))
    biggest = sorted(state.keys, key=lambda k: -k["spend"])[:7]
    assert set(shown) - {"other"} == {k["token"] for k in biggest}
    assert value(text, "llmwatch_litellm_entities", kind="key") == 250
    assert routes(server).count("/key/list") == 3  # pages of 100


class Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_more_keys_than_max_rows_are_counted_but_left_out_with_a_warning():
    state = sample_state(keys=250)
    records = Records()
    logging.getLogger("llmwatch.exporters.litellm").addHandler(records)
    try:
        with FakeLitellmServer(state=state) as server, contextlib.closing(
                make_exporter(server.url, max_rows=200)) as exporter:
            text = render(exporter)
    finally:
        logging.getLogger("llmwatch.exporters.litellm").removeHandler(records)
    assert routes(server).count("/key/list") == 2
    assert value(text, "llmwatch_litellm_entities", kind="key") == 250
    assert sum(value(text, "llmwatch_litellm_keys", state=s) for s in ("active", "blocked", "expired")) == 200
    assert any("max_rows" in m for m in records.messages)


def test_key_states_blocked_and_expired_are_counted():
    state = sample_state(keys=0)
    state.keys = [key("a" * 64, "ok", 1.0), key("b" * 64, "blocked", 1.0, blocked=True),
                  key("c" * 64, "old", 1.0, expires="2026-11-01T00:00:00Z"),
                  key("d" * 64, "later", 1.0, expires="2027-01-01T00:00:00")]
    with FakeLitellmServer(state=state) as server, contextlib.closing(make_exporter(server.url)) as exporter:
        text = render(exporter)
    assert [value(text, "llmwatch_litellm_keys", state=s) for s in ("active", "blocked", "expired")] == [2, 1, 1]
    assert value(text, "llmwatch_litellm_key_expiry_timestamp_seconds", api_key_alias="later") == 1798761600


def test_an_endpoint_older_proxies_lack_is_skipped_not_an_error():
    class NoExceptions(FakeLitellmServer):
        def answer(self, path, headers):
            if path.startswith("/global/activity/exceptions"):
                return 404, "application/json", b'{"detail": "Not Found"}'
            return super().answer(path, headers)

    with NoExceptions() as server, contextlib.closing(make_exporter(server.url, admin_seconds=0)) as exporter:
        render(exporter)
        text = render(exporter)
    assert routes(server).count("/global/activity/exceptions/deployment") == 3  # once per model group, then never
    assert value(text, "llmwatch_litellm_up") == 1
    assert "llmwatch_litellm_rate_limit_errors_today" not in text
    assert 'endpoint="/global/activity/exceptions/deployment"' not in text


def test_rate_limit_errors_are_todays_only():
    with FakeLitellmServer() as server, contextlib.closing(make_exporter(server.url)) as exporter:
        text = render(exporter)
    assert value(text, "llmwatch_litellm_rate_limit_errors_today", model_group="llama-3.1-70b") == 17


def test_wrong_key_is_its_own_reason_and_readiness_still_reports():
    with FakeLitellmServer() as server, contextlib.closing(make_exporter(server.url, key="sk-nope")) as exporter:
        text = render(exporter)
    assert value(text, "llmwatch_litellm_up") == 0
    assert value(text, "llmwatch_litellm_scrape_errors_total", reason="auth") >= 1
    assert value(text, "llmwatch_litellm_ready") == 1
    assert server.headers[-1]["authorization"] == "Bearer sk-nope"


def test_no_key_at_all_is_an_auth_error_too():
    with FakeLitellmServer() as server, contextlib.closing(make_exporter(server.url, key=None)) as exporter:
        text = render(exporter)
    assert value(text, "llmwatch_litellm_up") == 0
    assert value(text, "llmwatch_litellm_scrape_errors_total", reason="auth") >= 1


def test_without_a_database_no_admin_endpoint_is_asked():
    with FakeLitellmServer(mode="no_db") as server, contextlib.closing(make_exporter(server.url)) as exporter:
        text = render(exporter)
    assert value(text, "llmwatch_litellm_db_connected") == 0
    assert value(text, "llmwatch_litellm_up") == 1
    assert not {"/key/list", "/global/spend", "/team/list", "/user/list"} & set(routes(server))
    assert "spend_usd" not in text


def test_a_proxy_that_is_not_ready_is_up_but_not_ready():
    with FakeLitellmServer(mode="not_ready") as server, contextlib.closing(make_exporter(server.url)) as exporter:
        text = render(exporter)
    assert value(text, "llmwatch_litellm_up") == 1
    assert value(text, "llmwatch_litellm_ready") == 0
    assert "llmwatch_litellm_db_connected" not in text and "global_spend" not in text


@pytest.mark.parametrize("mode, reason", [("garbage", "invalid_answer"), ("error", "http_status")])
def test_broken_proxy_gives_up_0_with_the_reason(mode, reason):
    with FakeLitellmServer(mode=mode) as server, contextlib.closing(make_exporter(server.url)) as exporter:
        text = render(exporter)
    assert value(text, "llmwatch_litellm_up") == 0
    assert value(text, "llmwatch_litellm_scrape_errors_total", reason=reason) >= 1
    assert "llmwatch_litellm_info" not in text


def test_a_hanging_proxy_costs_one_budget():
    with FakeLitellmServer(mode="hang") as server, contextlib.closing(
            make_exporter(server.url, budget=0.3, clock=stepping_clock(0.0))) as exporter:
        text = render(exporter)
        server.release()
    assert value(text, "llmwatch_litellm_up") == 0
    assert value(text, "llmwatch_litellm_scrape_errors_total", reason="timeout") >= 1
    assert value(text, "llmwatch_litellm_scrape_duration_seconds") < 5


def test_the_proxy_comes_back_without_a_restart():
    with FakeLitellmServer(mode="error") as server, contextlib.closing(make_exporter(server.url)) as exporter:
        assert value(render(exporter), "llmwatch_litellm_up") == 0
        server.mode = "ok"
        text = render(exporter)
    assert value(text, "llmwatch_litellm_up") == 1
    assert value(text, "llmwatch_litellm_global_spend_usd") == 510.75


def test_unpriced_deployments_show_no_price_and_zero_priced_show_zero():
    with FakeLitellmServer() as server, contextlib.closing(make_exporter(server.url)) as exporter:
        text = render(exporter)
    prices = {dict(ls)["model_id"] for (n, ls), _ in samples(text).items()
              if n == "llmwatch_litellm_deployment_cost_per_token_usd"}
    assert "d-qwen" not in prices  # no price set: LiteLLM records $0 spend for it
    assert value(text, "llmwatch_litellm_deployment_cost_per_token_usd", model_id="d-embed", direction="input") == 0
