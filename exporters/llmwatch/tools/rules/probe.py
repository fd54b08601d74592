"""Rules of probe.yml (see HEADER)."""

from __future__ import annotations

from llmwatch import mixin
from llmwatch.mixin import Mixin, fmt
from llmwatch.tools.rules.build import Group, alert, matching, record

HEADER = """\
Probe alerts: latency and failures as a client sees them, from the llmwatch probe exporter
(tiny streamed completions through LiteLLM and straight to each engine). The TTFT bound is each
model's own TTFT SLO (mixin.py; the probe's model label is the served model or model group). Tests:
config/prometheus/tests/probe_test.yml.
"""


def groups() -> list[Group]:
    m = mixin.MIXIN
    return [
        Group('llmwatch-probe', [
            record('target_model:llmwatch_probe_ttft_seconds:p95_30m', 'histogram_quantile(0.95, sum by (target, model, host, simulated, le) (rate(llmwatch_probe_ttft_seconds_bucket[30m])))'),
            # "unsupported" (an embedding model: no chat to probe) is neither a success nor a failure:
            # a model that answers only that has no ratio, so ProbeEngineFailing stays quiet
            record('target_model:llmwatch_probe_success:ratio_30m', """\
sum by (target, model, host, simulated) (increase(llmwatch_probe_requests_total{outcome="ok"}[30m]))
  / sum by (target, model, host, simulated) (increase(llmwatch_probe_requests_total{outcome!="unsupported"}[30m]))
"""),
            alert('ProbeThroughLitellmFailing', 'max_over_time(llmwatch_probe_success{target="litellm"}[10m]) == 0', for_='5m', severity='critical',
                  summary='Completions of a model group through LiteLLM fail.',
                  description='Not one probe of model group {{ $labels.model }} through the LiteLLM proxy has succeeded for 15 minutes; clients get errors too. llmwatch_probe_requests_total{target="litellm"} names the outcome.'),
            # A vLLM container loading its model (state "starting", within its start grace) refuses
            # the probe's connections; that is VllmInstanceDown's business once the grace is over,
            # so its failures over the ratio's window are not an engine failing.
            alert('ProbeEngineFailing', '''\
target_model:llmwatch_probe_success:ratio_30m{target!="litellm"} < 0.9
  unless on (target, host)
label_replace(max_over_time(llmwatch_vllm_container_state{state="starting"}[30m]) == 1, "target", "$1", "container", "(.*)")
''', for_='10m', severity='warning',
                  summary='Probes streamed straight to an engine fail.',
                  description='Over 10 % of the probes streamed straight to {{ $labels.target }} (model {{ $labels.model }}) failed over the last 30 minutes.'),
            *ttft_alerts(m),
            alert('ProbeNotRunning', """\
time() - max by (job, instance, host) (llmwatch_probe_last_run_timestamp_seconds)
  > on (job, instance, host) 3 * max by (job, instance, host) (llmwatch_probe_interval_seconds) + 120
""", for_='5m', severity='warning',
                  summary='The probe exporter has stopped probing.',
                  description='No probe of {{ $labels.instance }} has ended for over three intervals; its latency series are frozen. Its log says why (probe round failed).'),
        ]),
    ]


def ttft_alerts(m: Mixin) -> list:
    return [
        alert("ProbeTtftAboveSlo", f"{matching('target_model:llmwatch_probe_ttft_seconds:p95_30m', matcher)} > {fmt(slo)}",
              for_="15m", severity="warning", summary="Clients wait longer than the TTFT SLO for a first token.",
              description="The client-side TTFT p95 of probes of {{ $labels.model }} on {{ $labels.target }} has been over "
                          f"its {fmt(slo)} s TTFT SLO for 15 minutes (30-minute window). Compare with "
                          "vllm:time_to_first_token_seconds of the engine to see whether the engine or what lies in front "
                          "of it is slow.")
        for matcher, slo, _ in m.slo.groups("ttft_p95_seconds", label="model")
    ]
