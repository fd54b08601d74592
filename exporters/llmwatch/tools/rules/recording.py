"""Rules of recording.yml (see HEADER)."""

from __future__ import annotations

from llmwatch.tools.rules.build import Group, record

HEADER = """\
Recording rules: the per-model percentiles, token rates and error ratios the dashboards and
alerts share. Names follow level:metric:operations. Windows are 5m (10 scrapes at 30 s).
Aggregations keep the label simulated (absent on real targets, "true" on the demo's), as the
insights, LiteLLM and probe rules do, so an alert on the demo's servers still carries it and
Alertmanager routes it to the receiver that notifies no one.
Per container, per GPU job and per cAdvisor name they keep host too (two hosts can both run a
vllm-a); per model they sum over every host: a model's latency and throughput are those of all
its servers, wherever they run (mixin.py's docstring).
Tests: config/prometheus/tests/recording_test.yml and hosts_test.yml.
"""



def error_share(by: str, failed: str, total: str) -> str:
    """The share of ``total``'s requests counted in ``failed``, over 5 minutes: 0, not no data, while
    there is traffic and no failure of that kind (upstreams create a status's series only when it
    first happens, and a board showing "no data" for "no errors" reads as broken)."""
    return f"""\
(
  sum by ({by}) (rate({failed}[5m]))
    or 0 * sum by ({by}) (rate({total}[5m]))
)
  / sum by ({by}) (rate({total}[5m]))
"""

# vLLM histograms the vLLM board draws (percentiles and heatmaps) and counters it sums, kept per
# container and model so that every choice of the board's container and model variables reads them.
BOARD_HISTOGRAMS = ("time_to_first_token_seconds", "inter_token_latency_seconds", "e2e_request_latency_seconds",
                    "request_queue_time_seconds", "request_prompt_tokens", "request_generation_tokens")
BOARD_COUNTERS = (("request_success", "finished_reason"), ("prompt_tokens", ""), ("generation_tokens", ""),
                  ("prefix_cache_hits", ""), ("prefix_cache_queries", ""), ("num_preemptions", ""),
                  ("spec_decode_num_accepted_tokens", ""), ("spec_decode_num_draft_tokens", ""))
# vLLM histograms the board shows as an average per request (sum over count): only their _sum and
# _count are recorded, not their buckets.
BOARD_MEANS = ("request_prefill_time_seconds", "request_decode_time_seconds", "request_max_num_generation_tokens",
               "request_generation_tokens")


# cAdvisor counters the Docker containers board draws per container.
CADVISOR_COUNTERS = ("cpu_usage_seconds", "cpu_cfs_throttled_seconds", "network_receive_bytes",
                     "network_transmit_bytes")


def board_rules() -> list:
    """Per-second rates by container and model over 5 minutes: a board query reads one recorded sample
    per series and step instead of a rate over every engine's raw samples (issue 23: the raw
    histogram panels took ~0.4 s each over a day of ten servers). Engines (data-parallel ranks) and
    the vLLM version are summed away; ``le`` stays on buckets so the board computes any percentile of
    any selection."""
    rules = [record(f"container_model_name_le:vllm_{name}_bucket:rate5m",
                    f"sum by (container, host, model_name, le, simulated) (rate(vllm:{name}_bucket[5m]))",
                    comment=BOARD_COMMENT if i == 0 else "")
             for i, name in enumerate(BOARD_HISTOGRAMS)]
    for name, extra in BOARD_COUNTERS:
        level = "container_model_name" + (f"_{extra}" if extra else "")
        by = "container, host, model_name, " + (f"{extra}, " if extra else "") + "simulated"
        rules.append(record(f"{level}:vllm_{name}:rate5m", f"sum by ({by}) (rate(vllm:{name}_total[5m]))"))
    for name in BOARD_MEANS:
        for part in ("sum", "count"):
            rules.append(record(f"container_model_name:vllm_{name}_{part}:rate5m",
                                f"sum by (container, host, model_name, simulated) (rate(vllm:{name}_{part}[5m]))"))
    return rules


BOARD_COMMENT = ("What the vLLM board draws, per container and model (the board sums or takes percentiles\n"
                 "over the containers and models its variables select).")


def groups() -> list[Group]:
    return [
        Group('llmwatch-vllm-recording', [
            record('model_name:vllm_time_to_first_token_seconds:p50_5m', 'histogram_quantile(0.50, sum by (model_name, simulated, le) (rate(vllm:time_to_first_token_seconds_bucket[5m])))', comment="Latency percentiles per served model, from vLLM's histograms (all versions are\nnormalised to the newest names by the vLLM exporter)."),
            record('model_name:vllm_time_to_first_token_seconds:p95_5m', 'histogram_quantile(0.95, sum by (model_name, simulated, le) (rate(vllm:time_to_first_token_seconds_bucket[5m])))'),
            record('model_name:vllm_time_to_first_token_seconds:p99_5m', 'histogram_quantile(0.99, sum by (model_name, simulated, le) (rate(vllm:time_to_first_token_seconds_bucket[5m])))'),
            record('model_name:vllm_inter_token_latency_seconds:p50_5m', 'histogram_quantile(0.50, sum by (model_name, simulated, le) (rate(vllm:inter_token_latency_seconds_bucket[5m])))'),
            record('model_name:vllm_inter_token_latency_seconds:p95_5m', 'histogram_quantile(0.95, sum by (model_name, simulated, le) (rate(vllm:inter_token_latency_seconds_bucket[5m])))'),
            record('model_name:vllm_inter_token_latency_seconds:p99_5m', 'histogram_quantile(0.99, sum by (model_name, simulated, le) (rate(vllm:inter_token_latency_seconds_bucket[5m])))'),
            record('model_name:vllm_e2e_request_latency_seconds:p50_5m', 'histogram_quantile(0.50, sum by (model_name, simulated, le) (rate(vllm:e2e_request_latency_seconds_bucket[5m])))'),
            record('model_name:vllm_e2e_request_latency_seconds:p95_5m', 'histogram_quantile(0.95, sum by (model_name, simulated, le) (rate(vllm:e2e_request_latency_seconds_bucket[5m])))'),
            record('model_name:vllm_e2e_request_latency_seconds:p99_5m', 'histogram_quantile(0.99, sum by (model_name, simulated, le) (rate(vllm:e2e_request_latency_seconds_bucket[5m])))'),
            record('model_name:vllm_request_queue_time_seconds:p95_5m', 'histogram_quantile(0.95, sum by (model_name, simulated, le) (rate(vllm:request_queue_time_seconds_bucket[5m])))'),
            record('model_name:vllm_generation_tokens:rate5m', 'sum by (model_name, simulated) (rate(vllm:generation_tokens_total[5m]))', comment='Throughput per model.'),
            record('model_name:vllm_prompt_tokens:rate5m', 'sum by (model_name, simulated) (rate(vllm:prompt_tokens_total[5m]))'),
            record('model_name:vllm_requests:rate5m', 'sum by (model_name, simulated) (rate(vllm:request_success_total[5m]))'),
            record('container:vllm_http_requests:rate5m', 'sum by (container, host, simulated) (rate(http_requests_total{handler=~"/v1/.*"}[5m]))', comment="Share of OpenAI-API requests answered 5xx, per container (vLLM's HTTP counters carry no\nmodel label). Only /v1/ handlers: health checks and /metrics are not user traffic."),
            record('container:vllm_http_errors:ratio_rate5m', error_share("container, host, simulated", 'http_requests_total{handler=~"/v1/.*", status="5xx"}', 'http_requests_total{handler=~"/v1/.*"}')),
            record('container:vllm_http_client_errors:ratio_rate5m', error_share("container, host, simulated", 'http_requests_total{handler=~"/v1/.*", status="4xx"}', 'http_requests_total{handler=~"/v1/.*"}'), comment="Share answered 4xx: the client's fault (bad request, unknown model, context too long), kept\napart from the server errors above."),
        ]),
        Group('llmwatch-vllm-board-recording', board_rules()),
        Group('llmwatch-litellm-recording', [
            record('job:litellm_proxy_requests:rate5m', 'sum by (job, host, simulated) (rate(litellm_proxy_total_requests_metric_total[5m]))', comment='Client-visible failures of the proxy, and upstream failures and fallbacks per model group.'),
            record('job:litellm_proxy_errors:ratio_rate5m', error_share("job, host, simulated", 'litellm_proxy_failed_requests_metric_total{exception_status!~"4.."}', 'litellm_proxy_total_requests_metric_total'), comment="Server-side failures: LiteLLM labels a failed request with the HTTP status it answered\n(exception_status; \"None\" when the exception carried none, counted here). 4xx (400 bad request,\n401 invalid or expired key, 429 rate or budget limit) is the client's and has its own ratio."),
            record('job:litellm_proxy_client_errors:ratio_rate5m', error_share("job, host, simulated", 'litellm_proxy_failed_requests_metric_total{exception_status=~"4.."}', 'litellm_proxy_total_requests_metric_total')),
            record('requested_model:litellm_deployment_failures:ratio_rate5m', """\
sum by (requested_model, simulated) (rate(litellm_deployment_failure_responses_total[5m]))
  / sum by (requested_model, simulated) (rate(litellm_deployment_total_requests_total[5m]))
"""),
            record('requested_model:litellm_fallbacks:ratio_rate5m', """\
(
  (
    sum by (requested_model, simulated) (rate(litellm_deployment_successful_fallbacks_total[5m]))
      + sum by (requested_model, simulated) (rate(litellm_deployment_failed_fallbacks_total[5m]))
  )
  or sum by (requested_model, simulated) (rate(litellm_deployment_successful_fallbacks_total[5m]))
  or sum by (requested_model, simulated) (rate(litellm_deployment_failed_fallbacks_total[5m]))
)
  / sum by (requested_model, simulated) (rate(litellm_deployment_total_requests_total[5m]))
"""),
        ]),
        Group('llmwatch-litellm-board-recording', [
            record(f'requested_model:litellm_request_total_latency_metric:p{q}_5m',
                   f'histogram_quantile(0.{q}, sum by (requested_model, simulated, le) '
                   f'(rate(litellm_request_total_latency_metric_bucket[5m])))',
                   comment="Latency through the proxy per model group, for the LiteLLM board: LiteLLM labels its\n"
                           "histogram per key and team too, so a board percentile over the raw buckets reads them all.")
            for q in (50, 95, 99)
        ]),
        Group('llmwatch-langfuse-recording', [
            record('project:langfuse_observation_errors:ratio_rate5m', """\
sum by (project) (rate(llmwatch_langfuse_observations_total{level="ERROR"}[5m]))
  / sum by (project) (rate(llmwatch_langfuse_observations_total[5m]))
"""),
        ]),
        Group('llmwatch-host-recording', [
            record('instance_mode:node_cpu_seconds:rate5m', 'sum without (cpu) (rate(node_cpu_seconds_total[5m]))',
                   comment="CPU seconds per second by mode, and the cores, for the System board (a GPU host has\n"
                           "hundreds of cores, each with eight mode counters)."),
            record('instance:node_cpus:count', 'count without (cpu, mode) (node_cpu_seconds_total{mode="idle"})'),
            record('instance_cpu:node_cpu_busy:ratio_rate5m',
                   '1 - sum without (mode) (rate(node_cpu_seconds_total{mode="idle"}[5m]))',
                   comment="Busy share of each core, for the System board's per-core panel: a DGX-class host has\n"
                           "over 200 hardware threads, and a rate over each one's raw counter at every step of a day\n"
                           "was that board's slowest query."),
            *[record(f'instance:node_cpu_busy_per_core:{name}_5m', f'{how} by (instance, host, job) ({arg}'
                     'instance_cpu:node_cpu_busy:ratio_rate5m)',
                     comment="The spread of the cores' busy shares, which the System board draws (the busiest, the\n"
                             "90th percentile, the median core): three series, not one per core." if not arg else "")
              for name, how, arg in (("max", "max", ""), ("p90", "quantile", "0.9, "), ("p50", "quantile", "0.5, "))],
        ]),
        Group('llmwatch-containers-recording', [
            record(f'name:container_{name}:rate5m', f'sum by (name, host) (rate(container_{name}_total{{name!=""}}[5m]))',
                   comment="Per-container rates for the Docker containers board: cAdvisor keeps a series per network\n"
                           "interface and per cgroup, so a raw rate over a day of every container was its slowest\n"
                           "query (issue 23). Containers without a name (cgroups of the host) are left out.\n"
                   if i == 0 else "")
            for i, name in enumerate(CADVISOR_COUNTERS)
        ]),
        Group('llmwatch-gpu-recording', [
            record('job:llmwatch_gpu_utilization_ratio:avg', 'avg by (job, host, simulated) (llmwatch_gpu_utilization_ratio)'),
            record('job:llmwatch_gpu_power_watts:sum', 'sum by (job, host, simulated) (llmwatch_gpu_power_watts)'),
            record('gpu:llmwatch_gpu_memory_used:ratio', 'llmwatch_gpu_memory_used_bytes / llmwatch_gpu_memory_total_bytes'),
        ]),
    ]
