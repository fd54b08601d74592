"""The insights exporter exits within 5 s of SIGTERM while Prometheus hangs on its forecast's queries."""

from __future__ import annotations

from tests.fakes.prometheus import FakePrometheus
from tests.procs import exporter, free_port, seconds_to_exit, wait_until


def test_insights_exits_within_5_s_of_sigterm_while_prometheus_hangs(tmp_path):
    with FakePrometheus({}, hang=True) as prometheus:
        env = {"LLMWATCH_INSIGHTS__PROMETHEUS_URL": prometheus.url, "LLMWATCH_INSIGHTS__FORECAST": "true",
               "LLMWATCH_COMMON__SCRAPE_BUDGET_SECONDS": "20"}
        process = exporter("insights", free_port(), tmp_path / "insights.log", env)
        try:
            wait_until(lambda: prometheus.requests, 20, "the forecast's queries")
            seconds = seconds_to_exit(process)
        finally:
            process.stop()
    assert seconds < 5, f"exited {seconds:.1f}s after SIGTERM:\n{process.log()}"
    assert process.proc.returncode == 0, process.log()
