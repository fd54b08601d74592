"""LiteLLM: the proxy's health, traffic, errors, fallbacks, latency, deployments, spend and budgets."""

from __future__ import annotations

from llmwatch import mixin
from llmwatch.mixin import seconds
from llmwatch.tools.dashboards import limits
from llmwatch.tools.dashboards.drill import drill, no_traffic, related
from llmwatch.tools.dashboards.grafana import (BAD, FIRING_ALERTS, INFO, OK, WARN, bargauge, dashboard, gauge, link,
                                          override, prom, query_variable, row, stat, state_timeline, steps, table,
                                          timeseries, value_text)

UID = "llmwatch-litellm"
# LiteLLM labels client requests and spend with the caller's User-Agent (its user_agent label):
# the probe's own (llmwatch-probe/<version>) is left out of the panels of user traffic.
M = 'requested_model=~"$model", user_agent!~"llmwatch-probe/.*"'
RATE = "[$__rate_interval]"
UP_DOWN = value_text({"1": ("up", OK), "0": ("down", BAD)})
# LiteLLM creates a failure or fallback series only when the first one happens: without this zero
# per model group, a model that never failed would show "No data" instead of 0.
REQUESTS_PER_MODEL = f"sum by (requested_model) (rate(litellm_proxy_total_requests_metric_total{{{M}}}{RATE}))"
ZERO_PER_MODEL = f"{REQUESTS_PER_MODEL} * 0"


def p95(metric: str, by: str, matcher: str) -> str:
    return f"histogram_quantile(0.95, sum by ({by}, le) (rate({metric}_bucket{{{matcher}}}{RATE})))"


def proxy_detail() -> list[dict]:
    """What LiteLLM's published boards show beyond traffic and spend: where the time of a request
    goes (the proxy itself or the model behind it), the first token through the proxy, the
    response cache, the upstream rate limits, cooldowns and LiteLLM's own Redis and database.
    Labels as LiteLLM names them: ``requested_model`` on request metrics, ``model_group`` on the
    overhead and rate-limit gauges, ``model`` on cache metrics."""
    slo = mixin.MIXIN.slo.default.ttft_p95_seconds
    group = 'model_group=~"$model"'
    cache = timeseries("Response cache hits", "Share of requests LiteLLM answered from its response cache, per "
                       "model. Only with litellm_settings.cache on. Bad: a drop after a deploy — the cache "
                       "(Redis) is unreachable or its keys changed, and every request goes to the models again.",
                       [prom(f"sum by (model) (rate(litellm_cache_hits_metric_total{RATE})) / (sum by (model) "
                             f"(rate(litellm_cache_hits_metric_total{RATE})) + sum by (model) "
                             f"(rate(litellm_cache_misses_metric_total{RATE})))", "{{model}}")], "percentunit",
                       minimum=0, maximum=1, w=8)
    cache["fieldConfig"]["defaults"]["noValue"] = "No response cache configured"
    remaining = timeseries("Upstream rate limit left", "Requests and tokens the provider says are left in its "
                           "current rate-limit window, per deployment (its x-ratelimit-remaining-* headers; "
                           "hosted APIs send them, vLLM does not). Bad: near 0 — the next requests get 429 and "
                           "LiteLLM falls back or fails.",
                           [prom(f"min by (model_group, api_base) (litellm_remaining_requests_metric{{{group}}})",
                                 "{{model_group}} @ {{api_base}} requests"),
                            prom(f"min by (model_group, api_base) (litellm_remaining_tokens_metric{{{group}}})",
                                 "{{model_group}} @ {{api_base}} tokens")], "short", minimum=0, w=8)
    remaining["fieldConfig"]["defaults"]["noValue"] = "No upstream sends rate-limit headers"
    services = timeseries("Redis and database calls failing", "LiteLLM's own calls to Redis (cache, rate "
                          "limits, shared state) and to its Postgres (keys, spend) that failed per second, from "
                          "its service metrics (litellm_settings.service_callback: [\"prometheus_system\"]). "
                          "Bad: any steady rate — limits and spend tracking go wrong; see also Database above.",
                          [prom(f"sum(rate(litellm_redis_failed_requests_total{RATE}))", "Redis"),
                           prom(f"sum(rate(litellm_postgres_failed_requests_total{RATE}))", "Postgres")], "reqps",
                          minimum=0, w=8)
    services["fieldConfig"]["defaults"]["noValue"] = "Service metrics off (service_callback prometheus_system)"
    return [
        row("Where the time goes, cache, limits and cooldowns"),
        timeseries("Total vs LLM API time", "p95 of a request through the proxy (total) and of the call to the "
                   "model behind it (LLM API), per model group. The gap is LiteLLM itself: auth, routing, "
                   "callbacks, retries. Bad: the gap growing while LLM API time holds — the proxy is the "
                   "bottleneck (CPU, database, Redis).",
                   [prom(p95("litellm_request_total_latency_metric", "requested_model", M), "{{requested_model}} total"),
                    prom(p95("litellm_llm_api_latency_metric", "requested_model", M), "{{requested_model}} LLM API")],
                   "s", minimum=0, w=8),
        timeseries("Proxy overhead", "p95 of the time LiteLLM adds to each request (its own overhead metric), "
                   "per model group. Bad: above a few tens of milliseconds, or rising with traffic — the proxy "
                   "needs more workers or its database or Redis is slow.",
                   [prom(p95("litellm_overhead_latency_metric", "model_group", group), "{{model_group}}")], "s",
                   minimum=0, w=8),
        timeseries("Time to first token through the proxy", "p95 time to the first streamed token of the call "
                   f"from LiteLLM to the model, per model group (streamed requests only). Dashed: the {seconds(slo)} "
                   "TTFT SLO, where the ProbeTtftAboveSlo alert warns for the probe through LiteLLM. Bad: above it "
                   "while vLLM's own TTFT is below — the time is lost between the proxy and the engine.",
                   [prom(p95("litellm_llm_api_time_to_first_token_metric", "requested_model", M), "{{requested_model}}")],
                   "s", minimum=0, w=8, thresholds=steps(OK, (BAD, slo)), threshold_lines=True),
        cache,
        remaining,
        timeseries("Deployments cooled down", "Times LiteLLM's router put a deployment in cooldown (took it out "
                   "of rotation after failures) per interval, by deployment and the status that caused it "
                   "(0 for a deployment never cooled down: LiteLLM creates the series at the first one). "
                   "Bad: any — traffic moves to the other deployments of the group, or fails if none is left.",
                   [prom(f"sum by (litellm_model_name, api_base) (increase(litellm_deployment_cooled_down_total{RATE})) "
                         f"or sum by (litellm_model_name, api_base) (rate(litellm_deployment_total_requests_total{RATE})) * 0",
                         "{{litellm_model_name}} @ {{api_base}}")], "none", bars=True, minimum=0,
                   thresholds=steps(OK, (BAD, 1)), w=8),
        services,
    ]


def build() -> dict:
    panels = [
        row("Health"),
        stat("Proxy", "Whether LiteLLM answers its liveness probe. Bad: down — every client request fails.",
             [prom("min(llmwatch_litellm_alive)")], "none", graph=False, thresholds=steps(BAD, (OK, 1)),
             mappings=UP_DOWN),
        stat("Ready", "Readiness: the proxy and its database are ready for traffic.",
             [prom("min(llmwatch_litellm_ready)")], "none", graph=False, thresholds=steps(BAD, (OK, 1)),
             mappings=UP_DOWN),
        stat("Database", "LiteLLM's own database (keys, spend, budgets). Bad: down — spend is not "
             "recorded and budgets are not enforced.",
             [prom("min(llmwatch_litellm_db_connected)")], "none", graph=False, thresholds=steps(BAD, (OK, 1)),
             mappings=UP_DOWN),
        stat("Admin API", "Whether the exporter could read the admin API with the master key. Bad: down "
             "with the proxy up — usually a wrong LITELLM_MASTER_KEY.",
             [prom("min(llmwatch_litellm_up)")], "none", graph=False, thresholds=steps(BAD, (OK, 1)),
             mappings=UP_DOWN),
        stat("Version", "LiteLLM version and response-cache type. Bad: a version you did not deploy "
             "(an image tag that moved).", [prom("max by (version, cache) (llmwatch_litellm_info)",
                                                                     "{{version}} (cache: {{cache}})")],
             "none", graph=False, thresholds=steps(INFO), text_mode="name", color_mode="none"),
        stat("Deployments unhealthy", "Deployments failing LiteLLM's background health check. Bad: above "
             "0 — LiteLLM routes around them, or fails if none is left for a model.",
             [prom("count(llmwatch_litellm_deployment_healthy == 0) or vector(0)")], "none", graph=False,
             thresholds=steps(OK, (BAD, 1))),

        row("Traffic and errors"),
        timeseries("Requests/s per model", "Client requests to the proxy per model group (the probe's left out).",
                   [prom(f"sum by (requested_model) (rate(litellm_proxy_total_requests_metric_total{{{M}}}{RATE}))",
                         "{{requested_model}}")], "reqps", minimum=0, w=8),
        timeseries("Errors seen by clients", "Share of client requests that failed, per model group. "
                   "Dashed: 1 % (warning) and 5 % (critical), as in the LiteLLM error alerts.",
                   [prom(f"(sum by (requested_model) (rate(litellm_proxy_failed_requests_metric_total{{{M}}}{RATE})) "
                         f"or {ZERO_PER_MODEL}) / {REQUESTS_PER_MODEL}", "{{requested_model}}")], "percentunit", minimum=0, thresholds=limits.error_ratio("litellm")[0],
                   threshold_lines=True, w=8),
        timeseries("Fallbacks", "Requests LiteLLM sent to a fallback model because the first failed, per "
                   "interval (0 for a model group that never fell back). Bad: a steady rate — the primary "
                   "deployment is failing.",
                   [prom(f"sum by (requested_model, fallback_model) "
                         f"(increase(litellm_deployment_successful_fallbacks_total{{{M}}}{RATE})) or {ZERO_PER_MODEL}",
                         "{{requested_model}} → {{fallback_model}}")], "none", bars=True, w=8),
        timeseries("Latency", "p50/p95/p99 of a request through the proxy (end to end), per model group. "
                   "Compare with vLLM's end-to-end latency: the difference is LiteLLM and the network.",
                   [prom(f"requested_model:litellm_request_total_latency_metric:p{q}_5m{{{M}}}",
                         f"{{{{requested_model}}}} p{q}") for q in (50, 95, 99)], "s", w=8),
        timeseries("Tokens/s", "Input and output tokens per second through the proxy, per model group.",
                   [prom(f"sum by (requested_model) (rate(litellm_input_tokens_metric_total{{{M}}}{RATE}))",
                         "{{requested_model}} input"),
                    prom(f"sum by (requested_model) (rate(litellm_output_tokens_metric_total{{{M}}}{RATE}))",
                         "{{requested_model}} output")], "suffix: tok/s", minimum=0, w=8),
        timeseries("Upstream failures per deployment", "Failed calls from LiteLLM to each deployment "
                   "(vLLM server or provider) per second (0 for a deployment that never failed: LiteLLM "
                   "creates the failure series at the first failure). Bad: one deployment failing while "
                   "others do not.",
                   [prom(f"sum by (litellm_model_name, api_base) "
                         f"(rate(litellm_deployment_failure_responses_total{{{M}}}{RATE})) "
                         f"or sum by (litellm_model_name, api_base) "
                         f"(rate(litellm_deployment_total_requests_total{{{M}}}{RATE})) * 0",
                         "{{litellm_model_name}} @ {{api_base}}")], "reqps", minimum=0, w=8,
                   thresholds=steps(OK, (BAD, 0.01))),

        row("Deployments"),
        state_timeline("Deployment state", "LiteLLM's view of each deployment over time: healthy, partial "
                       "outage or outage (litellm_deployment_state).",
                       [prom("max by (litellm_model_name, api_base) (litellm_deployment_state)",
                             "{{litellm_model_name}} @ {{api_base}}")], "none", w=12,
                       thresholds=steps(OK, (WARN, 1), (BAD, 2)),
                       mappings=value_text({"0": ("healthy", OK), "1": ("partial outage", WARN), "2": ("outage", BAD)})),
        bargauge("429s today", "Rate-limit errors LiteLLM logged today (UTC) per model group and "
                 "deployment. Bad: growing — the deployment's rpm/tpm limit is too low for the traffic.",
                 [prom("sum by (model_group, api_base) (llmwatch_litellm_rate_limit_errors_today)",
                       "{{model_group}} @ {{api_base}}")], "none", thresholds=steps(OK, (WARN, 1), (BAD, 100)), w=12),
        table("Deployments", "Every deployment behind the proxy: model group, upstream model, address, "
              "provider and mode (prices: llmwatch_litellm_deployment_price_usd, per token, second, image...).",
              [prom("max by (model_group, litellm_model_name, api_base, api_provider, mode, model_id) "
                    "(llmwatch_litellm_deployment_info)", instant=True, table=True)], "none",
              hide=("Time", "Value"), rename={"model_group": "Model group", "litellm_model_name": "Model",
                                               "api_base": "Address", "api_provider": "Provider", "mode": "Mode",
                                               "model_id": "Id"}),

        row("Spend and budgets"),
        stat("Spend today", "Spend LiteLLM recorded since midnight (browser time), over all keys.",
             [prom("sum(increase(litellm_spend_metric_total[$__range]))")], "currencyUSD", decimals=2,
             thresholds=steps(INFO), time_from="now/d", w=6),
        stat("Spend, last 30 days", "Spend in LiteLLM's spend logs over the last 30 days (/global/spend).",
             [prom("max(llmwatch_litellm_spend_30d_usd)")], "currencyUSD", thresholds=steps(INFO), w=6),
        gauge("Proxy budget used", "Spend LiteLLM counts against the proxy-wide budget since its last reset "
              "(every budget_duration), when one is set. Bad: near 100 % — requests will be refused.",
              [prom("max(llmwatch_litellm_proxy_budget_spend_usd) / max(llmwatch_litellm_proxy_max_budget_usd > 0)")],
              "percentunit", thresholds=steps(OK, (WARN, 0.8), (BAD, 0.9)), w=6, h=4),
        stat("Keys", "Virtual keys by state. Bad: blocked or expired keys that clients still use (their "
             "requests fail with 401).",
             [prom("sum by (state) (llmwatch_litellm_keys)", "{{state}}")], "none", graph=False,
             thresholds=steps(INFO), w=6),
        timeseries("Spend per model", "Spend per hour per model group, from LiteLLM's spend counter.",
                   [prom(f"sum by (requested_model) (rate(litellm_spend_metric_total{{{M}}}{RATE})) * 3600",
                         "{{requested_model}}")], "suffix: $/h", minimum=0, w=12),
        bargauge("Top keys by spend", "The biggest-spending keys (top N by the exporter; 'other' sums the "
                 "rest). Bar colour: orange from $100.",
                 [prom("topk(10, llmwatch_litellm_key_spend_usd)", "{{api_key_alias}} {{hashed_api_key}}")],
                 "currencyUSD", thresholds=steps(OK, (WARN, 100)), w=12),
        table("Budgets", "Spend against budget for every team, key and user that has one. Bad: above "
              "90 % (the BudgetNearlySpent alert) — requests will soon be refused.",
              [prom("llmwatch_litellm_team_spend_usd / (llmwatch_litellm_team_max_budget_usd > 0)", instant=True,
                    table=True),
               prom("llmwatch_litellm_key_spend_usd / (llmwatch_litellm_key_max_budget_usd > 0)", instant=True,
                    table=True),
               prom("llmwatch_litellm_user_spend_usd / (llmwatch_litellm_user_max_budget_usd > 0)", instant=True,
                    table=True)],
              "percentunit", hide=("Time", "job", "instance"), w=12, thresholds=steps(OK, (WARN, 0.8), (BAD, 0.9)),
              rename={"Value #A": "Team budget used", "Value #B": "Key budget used", "Value #C": "User budget used"},
              overrides=[override("^Value.*|.*used", custom__cellOptions={"type": "color-background", "mode": "basic"})]),
        table("Keys expiring", "Keys that expire within 30 days, days left. Bad: under 7 (the key "
              "expiry alert) — clients will start failing.",
              [prom("(llmwatch_litellm_key_expiry_timestamp_seconds - time()) / 86400 < 30", instant=True,
                    table=True)], "none", hide=("Time", "job", "instance", "__name__"), w=12,
              rename={"api_key_alias": "Key alias", "hashed_api_key": "Key hash", "Value": "Days left"},
              thresholds=steps(BAD, (WARN, 7), (OK, 14))),
    ]
    panels += proxy_detail()
    return dashboard(UID, "LiteLLM", "The proxy in front of the models: health, requests and errors per "
                     "model group, fallbacks, latency, deployment state, spend and budgets.",
                     drill(no_traffic(panels)), related=related("vllm", "langfuse", "cost", "logs"),
                     variables=[query_variable("model", "Model group", "label_values("
                                               "litellm_proxy_total_requests_metric_total, requested_model)")],
                     annotations=[FIRING_ALERTS])


LINK = link("LiteLLM", UID)
