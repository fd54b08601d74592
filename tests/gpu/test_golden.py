"""Whole expositions of named situations, compared with tests/gpu/golden/*.prom."""

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.gpu.scenarios import SCENARIOS

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_exposition_matches_golden(name, tmp_path, golden):
    text = SCENARIOS[name](tmp_path)
    list(text_string_to_metric_families(text))  # parses as Prometheus text
    golden(GOLDEN / f"{name}.prom", text)
