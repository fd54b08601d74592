"""Rules of insights.yml (see HEADER)."""

from __future__ import annotations

from llmwatch import mixin
from llmwatch.mixin import Mixin, fmt, le_matcher, percent
from llmwatch.tools.rules.build import Group, alert, record

HEADER = """\
Insights: cost per model and per 1M tokens, idle-GPU spend, SLO compliance, goodput, error-budget
burn rates and the GPU heartbeat. Prices and heartbeat bounds come from the insights exporter
(config/settings.toml [insights]); GPU-to-model attribution too
(llmwatch_insights_gpu_allocation_ratio: 1/n of a GPU for each of n models on it).

SLO compliance is read from the histogram bucket at each model's SLO bound (mixin.py: a default
and per-model overrides, each a vLLM bucket bound), not from an interpolated percentile. The
default's TTFT and TPOT SLOs cover only models that generate tokens (vllm:generation_tokens_total
above 0): an embedding model has no latency SLO, burn rate or alert unless mixin.py gives it one. For le
Prometheus 2.x stores "1.0" where 3.x stores "1", hence an le regex that accepts both.

Burn rate = share of bad requests / error budget (1 - 0.95 for the p95 latency SLOs, the model's
error SLO for errors). Alerts follow the multiwindow multi-burn-rate recipe of the Google SRE workbook:
page at 14.4x over 1 h and 5 m (2 % of a 30-day budget in an hour), ticket at 6x over 6 h and
30 m (5 % in 6 hours); both windows must burn, so an alert stops soon after the burning does.
Below mixin.py's min_request_rate over the long window they stay quiet: a model with a handful
of requests an hour burns "fast" when two of them are slow, and that is no page.
Hosts: SLOs, burn rates, goodput and cost per model span every host a model runs on (its users
see all its servers); a GPU's price and idle cost are joined on (gpu, host), since GPU 0 exists on
every host, and the per-container HTTP counters on (container, host) before they are summed per model.
Tests: config/prometheus/tests/insights_test.yml and hosts_test.yml. Runbooks: docs/runbooks.md.
"""


def groups() -> list[Group]:
    m = mixin.MIXIN
    return [
        Group('llmwatch-insights-cost', [
            record('model_name:vllm_tokens:rate5m', """\
sum by (model_name) (rate(vllm:prompt_tokens_total[5m]))
  + sum by (model_name) (rate(vllm:generation_tokens_total[5m]))
""", comment='Tokens processed per second per model: prompt (prefill) plus generated.'),
            record('model_name:llmwatch_gpu_cost_dollars_per_hour:allocation', """\
sum by (model_name) (
  llmwatch_insights_gpu_allocation_ratio
    * on (gpu, host) group_left () llmwatch_insights_gpu_cost_dollars_per_hour
)
""", comment="Allocation basis: every GPU the model's containers hold, busy or not."),
            record('model_name:llmwatch_gpu_cost_dollars_per_hour:usage', """\
sum by (model_name) (
  llmwatch_insights_gpu_allocation_ratio
    * on (gpu, host) group_left () (
      llmwatch_insights_gpu_cost_dollars_per_hour
        * on (gpu, host) group_left () avg_over_time(llmwatch_gpu_utilization_ratio[5m])
    )
)
""", comment="Usage basis: each GPU's price weighted by how busy it was (NVML utilisation, 5 m average)."),
            record('model_name:llmwatch_cost_dollars_per_million_tokens:allocation', """\
model_name:llmwatch_gpu_cost_dollars_per_hour:allocation
  / on (model_name) (model_name:vllm_tokens:rate5m * 3600 / 1e6 > 0)
"""),
            record('model_name:llmwatch_cost_dollars_per_million_tokens:usage', """\
model_name:llmwatch_gpu_cost_dollars_per_hour:usage
  / on (model_name) (model_name:vllm_tokens:rate5m * 3600 / 1e6 > 0)
"""),
            record('model_name:llmwatch_gpu_cost_dollars_per_day:allocation', 'model_name:llmwatch_gpu_cost_dollars_per_hour:allocation * 24'),
            record('cluster:llmwatch_gpu_cost_dollars_per_day:sum', 'sum(llmwatch_insights_gpu_cost_dollars_per_hour) * 24', comment='The whole fleet per day, and what its idle time costs: price x (1 - utilisation), per GPU\nand in total (a GPU no model holds is idle spend too).'),
            record('gpu:llmwatch_idle_gpu_cost_dollars_per_hour', """\
max by (gpu, host) (
  llmwatch_insights_gpu_cost_dollars_per_hour
    * on (gpu, host) group_left () (1 - avg_over_time(llmwatch_gpu_utilization_ratio[5m]))
)
"""),
            record('cluster:llmwatch_idle_gpu_cost_dollars_per_hour:sum', 'sum(gpu:llmwatch_idle_gpu_cost_dollars_per_hour)'),
        ]),
        Group('llmwatch-insights-heartbeat', [
            record('cluster:llmwatch_heartbeat_bpm', """\
sum(llmwatch_insights_heartbeat_min_bpm)
  + (sum(llmwatch_insights_heartbeat_max_bpm) - sum(llmwatch_insights_heartbeat_min_bpm))
    * avg(llmwatch_gpu_utilization_ratio)
""", comment='40 BPM when every GPU idles, 150 at full load (insights.heartbeat_*_bpm), linear between.'),
        ]),
        Group('llmwatch-insights-slo', [
            *slo_met_rules(m),
            *slo_target_rules(m),
            record('model_name:llmwatch_goodput:ratio_rate5m', 'model_name:vllm_ttft_slo_met:ratio_rate5m * on (model_name, simulated) model_name:vllm_tpot_slo_met:ratio_rate5m', comment="Goodput: the share of requests meeting both latency SLOs. vLLM's histograms do not pair a\nrequest's TTFT with its TPOT, so the two shares are multiplied (as if independent)."),
            record('model_name:llmwatch_goodput_requests:rate5m', 'model_name:llmwatch_goodput:ratio_rate5m * on (model_name, simulated) sum by (model_name, simulated) (rate(vllm:e2e_request_latency_seconds_count[5m]))'),
        ]),
        Group('llmwatch-insights-burn-rate', burn_rate_rules(m)),
        Group('llmwatch-insights-slo-alerts', [
            *burn_rate_alerts(m),
            alert('InsightsExporterCannotReadPrometheus', 'llmwatch_insights_up == 0', for_='10m', severity='warning',
                  summary='The insights exporter cannot read Prometheus.',
                  description='The insights exporter at {{ $labels.instance }} has failed to query Prometheus for 10 minutes: GPU attribution, cost per model and scaling advice are stale or missing.'),
        ]),
    ]


WINDOWS = ("5m", "30m", "1h", "6h")
LONG_WINDOWS = ("1h", "6h")  # the burn-rate alerts' long windows, where the traffic guard looks
# p95 latency SLOs: 5 % of requests may be slower than the bound.
LATENCY_BUDGET = 0.05


def _with(matcher: str, *more: str) -> str:
    """A label selector of the non-empty matchers, or nothing."""
    parts = [x for x in (*more, matcher) if x]
    return "{" + ", ".join(parts) + "}" if parts else ""


def _gated(gate: str) -> str:
    """The gate of an SLO group (mixin.SloGroup) as the last line of a record's expression."""
    return f"  {gate.strip()}\n" if gate else ""


def slo_met_rules(m: Mixin) -> list:
    """Share of requests within each model's own latency SLO bounds (5 m)."""
    rules = []
    for attribute, histogram, record_name in (
            ("ttft_p95_seconds", "vllm:time_to_first_token_seconds", "model_name:vllm_ttft_slo_met:ratio_rate5m"),
            ("tpot_p95_seconds", "vllm:request_time_per_output_token_seconds",
             "model_name:vllm_tpot_slo_met:ratio_rate5m")):
        for i, (matcher, bound, gate) in enumerate(m.slo.groups(attribute)):
            le = f'le=~"{le_matcher(bound)}"'
            rules.append(record(record_name, (
                f"sum by (model_name, simulated) (rate({histogram}_bucket{_with(matcher, le)}[5m]))\n"
                f"  / (sum by (model_name, simulated) (rate({histogram}_count{_with(matcher)}[5m])) > 0)\n"
                + _gated(gate)),
                comment="Share of requests within the SLO bound, per model (5 m): the bucket at the bound / count."
                if i == 0 and attribute == "ttft_p95_seconds" else ""))
    return rules


SLO_TARGETS = {"ttft_p95_seconds": "model_name:llmwatch_slo_ttft_p95_seconds:target",
               "tpot_p95_seconds": "model_name:llmwatch_slo_tpot_p95_seconds:target"}


def slo_target_rules(m: Mixin) -> list:
    """Each served model's own latency SLO as a series (mixin.py: its override, else the default for
    a model that generates tokens; none without an SLO), for the boards to draw beside its latency."""
    rules = []
    for attribute, name in SLO_TARGETS.items():
        for i, (matcher, value, gate) in enumerate(m.slo.groups(attribute)):
            rules.append(record(name, (
                f"0 * max by (model_name, simulated) (vllm:num_requests_running{_with(matcher)}) + {fmt(value)}\n"
                + _gated(gate)),
                comment="Each served model's own latency SLOs, as the boards draw them beside its percentiles."
                if i == 0 and attribute == "ttft_p95_seconds" else ""))
    return rules


def burn_rate_rules(m: Mixin) -> list:
    rules = []
    for i, (matcher, bound, gate) in enumerate(m.slo.groups("ttft_p95_seconds")):
        le = f'le=~"{le_matcher(bound)}"'
        for j, window in enumerate(WINDOWS):
            rules.append(record(f"model_name:llmwatch_slo_ttft_burn_rate:{window}", (
                f"(1 - sum by (model_name, simulated) (rate(vllm:time_to_first_token_seconds_bucket"
                f"{_with(matcher, le)}[{window}]))\n"
                f"  / (sum by (model_name, simulated) (rate(vllm:time_to_first_token_seconds_count{_with(matcher)}[{window}])) > 0))"
                f" / {fmt(LATENCY_BUDGET)}\n" + _gated(gate)),
                comment=f"TTFT: share of requests slower than the model's SLO ({fmt(bound)} s here) over each window,\n"
                        f"divided by the budget {fmt(LATENCY_BUDGET)}." if j == 0 else ""))
    for i, (matcher, budget, _) in enumerate(m.slo.groups("error_ratio")):
        info = f"llmwatch_vllm_instance_info{_with(matcher)}"
        for j, window in enumerate(WINDOWS):
            rules.append(record(f"model_name:llmwatch_slo_error_burn_rate:{window}", (
                "(\n"
                f"  sum by (model_name, simulated) (sum by (container, host, simulated) (rate(http_requests_total{{handler=~\"/v1/.*\", status=\"5xx\"}}[{window}]))\n"
                f"    * on (container, host) group_left (model_name) {info})\n"
                f"  / (sum by (model_name, simulated) (sum by (container, host, simulated) (rate(http_requests_total{{handler=~\"/v1/.*\"}}[{window}]))\n"
                f"    * on (container, host) group_left (model_name) {info}) > 0)\n"
                f") / {fmt(budget)}\n"),
                comment="Errors: 5xx answers of the OpenAI API per model (HTTP counters are per container; the\n"
                        f"container's model comes from llmwatch_vllm_instance_info), divided by the budget {fmt(budget)}."
                if j == 0 else ""))
    for window in LONG_WINDOWS:
        rules.append(record(f"model_name:llmwatch_slo_ttft_requests:rate{window}",
                            f"sum by (model_name, simulated) (rate(vllm:time_to_first_token_seconds_count[{window}]))",
                            comment="Requests per second behind each burn rate over the alerts' long windows: the minimum-traffic\n"
                                    "guard." if window == LONG_WINDOWS[0] else ""))
        rules.append(record(f"model_name:llmwatch_slo_error_requests:rate{window}", (
            f"sum by (model_name, simulated) (sum by (container, host, simulated) (rate(http_requests_total{{handler=~\"/v1/.*\"}}[{window}]))\n"
            "  * on (container, host) group_left (model_name) llmwatch_vllm_instance_info)\n")))
    return rules


def burn_rate_alerts(m: Mixin) -> list:
    """Multiwindow burn-rate alerts for the TTFT and the error SLO: page fast burns, ticket slow ones."""
    rules = []
    for slo, what, summary, how in (
            ("ttft", "Ttft", "The TTFT SLO's error budget is burning",
             lambda burn: f"answers more than {percent(burn * LATENCY_BUDGET)} of requests slower than its TTFT SLO"),
            ("error", "Error", "The error SLO's budget is burning",
             lambda burn: f"fails API requests (5xx) at {fmt(burn)}x its error budget or more")):
        for speed, burn, long, short, for_, severity, horizon, lasting in (
                ("Fast", m.fast_burn, "1h", "5m", "2m", "critical", "two days", "over the last hour and 5 minutes"),
                ("Slow", m.slow_burn, "6h", "30m", "15m", "warning", "five days", "for 6 hours")):
            rules.append(alert(
                f"{what}Slo{speed}Burn",
                f"model_name:llmwatch_slo_{slo}_burn_rate:{long} > {fmt(burn)}\n"
                f"  and on (model_name, simulated) model_name:llmwatch_slo_{slo}_burn_rate:{short} > {fmt(burn)}\n"
                f"  and on (model_name, simulated) model_name:llmwatch_slo_{slo}_requests:rate{long} >= {fmt(m.min_request_rate)}\n",
                for_=for_, severity=severity,
                summary=summary + (" fast." if speed == "Fast" else "."),
                description=f"{{{{ $labels.model_name }}}} {how(burn)} {lasting} "
                            "({{ $value | printf \"%.1f\" }}x the budget rate): a month's budget goes in "
                            f"{horizon}."))
    return rules
