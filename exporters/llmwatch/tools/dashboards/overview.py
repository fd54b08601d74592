"""Overview, the home board: one screen that answers "is everything fine?", each tile linking to
the board that explains it."""

from __future__ import annotations

from llmwatch import mixin
from llmwatch.tools.dashboards import containers, cost, gpu, limits, litellm, logs, system, vllm
from llmwatch.tools.dashboards.drill import drill, no_traffic, related
from llmwatch.tools.dashboards.grafana import (BAD, FIRING_ALERTS, INFO, OK, WARN, bargauge, dashboard, override,
                                          per_host, prom, row, stat, state_timeline, steps, table, timeseries,
                                          value_text)

UID = "llmwatch-overview"
RATE = "[$__rate_interval]"
# What is down, absent or exited, counted (never sum(up) against a threshold of 1, which stays green
# with 3 of 4 servers up). "Absent" is a series seen in the board's time range and gone now: a GPU fallen off
# the bus, a removed container, or every one of them while their exporter cannot be scraped (the
# "Targets down" tile names that).
# Written filtered on the host variable as the board shows them (grafana.per_host).
GPU_NOT_ANSWERING = "llmwatch_gpu_up == 0 or (max_over_time(llmwatch_gpu_up[$__range]) unless llmwatch_gpu_up)"
GPUS_NOT_ANSWERING = per_host(f"count({GPU_NOT_ANSWERING}) or vector(0)")
VLLM_DOWN = ('llmwatch_vllm_up == 0 unless on (container) llmwatch_vllm_container_state{state="starting"} == 1'
             ' or on (container) llmwatch_vllm_container_state{state!~"running|starting"} == 1'
             " or on (container) (max_over_time(llmwatch_vllm_up[$__range]) unless on (container) llmwatch_vllm_up"
             " unless on (container) llmwatch_vllm_container_state)")
VLLM_NOT_SERVING = per_host(f"count({VLLM_DOWN}) or vector(0)")
FIRING = 'ALERTS{alertstate="firing", alertname!="Watchdog"}'
# The per-host table: one row per host (one row with an empty host where series carry none).
# Each column counts per host and adds 0 for every host seen, so a host with nothing down reads 0.
HOSTS = "max by (host) (0 * up)"
HOST_COLUMNS = {
    "GPUs answering": f"sum by (host) (llmwatch_gpu_up) or {HOSTS}",
    "GPUs not answering": f"count by (host) ({GPU_NOT_ANSWERING}) or {HOSTS}",
    "vLLM servers up": f"sum by (host) (llmwatch_vllm_up) or {HOSTS}",
    "vLLM servers down or exited": f"count by (host) ({VLLM_DOWN}) or {HOSTS}",
    "Targets down": f"count by (host) (up == 0) or {HOSTS}",
    "Alerts firing": f"count by (host) ({FIRING}) or {HOSTS}",
    # from up while a host sends (series without a host too); a lost host's, whose up is gone from
    # instant queries after 5 minutes, from what was recorded (as LlmwatchHostLost reads it) within
    # the board's time range
    "Last sample age": ("time() - (max by (host) (timestamp(up)) or max by (host) (max_over_time("
                        "host:llmwatch_last_sample_timestamp_seconds[$__range])))"),
}
ALERTS_PAGE = {"title": "Alerts (Alertmanager)", "url": "/alerting/groups?groupBy=alertname&alertmanager=alertmanager",
               "targetBlank": False}


def build() -> dict:
    slo_target, slo_dashed, slo_words = limits.slo_lines("ttft_p95_seconds")
    kv, kv_words = limits.kv_cache()
    errors, error_words = limits.error_ratio("vllm")
    panels = [
        row("Is everything fine?"),
        stat("Alerts firing", "Alerts firing now, Watchdog left out (it always fires, to prove alerting "
             "works). Bad: above 0 — the table below says which.",
             [prom(f"count({FIRING}) or vector(0)")], "none",
             thresholds=steps(OK, (WARN, 1), (BAD, 3)), graph=False, links=[ALERTS_PAGE]),
        stat("Targets down", "Parts of the stack Prometheus cannot scrape. Bad: above 0 — something is "
             "unwatched.", [prom("count(up == 0) or vector(0)")], "none", thresholds=steps(OK, (BAD, 1)),
             graph=False, links=[system.LINK]),
        stat("GPUs not answering", "GPUs that do not answer NVML now, or that answered in the time range and "
             "are gone (fallen off the bus, or all of them while the GPU exporter cannot be scraped). "
             "Bad: above 0.", [prom(GPUS_NOT_ANSWERING)], "none", thresholds=steps(OK, (BAD, 1)), graph=False,
             links=[gpu.LINK]),
        stat("vLLM servers down or exited", "vLLM containers that are not serving: not answering (a container "
             "still loading its model within its start grace does not count), exited (for any reason, stopped on "
             "purpose too), restarting, paused or created, or seen in the time range and gone (all of them "
             "while the vLLM exporter cannot be scraped). Bad: above 0 — see the vLLM board.",
             [prom(VLLM_NOT_SERVING)], "none", thresholds=steps(OK, (BAD, 1)), graph=False, links=[vllm.LINK]),
        stat("LiteLLM", "Whether the proxy answers its liveness probe.", [prom("min(llmwatch_litellm_alive)")],
             "none", thresholds=steps(BAD, (OK, 1)), graph=False, links=[litellm.LINK],
             mappings=value_text({"1": ("up", OK), "0": ("down", BAD)})),
        stat("Spend today", "LiteLLM spend since midnight (browser time).",
             [prom("sum(increase(litellm_spend_metric_total[$__range]))")], "currencyUSD", decimals=2,
             thresholds=steps(INFO), time_from="now/d", links=[cost.LINK]),
        state_timeline("GPU heartbeat", "Each GPU's utilisation over time: green busy, blue idle, red lost "
                       "(stopped answering NVML). A GPU that turns blue while its model queues, or red at "
                       "all, needs a look.",
                       [prom("llmwatch_gpu_utilization_ratio or (llmwatch_gpu_up - 1)", "GPU {{gpu}}")],
                       "percentunit", w=24, h=7, thresholds=steps(BAD, (INFO, 0), (OK, 0.05)),
                       mappings=[{"type": "range", "options": {"from": -1, "to": -1,
                                                               "result": {"text": "lost", "color": BAD}}}],
                       links=[gpu.LINK]),
        hosts_table(),

        row("Models"),
        timeseries("Requests/s per model", "Finished requests per second per model (vLLM).",
                   [prom("sum by (model_name) (model_name:vllm_requests:rate5m)", "{{model_name}}")],
                   "reqps", minimum=0, w=8, links=[vllm.LINK]),
        timeseries("TTFT p95 against the SLO", "95th percentile time to first token per model over 5 "
                   f"minutes (recording rule). Dashed: {slo_words}. Bad: a model above its SLO line for long — "
                   "it burns its error budget.",
                   [prom("model_name:vllm_time_to_first_token_seconds:p95_5m", "{{model_name}}"), slo_target],
                   "s", overrides=[slo_dashed], minimum=0, w=8, links=[vllm.LINK]),
        timeseries("Errors", "Share of requests failing: vLLM's API 5xx per server and LiteLLM's failed "
                   f"client requests (5-minute rates). Dashed: {error_words}.",
                   [prom("container:vllm_http_errors:ratio_rate5m", "{{container}}"),
                    prom("job:litellm_proxy_errors:ratio_rate5m", "LiteLLM")], "percentunit", minimum=0,
                   thresholds=errors, threshold_lines=True, w=8,
                   links=[vllm.LINK, litellm.LINK]),
        timeseries("Requests waiting", "Queued requests per model. Bad: steadily above 0 — the model is "
                   "at capacity.", [prom("sum by (model_name) (vllm:num_requests_waiting)", "{{model_name}}")],
                   "none", minimum=0, thresholds=steps(OK, (WARN, 1), (BAD, 20)), w=8, links=[vllm.LINK]),
        timeseries("KV-cache usage", f"KV cache in use per server (1 = full). Dashed: {kv_words}.",
                   [prom("max by (container) (vllm:kv_cache_usage_perc)", "{{container}}")], "percentunit",
                   minimum=0, maximum=1, thresholds=kv, threshold_lines=True, w=8, links=[vllm.LINK]),
        bargauge("GPU memory per container", "GPU memory each container holds now, over its GPUs.",
                 [prom("sum by (container) (llmwatch_gpu_container_memory_used_bytes)", "{{container}}")],
                 "bytes", thresholds=steps(INFO), w=8, h=8, links=[gpu.LINK, containers.LINK]),

        row("Alerts"),
        table("Firing alerts", "Every alert firing now with its severity and what it is about (Watchdog "
              "always fires: it proves the alert path works). Open the alert's runbook from the "
              "notification or docs/runbooks.md.",
              [prom('max by (alertname, severity, container, gpu, model_name, instance) (ALERTS{alertstate="firing"})',
                    instant=True, table=True)], "none", hide=("Time", "Value"), w=24, h=7,
              rename={"alertname": "Alert", "severity": "Severity", "container": "Container", "gpu": "GPU",
                      "model_name": "Model", "instance": "Instance"}, links=[ALERTS_PAGE, logs.LINK]),
    ]
    return dashboard(UID, "Overview", "Is everything fine? Alerts, targets, GPUs, model servers, the proxy "
                     "and spend at a glance; each tile links to the board that explains it.",
                     drill(no_traffic(panels)), related=related("vllm", "gpu", "litellm", "logs", "cost"),
                     annotations=[FIRING_ALERTS], time_from="now-3h")


def hosts_table() -> dict:
    """Per host, the tiles above: GPUs, vLLM servers, targets, alerts, and how old its newest sample
    is (a lost host's grows; LlmwatchHostLost pages past mixin.py's host_lost_seconds). With one
    host whose series carry no host label it is one row with an empty host."""
    lost = mixin.MIXIN.host_lost_seconds
    columns = list(HOST_COLUMNS)
    return table("Hosts", "One row per host: GPUs answering and not, vLLM servers up and down or exited "
                 "(as the tiles above count them), targets down, alerts firing about it, and the age of its "
                 f"newest sample. Bad: anything down, or a sample older than {lost:g} s — the host is lost "
                 "(LlmwatchHostLost).",
                 [prom(expr, instant=True, table=True) for expr in HOST_COLUMNS.values()], "none", merge=True,
                 w=24, h=5, rename={"host": "Host", **{f"Value #{chr(ord('A') + i)}": name
                                                      for i, name in enumerate(columns)}},
                 overrides=[override("Value #G", unit="s", thresholds=steps(OK, (BAD, lost)),
                                     custom__cellOptions={"type": "color-text"}),
                            *(override(f"Value #{chr(ord('A') + i)}", thresholds=steps(OK, (BAD, 1)),
                                       custom__cellOptions={"type": "color-text"})
                              for i, name in enumerate(columns) if "not" in name or "down" in name)])
