"""Rules of the Loki ruler's file config/loki/rules/fake/llmwatch.yml (see HEADER)."""

from __future__ import annotations

from llmwatch.mixin import LOG_CUDA_OOM, LOG_ENGINE_DEAD
from llmwatch.tools.rules.build import Group, alert

HEADER = """\
Log-based alerts, evaluated by Loki's ruler and sent to Alertmanager like Prometheus's. "fake" in
the path is the tenant Loki uses without authentication. The line patterns are the ones the Logs
board counts (mixin.py). Their LogQL is checked with Grafana's LogQL grammar
(tests/dashboards/test_structure.py); these rules have not been run on a real Loki in the tests.
"""


def groups() -> list[Group]:
    return [
        Group('llmwatch-logs', [
            alert('VllmCudaOutOfMemory', f'sum by (container, host) (count_over_time({{container=~".+"}} |~ "(?i)({LOG_CUDA_OOM})" [5m])) > 0', for_='', severity='warning', served=False,
                  summary='A container logged a CUDA out-of-memory error.',
                  description='{{ $labels.container }} logged {{ $value }} CUDA out-of-memory lines in 5 minutes: requests failed, or the engine is about to die. The Logs board shows the lines.'),
            alert('VllmEngineCoreDied', f'sum by (container, host) (count_over_time({{container=~".+"}} |~ "(?i)({LOG_ENGINE_DEAD})" [5m])) > 0', for_='', severity='critical', served=False,
                  summary="A vLLM engine core died.",
                  description='{{ $labels.container }} logged that its engine died (EngineDeadError or the like) in the last 5 minutes: it fails every request until restarted, even while its API server still answers.'),
        ]),
    ]
