"""The SLO bounds and budgets written into the recording rules are the ones settings.toml declares."""

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RULES = (REPO / "config" / "prometheus" / "rules" / "insights.yml").read_text()
SETTINGS = tomllib.loads((REPO / "config" / "settings.toml").read_text())["insights"]


def le_values(family: str) -> set[str]:
    return set(re.findall(rf'{re.escape(family)}_bucket\{{le=~?"([^"]+)"\}}', RULES))


def test_ttft_bound_is_the_setting():
    assert le_values("vllm:time_to_first_token_seconds") == {r"1(\\.0)?"}
    assert SETTINGS["slo_ttft_p95_seconds"] == 1.0


def test_tpot_bound_is_the_setting():
    assert le_values("vllm:request_time_per_output_token_seconds") == {str(SETTINGS["slo_tpot_p95_seconds"])}


def test_budgets_are_the_settings():
    ttft_budgets = set(re.findall(r"_count\[\w+\]\)\) > 0\)\) / ([0-9.]+)", RULES))
    assert ttft_budgets == {f"{1 - 0.95:.2f}"}
    error_budgets = set(re.findall(r"^ *\) / ([0-9.]+)$", RULES, re.MULTILINE))
    assert error_budgets == {str(SETTINGS["slo_error_ratio"])}
