"""Whole expositions of every exporter's named situations, compared with tests/<exporter>/golden/*.prom."""

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.all_scenarios import EXPORTERS

TESTS = Path(__file__).parent


@pytest.mark.parametrize("exporter, name", [(e, n) for e, scenarios in EXPORTERS.items() for n in sorted(scenarios)])
def test_exposition_matches_golden(exporter, name, tmp_path, golden):
    text = EXPORTERS[exporter][name](tmp_path)
    list(text_string_to_metric_families(text))  # parses as Prometheus text
    golden(TESTS / exporter / "golden" / f"{name}.prom", text)
