"""Cost and capacity: what the GPUs cost in energy and money, what they produce, how much room is left.

Until the insights exporter lands (cost per GPU-hour and per 1M tokens from a configured price,
scaling advice, a capacity forecast), this board shows what the existing metrics can answer.
"""

from __future__ import annotations

from exporters.dashboards.grafana import (BAD, FIRING_ALERTS, INFO, OK, WARN, dashboard, link, prom, row, stat,
                                          steps, timeseries)

UID = "llmwatch-cost"
RATE = "[$__rate_interval]"
GPUS_UP = "count(llmwatch_gpu_up == 1)"
# GPU utilisation attributed to containers: one series per (container, GPU) the container uses.
UTIL_BY_CONTAINER = ("avg by (container) (llmwatch_gpu_container_processes * 0 "
                     "+ on (gpu) group_left llmwatch_gpu_utilization_ratio)")


def build() -> dict:
    panels = [
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
                     "efficiency per GPU and container; KV-cache and queue headroom.", panels,
                     annotations=[FIRING_ALERTS], time_from="now-24h")


LINK = link("Cost & capacity", UID)
