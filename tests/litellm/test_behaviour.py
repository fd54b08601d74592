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
    assert value(text, "llmwatch_litellm_spend_30d_usd") == 510.75  # served from the cache


def test_a_failed_admin_refresh_drops_the_spend_families_instead_of_serving_them_stale():
    with FakeLitellmServer() as server, contextlib.closing(
            make_exporter(server.url, admin_seconds=0, metadata_seconds=3600)) as exporter:
        assert value(render(exporter), "llmwatch_litellm_spend_30d_usd") == 510.75
        server.state.spend_30d = "lots"  # a garbled refresh
        text = render(exporter)
    assert "llmwatch_litellm_spend_30d_usd" not in text
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
    assert "llmwatch_litellm_db_connected" not in text  # no database to lose: nothing to alert on
    assert value(text, "llmwatch_litellm_up") == 1
    assert not {"/key/list", "/global/spend", "/team/list", "/user/list"} & set(routes(server))
    assert "spend_usd" not in text


def test_a_proxy_that_is_not_ready_is_up_but_not_ready():
    with FakeLitellmServer(mode="not_ready") as server, contextlib.closing(make_exporter(server.url)) as exporter:
        text = render(exporter)
    assert value(text, "llmwatch_litellm_up") == 1
    assert value(text, "llmwatch_litellm_ready") == 0
    assert "llmwatch_litellm_db_connected" not in text and "spend_30d" not in text


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
    assert value(text, "llmwatch_litellm_spend_30d_usd") == 510.75


def test_unpriced_deployments_show_no_price_and_zero_priced_show_zero():
    with FakeLitellmServer() as server, contextlib.closing(make_exporter(server.url)) as exporter:
        text = render(exporter)
    prices = {dict(ls)["model_id"] for (n, ls), _ in samples(text).items()
              if n == "llmwatch_litellm_deployment_cost_per_token_usd"}
    assert "d-qwen" not in prices  # no price set: LiteLLM records $0 spend for it
    assert value(text, "llmwatch_litellm_deployment_cost_per_token_usd", model_id="d-embed", direction="input") == 0


# ---- LiteLLM's own answers (1.83.14 and 1.108.7, from its endpoint code and response models) ----

# Endpoints that read state only; /health without background checks, and any completion route, would
# make LLM calls.
READ_ONLY = {"/health/liveliness", "/health/readiness", "/health/readiness/details", "/model/info", "/global/spend",
             "/key/list", "/team/list", "/user/list", "/global/activity/exceptions/deployment"}


@pytest.mark.parametrize("version", ["1.83.14", "1.108.7"])
def test_the_exporter_asks_only_read_only_endpoints(version):
    with FakeLitellmServer(version) as server, contextlib.closing(make_exporter(server.url, admin_seconds=0)) as exporter:
        render(exporter)
        render(exporter)
    assert set(routes(server)) <= READ_ONLY


def test_version_and_callbacks_come_from_the_keyed_readiness_details_from_1_84():
    """1.84+ answers the public readiness with {status, db} only."""
    with FakeLitellmServer("1.108.7") as server, contextlib.closing(make_exporter(server.url)) as exporter:
        text = render(exporter)
        asked = len(server.requests)
        render(exporter)
    assert value(text, "llmwatch_litellm_info", version="1.108.7", cache="none") == 1
    callbacks = {dict(ls)["callback"] for (n, ls), _ in samples(text).items()
                 if n == "llmwatch_litellm_success_callback_info"}
    assert "PrometheusLogger" in callbacks and "_PROXY_MaxParallelRequestsHandler_v3" in callbacks  # as LiteLLM names them
    details = [i for i, r in enumerate(server.requests) if r.startswith("/health/readiness/details")]
    assert details and all(i < asked for i in details)  # cached like the deployments, not asked every scrape
    assert server.headers[details[0]]["authorization"] == "Bearer sk-master"
    assert value(text, "llmwatch_litellm_endpoint_up", endpoint="/health/readiness/details") == 1


def test_version_and_callbacks_come_from_the_public_readiness_before_1_84():
    with FakeLitellmServer("1.83.14") as server, contextlib.closing(
            make_exporter(server.url, metadata_seconds=0)) as exporter:
        render(exporter)
        text = render(exporter)
    assert value(text, "llmwatch_litellm_info", version="1.83.14") == 1
    assert value(text, "llmwatch_litellm_success_callback_info", callback="sync_deployment_callback_on_success") == 1
    assert routes(server).count("/health/readiness/details") == 1  # 404 once: that version has none
    assert value(text, "llmwatch_litellm_up") == 1
    assert 'endpoint="/health/readiness/details"' not in text


def test_a_database_outage_is_read_from_the_503_readiness_body():
    """1.84+: HTTP 503 with {"status": "healthy", "db": "disconnected"}."""
    with FakeLitellmServer("1.108.7", mode="db_down") as server, contextlib.closing(
            make_exporter(server.url)) as exporter:
        text = render(exporter)
    assert value(text, "llmwatch_litellm_db_connected") == 0
    assert value(text, "llmwatch_litellm_ready") == 0
    assert value(text, "llmwatch_litellm_up") == 1  # the proxy answered what it is; nothing failed
    assert value(text, "llmwatch_litellm_info", version="1.108.7") == 1  # details answer 503 with the rest
    assert "spend_30d" not in text and not {"/key/list", "/global/spend"} & set(routes(server))


def test_a_database_outage_on_1_83_is_a_200_with_the_status_in_the_body():
    with FakeLitellmServer("1.83.14", mode="db_down") as server, contextlib.closing(
            make_exporter(server.url)) as exporter:
        text = render(exporter)
    assert value(text, "llmwatch_litellm_db_connected") == 0
    assert value(text, "llmwatch_litellm_ready") == 1


@pytest.mark.parametrize("mode, alive", [("not_ready", 1), ("shutting_down", 0)])
def test_a_503_without_a_database_state_is_not_ready_and_not_an_error(mode, alive):
    with FakeLitellmServer(mode=mode) as server, contextlib.closing(make_exporter(server.url)) as exporter:
        text = render(exporter)
    assert value(text, "llmwatch_litellm_ready") == 0
    assert value(text, "llmwatch_litellm_alive") == alive
    assert value(text, "llmwatch_litellm_scrape_errors_total", reason="invalid_answer") == 0
    assert "llmwatch_litellm_db_connected" not in text


@pytest.mark.parametrize("version", ["1.83.14", "1.108.7"])
def test_every_price_of_a_deployment_is_exported_per_second_included(version):
    """d-qwen is priced per second of GPU time, as self-hosted vLLM often is; llama per token with
    cheaper cached input. 1.83 keeps the per-second price in litellm_params only."""
    with FakeLitellmServer(version) as server, contextlib.closing(make_exporter(server.url)) as exporter:
        text = render(exporter)
    price = lambda model_id, name: value(text, "llmwatch_litellm_deployment_price_usd", model_id=model_id,
                                         price=name)  # noqa: E731
    assert price("d-qwen", "input_cost_per_second") == 0.0011
    assert price("d-llama-a", "input_cost_per_token") == 2e-7
    assert price("d-llama-a", "output_cost_per_token") == 6e-7
    assert price("d-llama-a", "cache_read_input_token_cost") == 5e-8
    assert price("d-embed", "input_cost_per_token") == 0
    names = {dict(ls)["price"] for (n, ls), _ in samples(text).items() if n == "llmwatch_litellm_deployment_price_usd"}
    assert "pricing_overrides" not in names and all("cost" in n for n in names)


def test_a_zero_proxy_budget_is_no_budget_but_a_zero_team_budget_is_one():
    """LiteLLM's global max_budget defaults to 0.0 and is enforced only above 0; a key's, team's or
    user's budget of 0 refuses every request (spend >= 0)."""
    state = sample_state()
    state.max_budget = 0.0
    with FakeLitellmServer(state=state) as server, contextlib.closing(make_exporter(server.url)) as exporter:
        text = render(exporter)
    assert "llmwatch_litellm_proxy_max_budget_usd" not in text
    assert "llmwatch_litellm_proxy_budget_spend_usd" not in text
    assert not [n for (n, _), v in samples(text).items() if "global" in n and "budget" in n]
    assert value(text, "llmwatch_litellm_team_max_budget_usd", team_alias="frozen") == 0


def test_the_proxy_budget_is_its_budget_row_not_the_30_day_spend():
    """LiteLLM compares the litellm-proxy-budget row (reset every budget_duration) with max_budget;
    /global/spend is the last 30 days of spend logs."""
    with FakeLitellmServer() as server, contextlib.closing(make_exporter(server.url)) as exporter:
        text = render(exporter)
    assert value(text, "llmwatch_litellm_spend_30d_usd") == 510.75
    assert value(text, "llmwatch_litellm_proxy_max_budget_usd") == 2000.0
    assert value(text, "llmwatch_litellm_proxy_budget_spend_usd") == 140.25
    assert value(text, "llmwatch_litellm_proxy_budget_reset_timestamp_seconds") == 1795910400  # 2026-11-29
    users = {dict(ls)["user"] for (n, ls), _ in samples(text).items() if n == "llmwatch_litellm_user_spend_usd"}
    assert "litellm-proxy-budget" not in users
    assert value(text, "llmwatch_litellm_entities", kind="user") == 3


def test_budget_windows_soft_budgets_and_reset_times():
    with FakeLitellmServer() as server, contextlib.closing(make_exporter(server.url)) as exporter:
        text = render(exporter)
    window = lambda kind, what, **labels: value(text, f"llmwatch_litellm_{kind}_window_{what}", **labels)  # noqa: E731
    assert window("team", "max_budget_usd", team_alias="search", budget_duration="1d") == 60.0
    assert window("team", "max_budget_usd", team_alias="search", budget_duration="7d") == 300.0
    assert window("team", "reset_timestamp_seconds", team_alias="search", budget_duration="1d") == 1795392000
    assert window("key", "max_budget_usd", api_key_alias="svc-01", budget_duration="1d") == 10.0
    assert value(text, "llmwatch_litellm_team_soft_budget_usd", team_alias="search") == 800.0
    assert value(text, "llmwatch_litellm_team_budget_reset_timestamp_seconds", team_alias="search") == 1796083200
    assert value(text, "llmwatch_litellm_key_budget_reset_timestamp_seconds", api_key_alias="svc-01") == 1796083200
    assert value(text, "llmwatch_litellm_user_budget_reset_timestamp_seconds", user="alice") == 1796083200


class LivelinessAnswers(FakeLitellmServer):
    """A proxy whose liveness probe answers ``status``; every other endpoint answers as usual."""

    def __init__(self, status: int):
        super().__init__()
        self.status = status

    def answer(self, path, headers):
        if path.startswith("/health/liveliness"):
            return self.status, "application/json", b'{"error": {"message": "no"}}'
        return super().answer(path, headers)


@pytest.mark.parametrize("status, reason", [(500, "http_status"), (429, "http_status"), (401, "auth"),
                                            (403, "auth")])
def test_a_liveliness_answer_other_than_2xx_is_endpoint_up_0_with_its_reason(status, reason):
    with LivelinessAnswers(status) as server, contextlib.closing(make_exporter(server.url)) as exporter:
        text = render(exporter)
    assert value(text, "llmwatch_litellm_endpoint_up", endpoint="/health/liveliness") == 0
    assert value(text, "llmwatch_litellm_scrape_errors_total", reason=reason) == 1
    assert value(text, "llmwatch_litellm_alive") == 0
    assert value(text, "llmwatch_litellm_up") == 0
    assert value(text, "llmwatch_litellm_endpoint_up", endpoint="/model/info") == 1
