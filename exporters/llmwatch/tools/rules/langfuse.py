"""Rules of langfuse.yml (see HEADER)."""

from __future__ import annotations

from llmwatch.tools.rules.build import Group, alert

HEADER = """\
Langfuse alerts, from the llmwatch Langfuse exporter. Tests: config/prometheus/tests/langfuse_test.yml.
"""


def groups() -> list[Group]:
    return [
        Group('llmwatch-langfuse', [
            alert('LangfuseUnreachable', 'llmwatch_langfuse_up == 0', for_='5m', severity='warning',
                  summary='The Langfuse exporter cannot read Langfuse.',
                  description="Langfuse's API or database has failed for the exporter {{ $labels.instance }} for 5 minutes (see llmwatch_langfuse_scrape_errors_total for the reason); trace counters are not moving."),
            alert('LangfuseUnhealthy', 'llmwatch_langfuse_healthy == 0', for_='5m', severity='warning',
                  summary='Langfuse reports itself unhealthy.',
                  description="Langfuse's health endpoint, asked by {{ $labels.instance }}, has failed for 5 minutes (usually its database); traces may be lost."),
            alert('LangfuseErrorSpike', """\
project:langfuse_observation_errors:ratio_rate5m > 0.05
  and on (project) sum by (project) (rate(llmwatch_langfuse_observations_total{level="ERROR"}[5m])) > 0.01
""", for_='10m', severity='warning',
                  summary='More than 5 % of traced LLM steps end in an error.',
                  description='Project {{ $labels.project }} logged {{ $value | humanizePercentage }} of its observations at level ERROR over 5 minutes.'),
            alert('LangfuseCountingStalled', 'time() - llmwatch_langfuse_counted_until_timestamp_seconds > 900', for_='5m', severity='warning',
                  summary='Langfuse counters have stopped moving.',
                  description='The Langfuse exporter has counted nothing newer than {{ $value | humanizeDuration }} ago; reads keep failing or are too slow.'),
        ]),
    ]
