"""docs/alerts.md, the alert catalogue: generated from the rules, Alertmanager's inhibitions and the
promtool tests, kept in step with them, and a place where an untested alert shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmwatch.tools.rules import catalogue

DOCS = Path(__file__).resolve().parents[1] / "docs"
# Loki's ruler alerts: their LogQL is checked with Grafana's grammar, no test runs them on a Loki.
NO_FIRING_TEST = {"VllmCudaOutOfMemory", "VllmEngineCoreDied"}


def test_the_committed_catalogue_is_what_the_rules_and_tests_give():
    assert (DOCS / "alerts.md").read_text() == catalogue.render()["alerts.md"], "run: llmwatch rules"


@pytest.fixture(scope="module")
def entries() -> list[catalogue.Entry]:
    return catalogue.entries()


def test_every_alert_and_severity_has_a_firing_test_but_the_log_alerts(entries):
    untested = {e.name for e in entries if not e.firing}
    assert untested == NO_FIRING_TEST
    assert {e.name for e in entries if e.source == "Loki"} == NO_FIRING_TEST


def test_inhibitions_name_both_ends(entries):
    by = {(e.name, e.severity): e for e in entries}
    ttft = by["VllmTtftP95High", "warning"]
    assert "TtftSloFastBurn (critical, same model_name)" in ttft.silenced_by
    assert "VllmTtftP95High (critical, same labels)" in ttft.silenced_by
    assert 'alertname="VllmTtftP95High" (same model_name)' in by["TtftSloFastBurn", "critical"].silences
    assert "ExporterDown (critical, job=llmwatch-gpu)" in by["GpuLost", "critical"].silenced_by
    assert by["Watchdog", "none"].silenced_by == [] and by["Watchdog", "none"].silences == []


def test_a_quiet_test_counts_as_quiet_and_a_firing_one_per_severity(entries):
    by = {(e.name, e.severity): e for e in entries}
    embedding = 'vllm_test.yml: an embedding model (no generated tokens) has no TTFT or TPOT SLO, however slow its "first token"'
    assert embedding in by["VllmTpotP95High", "warning"].quiet
    assert embedding in by["VllmTtftP95High", "critical"].firing  # the llama beside it pages
    assert not by["ExporterDown", "warning"].quiet
