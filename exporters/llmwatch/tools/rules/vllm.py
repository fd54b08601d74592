"""Rules of vllm.yml (see HEADER)."""

from __future__ import annotations

from llmwatch import mixin
from llmwatch.mixin import Mixin, fmt, percent, seconds
from llmwatch.tools.dashboards import logs
from llmwatch.tools.rules import build
from llmwatch.tools.rules.build import Group, alert, matching

HEADER = """\
vLLM alerts, from the llmwatch vLLM exporter (every vLLM version under the newest names).
Latency alerts fire at multiples of each model's own SLO (mixin.py: TTFT p95 above 1.5x the
SLO warns and 3x pages; time per output token above the SLO warns and 3x pages); a model with
no latency SLO has no latency alert, and the default SLO covers only models that generate tokens
(an embedding model has none unless mixin.py gives it one). Error ratio per server: 5xx only (4xx
are information only), quiet below mixin.py's minimum traffic.
Tests: config/prometheus/tests/vllm_test.yml. Runbooks: docs/runbooks.md.
"""


def groups() -> list[Group]:
    m = mixin.MIXIN
    return [
        Group('llmwatch-vllm', [
            alert('VllmInstanceDown', 'llmwatch_vllm_up == 0 unless on (container, host) llmwatch_vllm_container_state{state="starting"} == 1',
                  for_='1m', severity='critical', summary='A vLLM server does not answer.',
                  description='vLLM {{ $labels.container }} has not served /metrics for a minute (hung, crashed inside, unreachable, or still not loaded after its start grace).',
                  comment="Running containers only (an exited one has no up series: VllmContainerExited), and not while\n"
                          "the exporter reports it starting (loading its model within [vllm] start_grace_seconds)."),
            *lifecycle_alerts(m),
            alert('VllmEngineUnhealthy', 'llmwatch_vllm_healthy == 0 and on (container, host) llmwatch_vllm_up == 1', for_='1m', severity='critical',
                  summary='A vLLM server answers but its engine is dead.',
                  description='vLLM {{ $labels.container }} serves /metrics but /health has failed for a minute; requests to it fail.'),
            alert('VllmOnLostGpu', """\
max by (container, host, simulated) (
    llmwatch_vllm_container_gpu and on (gpu, host) (llmwatch_gpu_up == 0)
  or label_replace(llmwatch_vllm_container_gpu, "uuid", "$1", "gpu", "(GPU-.+)")
       and on (uuid, host) (llmwatch_gpu_info and on (gpu, host) (llmwatch_gpu_up == 0))
  or llmwatch_vllm_container_gpu{gpu="all"} and on (host) (llmwatch_gpu_up == 0)
)
""", for_='', severity='info',
                  summary='A vLLM server runs on a GPU that is lost.',
                  description='vLLM {{ $labels.container }} was given a GPU that stopped answering NVML (see GpuLost); its other alerts are consequences, and Alertmanager silences them while this fires.',
                  comment="The containers Docker gave a lost GPU (by index, by UUID through llmwatch_gpu_info, or \"all\"\nGPUs): one info alert each, the source of the inhibition of their engine alerts\n(config/alertmanager/alertmanager.yml), since GpuLost itself has no container label."),
            alert('VllmQueueGrowing', 'min_over_time(vllm:num_requests_waiting[10m]) > 0 and deriv(vllm:num_requests_waiting[10m]) > 0', for_='5m', severity='warning',
                  summary='Requests are piling up in a vLLM queue.',
                  description='vLLM {{ $labels.container }} ({{ $labels.model_name }}) has had requests waiting for 15 minutes and the queue keeps growing; it needs more capacity or less traffic.'),
            *kv_cache_alerts(m),
            alert('VllmPreemptions', 'increase(vllm:num_preemptions_total[10m]) > 5', for_='10m', severity='warning',
                  summary='A vLLM server keeps preempting requests.',
                  description='vLLM {{ $labels.container }} ({{ $labels.model_name }}) preempted {{ $value | humanize }} requests in 10 minutes; recomputation wastes GPU time and raises latency.'),
            *latency_alerts(m),
            *error_alerts(m),
        ]),
    ]


def lifecycle_alerts(m: Mixin) -> list:
    """A vLLM container that exited with an error, or that Docker keeps restarting. Neither has an
    up series to page on (only running containers are scraped), and both page: the model is down."""
    clean = " and ".join(f"llmwatch_vllm_container_exit_code != {code}" for code in m.vllm_clean_exit_codes)
    clean_words = " or ".join(str(code) for code in m.vllm_clean_exit_codes)
    return [
        with_logs_link(alert("VllmContainerExited", f"""\
llmwatch_vllm_container_exit_code
  and on (container, host) (llmwatch_vllm_container_state{{state=~"exited|dead"}} == 1)
  and on (container, host) ({clean} or llmwatch_vllm_container_oom_killed == 1)
""", for_="", severity="critical", summary="A vLLM container exited with an error.",
              description="vLLM {{ $labels.container }} exited with code {{ $value }} (137 with the OOM flag: killed "
                          "for memory) and nothing restarts it; its model is down. Its last log lines: Grafana's "
                          "Logs board for the container (logs_url).",
              comment=f"Exit code {clean_words} without the OOM flag is a stop on purpose (a clean shutdown, or\n"
                      "SIGTERM from docker stop): quiet. The value is the exit code.")),
        with_logs_link(alert("VllmContainerRestartLooping", f"""\
increase(llmwatch_vllm_container_restarts_total[{m.vllm_restart_window}]) >= {m.vllm_restart_loop}
  or max without (state) (llmwatch_vllm_container_state{{state="restarting"}}) == 1
""", for_="2m", severity="critical", summary="Docker keeps restarting a vLLM container.",
              description=f"vLLM {{{{ $labels.container }}}} has been restarted by its restart policy at least "
                          f"{m.vllm_restart_loop} times in {m.vllm_restart_window}, or is waiting to be restarted; "
                          "it crashes (often while loading its model) and serves nothing.",
              comment="Each restart brings a new start grace, so a container that crashes while loading is never\n"
                      "down in VllmInstanceDown's sense: this is what pages for it.")),
    ]


def with_logs_link(rule):
    """The Logs board filtered on the alert's container, as an annotation: where its last log
    lines are (a path on Grafana)."""
    rule.body["annotations"]["logs_url"] = (f"/d/{logs.UID}/logs?var-container={{{{ $labels.container }}}}"
                                            "&from=now-1h&to=now")
    return rule


def kv_cache_alerts(m: Mixin) -> list:
    return [
        alert("VllmKvCacheSaturated", f"vllm:kv_cache_usage_perc > {m.kv_cache_usage.critical:g}", for_="10m",
              severity="warning", summary="A vLLM server's KV cache is full.",
              description="vLLM {{ $labels.container }} ({{ $labels.model_name }}) has used {{ $value | "
                          "humanizePercentage }} of its KV cache for 10 minutes; new requests wait or preempt running ones."),
    ]


def latency_alerts(m: Mixin) -> list:
    """TTFT and time-per-output-token p95 alerts, per model at multiples of its SLO."""
    rules = []
    for name, attribute, series, what, metric, threshold in (
            ("VllmTtftP95High", "ttft_p95_seconds", "model_name:vllm_time_to_first_token_seconds:p95_5m",
             "Time to first token", "a TTFT p95", m.ttft_threshold),
            ("VllmTpotP95High", "tpot_p95_seconds", "model_name:vllm_inter_token_latency_seconds:p95_5m",
             "Time per output token", "an inter-token latency p95", m.tpot_threshold)):
        for matcher, slo, gate in m.slo.groups(attribute):
            limits = threshold(slo)
            for severity, limit, for_ in (("warning", limits.warning, "10m"), ("critical", limits.critical, "5m")):
                rules.append(alert(
                    name, f"{matching(series, matcher)} > {limit:g}{gate}", for_=for_, severity=severity,
                    summary=f"{what} is above {seconds(limit)} at the 95th percentile.",
                    description=f"Model {{{{ $labels.model_name }}}} has {metric} of {{{{ $value | humanizeDuration }}}} "
                                f"over 5 minutes ({severity} above {seconds(limit)}; its SLO is {seconds(slo)})."))
    return rules


def error_alerts(m: Mixin) -> list:
    """5xx answers warn or page; 4xx (the client's fault) are information only. Both stay quiet
    below the mixin's minimum traffic."""
    return build.error_alerts(
        "Vllm", server_ratio="container:vllm_http_errors:ratio_rate5m",
        client_ratio="container:vllm_http_client_errors:ratio_rate5m",
        traffic=f"and on (container, host) container:vllm_http_requests:rate5m >= {fmt(m.min_request_rate)}",
        limits=m.vllm_error_ratio, client_limit=m.client_error_ratio,
        server_summary="More than {percent} of a vLLM server's API requests fail.",
        server_description="vLLM {{ $labels.container }} answered {{ $value | humanizePercentage }} of its /v1 "
                           "requests with a 5xx over 5 minutes.",
        client_summary=f"More than {percent(m.client_error_ratio)} of a vLLM server's API requests are client errors.",
        client_description="vLLM {{ $labels.container }} answered {{ $value | humanizePercentage }} of its /v1 requests "
                           "with a 4xx over 5 minutes (bad request, unknown model, prompt longer than the context): "
                           "a client to fix, not the server.")
