"""Cost and capacity: what the GPUs cost in energy and money, what they produce, how much room is left.

Money, SLOs, advice and the forecast come from the insights exporter and its recording rules
(config/prometheus/rules/insights.yml): prices per GPU-hour from settings, GPUs attributed to
models, cost per 1M tokens on an allocation and a usage basis.
"""

from __future__ import annotations

from llmwatch.tools.dashboards.drill import drill, no_traffic, related
from llmwatch.tools.dashboards.grafana import (BAD, FIRING_ALERTS, INFO, OK, WARN, bargauge, dashboard, link, prom, row,
                                          stat, steps, table, timeseries)

UID = "llmwatch-cost"
RATE = "[$__rate_interval]"
GPUS_UP = "count(llmwatch_gpu_up == 1)"
# GPU utilisation attributed to containers: one series per (container, GPU) the container uses.
UTIL_BY_CONTAINER = ("avg by (container) (llmwatch_gpu_container_processes * 0 "
                     "+ on (gpu) group_left llmwatch_gpu_utilization_ratio)")


def build() -> dict:
    panels = [
        row("Money and SLOs"),
        stat("GPU cost per day", "Every GPU's price per hour (insights.gpu_prices) times 24, busy or not.",
             [prom("cluster:llmwatch_gpu_cost_dollars_per_day:sum")], "currencyUSD", decimals=0,
             thresholds=steps(INFO), graph=False),
        stat("Idle GPU spend", "Per hour: each GPU's price times the share of time it idles. Money paid for "
             "GPUs doing nothing; a GPU no model holds counts in full.",
             [prom("cluster:llmwatch_idle_gpu_cost_dollars_per_hour:sum")], "suffix: $/h", decimals=2,
             thresholds=steps(OK, (WARN, 5), (BAD, 20))),
        stat("Cost per 1M tokens, all GPUs", "Every GPU's price per hour — busy, idle or held by no model — "
             "over the tokens (prompt + generated) all models process per hour, in dollars per million tokens. "
             "Per-model costs below count only the GPUs each model holds; the difference is GPUs paid for and "
             "unused. Bad: rising while traffic holds — GPUs were added or sit idle.",
             [prom("(cluster:llmwatch_gpu_cost_dollars_per_day:sum / 24) / "
                   "(sum(model_name:vllm_tokens:rate5m) * 3600 / 1e6 > 0)")], "currencyUSD", decimals=3,
             thresholds=steps(INFO)),
        stat("Unallocated GPUs", "GPUs no vLLM server holds: paid for, serving nothing.",
             [prom("count(llmwatch_insights_gpu_models == 0) or vector(0)")], "none",
             thresholds=steps(OK, (WARN, 1)), graph=False),
        stat("TTFT SLO met", "Share of requests (all models, 5 m) with the first token within the TTFT SLO, read "
             "from the histogram bucket at the bound. The SLO asks for 95 %.",
             [prom("sum(model_name:vllm_ttft_slo_met:ratio_rate5m * on (model_name) "
                   "model_name:vllm_requests:rate5m) / sum(model_name:vllm_requests:rate5m)")], "percentunit",
             decimals=1, thresholds=steps(BAD, (WARN, 0.9), (OK, 0.95))),
        stat("Goodput", "Share of requests meeting both the TTFT and the TPOT SLO (all models, 5 m; the two "
             "shares multiplied, as vLLM does not pair them per request).",
             [prom("sum(model_name:llmwatch_goodput_requests:rate5m) / sum(model_name:vllm_requests:rate5m)")],
             "percentunit", decimals=1, thresholds=steps(BAD, (WARN, 0.8), (OK, 0.9))),
        timeseries("Cost per 1M tokens per model", "Dollars per million tokens processed (prompt + generated). "
                   "Allocated: every GPU the model holds, busy or not; used: weighted by GPU utilisation. "
                   "A wide gap means paid-for GPUs idle.",
                   [prom("model_name:llmwatch_cost_dollars_per_million_tokens:allocation", "{{model_name}} allocated"),
                    prom("model_name:llmwatch_cost_dollars_per_million_tokens:usage", "{{model_name}} used")],
                   "currencyUSD", minimum=0, decimals=3),
        timeseries("Cost per hour per model", "Price of the GPUs each model holds (a GPU shared by n models "
                   "counts 1/n each).",
                   [prom("model_name:llmwatch_gpu_cost_dollars_per_hour:allocation", "{{model_name}}")],
                   "suffix: $/h", minimum=0, stack=True),
        table("Scaling advice", "Per model, from the insights exporter: scale_up (KV cache, queue, TTFT SLO "
              "burning or busy GPUs), scale_down or consolidate (quiet for the advice window; 'beside': the "
              "model whose GPUs have room). Advice changes at most every advice_hold_seconds.",
              [prom("llmwatch_insights_advice_info", instant=True, table=True)], "none", w=12,
              hide=("Time", "Value", "__name__", "job", "instance"),
              rename={"model_name": "Model", "advice": "Advice", "reason": "Why", "beside": "Fits beside"}),
        bargauge("Capacity headroom", "How many times today's request rate each model could take while the "
                 "simulated TTFT p95 still meets the SLO (insights forecast from the model's own token "
                 "lengths and speeds). Under 1: already beyond it.",
                 [prom("llmwatch_insights_forecast_headroom_ratio", "{{model_name}}", instant=True)], "suffix: x",
                 thresholds=steps(BAD, (WARN, 1), (OK, 1.5))),
        timeseries("Forecast max request rate vs now", "Per model: the highest request rate the forecast says "
                   "still meets the TTFT SLO (max), and the rate now.",
                   [prom("llmwatch_insights_forecast_max_request_rate", "{{model_name}} max"),
                    prom("llmwatch_insights_forecast_request_rate", "{{model_name}} now")], "reqps", minimum=0),
        timeseries("TTFT error-budget burn rate", "How fast each model spends its TTFT error budget (1 = "
                   "exactly on budget for the month), over 1 h. Pages at 14.4 (with the 5 m window), "
                   "tickets at 6 over 6 h.",
                   [prom("model_name:llmwatch_slo_ttft_burn_rate:1h", "{{model_name}}")], "none", minimum=0,
                   thresholds=steps(OK, (WARN, 6), (BAD, 14.4)), threshold_lines=True),

        row("In the selected range"),
        stat("GPU-hours", "GPUs answering NVML times the selected range: the hours you pay for, busy or not.",
             [prom(f"{GPUS_UP} * $__range_s / 3600")], "none", decimals=1, thresholds=steps(INFO), graph=False),
        stat("Energy", "Energy the GPUs used in the selected range (NVML energy counters).",
             [prom("sum(increase(llmwatch_gpu_energy_joules_total[$__range])) / 3.6e6")], "kwatth", decimals=1,
             thresholds=steps(INFO), graph=False),
        stat("Tokens generated", "Output tokens of every vLLM server in the selected range.",
             [prom("sum(increase(vllm:generation_tokens_total[$__range]))")], "short", thresholds=steps(INFO),
             graph=False),
        stat("Energy per 1M tokens", "GPU energy per million generated tokens. Lower is better; it rises "
             "when GPUs idle or batches are small.",
             [prom("(sum(increase(llmwatch_gpu_energy_joules_total[$__range])) / 3.6e6) / "
                   "(sum(increase(vllm:generation_tokens_total[$__range])) / 1e6)")], "kwatth", decimals=2,
             thresholds=steps(INFO), graph=False),
        stat("LiteLLM spend", "Spend LiteLLM recorded in the selected range (its prices per token).",
             [prom("sum(increase(litellm_spend_metric_total[$__range]))")], "currencyUSD", decimals=2,
             thresholds=steps(INFO), graph=False),
        stat("Langfuse cost", "Cost Langfuse recorded in the selected range.",
             [prom("sum(increase(llmwatch_langfuse_cost_usd_total[$__range]))")], "currencyUSD", decimals=2,
             thresholds=steps(INFO), graph=False),

        row("Efficiency"),
        timeseries("Tokens per GPU-second", "Generated tokens per second divided by the GPUs answering: "
                   "the throughput you get for each GPU you pay for. Bad: falling while demand is steady.",
                   [prom(f"sum(rate(vllm:generation_tokens_total{RATE})) / {GPUS_UP}", "all models")],
                   "suffix: tok/s", minimum=0),
        timeseries("GPU utilisation per container", "Average utilisation of the GPUs each container holds. "
                   "A container with low utilisation holds GPUs another model could use.",
                   [prom(UTIL_BY_CONTAINER, "{{container}}")], "percentunit", minimum=0, maximum=1,
                   thresholds=steps(WARN, (OK, 0.3)), threshold_lines=True),
        timeseries("Idle GPUs", "GPUs under 5 % utilisation. Bad: idle GPUs while a model queues — "
                   "rebalance the models over the GPUs.",
                   [prom("count(llmwatch_gpu_utilization_ratio < 0.05) or vector(0)", "idle GPUs")], "none",
                   minimum=0, thresholds=steps(OK, (WARN, 1)), bars=True),
        timeseries("Power per generated token", "GPU power divided by tokens generated per second "
                   "(joules per token).",
                   [prom(f"sum(llmwatch_gpu_power_watts) / sum(rate(vllm:generation_tokens_total{RATE}))",
                         "joules per token")], "joule", minimum=0),

        row("Headroom"),
        timeseries("KV-cache headroom", "Free share of each server's KV cache. Bad: near 0 with requests "
                   "waiting — that model needs more GPUs or shorter contexts.",
                   [prom("1 - max by (container) (vllm:kv_cache_usage_perc)", "{{container}}")], "percentunit",
                   minimum=0, maximum=1, thresholds=steps(BAD, (WARN, 0.05), (OK, 0.2)), threshold_lines=True),
        timeseries("Requests waiting per model", "Queued requests per model. Steady queueing is the "
                   "clearest sign a model needs more capacity.",
                   [prom("sum by (model_name) (vllm:num_requests_waiting)", "{{model_name}}")], "none",
                   minimum=0, thresholds=steps(OK, (WARN, 1), (BAD, 20))),
    ]
    return dashboard(UID, "Cost & capacity", "GPU-hours, energy and spend against tokens produced; "
                     "efficiency per GPU and container; KV-cache and queue headroom.", drill(no_traffic(panels)),
                     related=related("gpu", "vllm", "litellm", "langfuse"),
                     annotations=[FIRING_ALERTS], time_from="now-24h")


LINK = link("Cost & capacity", UID)
