"""Prometheus configuration, recording rules and alerts, checked with promtool: the version
docker-compose.yml pins (built by scripts/build-pinned), or Debian's 2.42 without Go.

The unit tests themselves are the YAML files in config/prometheus/tests/ (promtool's format); this
module runs them and checks the conventions every alert follows.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import require_binary

pytestmark = pytest.mark.integration  # promtool / amtool, real binaries

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "config" / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS / "tests").glob("*_test.yml"))
RUNBOOKS = REPO / "docs" / "runbooks.md"
# Loki's ruler: log-based alerts, held to the same conventions (their LogQL is checked with
# Grafana's grammar in tests/dashboards/test_structure.py; promtool cannot read LogQL).
LOKI_RULE_FILES = sorted((REPO / "config" / "loki" / "rules").rglob("*.yml"))


def rules(kind: str, files: list[Path] = RULE_FILES) -> list[dict]:
    return [rule for path in files for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"] if kind in rule]


def every_alert() -> list[dict]:
    """The alerts of Prometheus and of Loki's ruler."""
    return rules("alert") + rules("alert", LOKI_RULE_FILES)


def promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess:
    return subprocess.run([require_binary("promtool"), *args], cwd=cwd, capture_output=True, text=True)


def test_promtool_check_config_passes():
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(RULE_FILES)} rule files found" in result.stdout


def test_promtool_check_rules_passes():
    result = promtool("check", "rules", *[str(p.relative_to(PROMETHEUS)) for p in RULE_FILES])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(test_file):
    result = promtool("test", "rules", test_file.name, cwd=test_file.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_unit_tests_catch_a_changed_threshold(tmp_path):
    """Mutation check: TTFT's critical threshold moved from 3 s to 5 s must fail vllm_test.yml."""
    shutil.copytree(PROMETHEUS, tmp_path / "prometheus")
    vllm = tmp_path / "prometheus" / "rules" / "vllm.yml"
    text = vllm.read_text()
    assert text.count("model_name:vllm_time_to_first_token_seconds:p95_5m > 3 and") == 1
    vllm.write_text(text.replace("model_name:vllm_time_to_first_token_seconds:p95_5m > 3 and",
                                 "model_name:vllm_time_to_first_token_seconds:p95_5m > 5 and"))
    result = promtool("test", "rules", "vllm_test.yml", cwd=tmp_path / "prometheus" / "tests")
    assert result.returncode != 0 and "VllmTtftP95High" in result.stdout + result.stderr


def test_every_alert_has_severity_summary_description_and_runbook():
    anchors = {re.sub(r"[^a-z0-9-]", "", line[3:].strip().lower().replace(" ", "-"))
               for line in RUNBOOKS.read_text().splitlines() if line.startswith("## ")}
    assert rules("alert", LOKI_RULE_FILES), "the Loki ruler has its alerts"
    for rule in every_alert():
        name, labels, notes = rule["alert"], rule.get("labels", {}), rule.get("annotations", {})
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", name), f"{name}: CamelCase names"
        assert labels.get("severity") in {"critical", "warning", "info", "none"}, name
        assert (labels["severity"] == "none") == (name == "Watchdog"), f"{name}: only the Watchdog has severity none"
        summary = notes.get("summary", "")
        assert summary[:1].isupper() and summary.endswith(".") and "{{" not in summary, \
            f"{name}: summary is one static sentence"
        assert "{{" in notes.get("description", "") or name == "Watchdog", f"{name}: description says which thing"
        served = rule in rules("alert")  # Prometheus' alerts: the page it serves; Loki's: the file
        assert notes.get("runbook_url") == (f"{{{{ $externalURL }}}}/consoles/runbooks.html#{name.lower()}" if served
                                            else f"docs/runbooks.md#{name.lower()}"), name
        assert name.lower() in anchors, f"{name}: no '## {name}' section in docs/runbooks.md"


def test_every_runbook_section_belongs_to_an_alert():
    names = {rule["alert"] for rule in every_alert()}
    sections = {line[3:].strip() for line in RUNBOOKS.read_text().splitlines() if line.startswith("## ")}
    assert sections - {"How to use these runbooks"} == names


def runbook_sections() -> dict[str, str]:
    """Each '## ' section of docs/runbooks.md by its title, without the title line."""
    parts = re.split(r"^## (.+)$", RUNBOOKS.read_text(), flags=re.MULTILINE)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2])}


def test_every_runbook_section_says_what_it_means_what_to_run_and_when_to_escalate():
    """The shape an on-call engineer can act on at 3 a.m.: the meaning first, then three numbered
    steps each with a command in backticks, then when to hand it on."""
    sections = runbook_sections()
    lacking = []
    for name in sorted({rule["alert"] for rule in every_alert()}):
        body = sections.get(name, "").strip()
        steps = re.findall(r"^(\d+)\. (.*)$", body, flags=re.MULTILINE)
        if not body or re.match(r"\d+\. ", body):
            lacking.append(f"{name}: no meaning before the commands")
        if [number for number, _ in steps[:3]] != ["1", "2", "3"] or not all("`" in text for _, text in steps[:3]):
            lacking.append(f"{name}: not three numbered first commands, each in backticks")
        if not re.search(r"^Escalate when ", body, flags=re.MULTILINE):
            lacking.append(f"{name}: no paragraph starting 'Escalate when'")
    assert lacking == [], "\n".join(lacking)


def test_every_llmwatch_series_a_runbook_names_exists():
    """A command that greps or queries a misspelt series finds nothing, which reads as all clear."""
    catalog = (REPO / "docs" / "metrics.md").read_text()
    named = set(re.findall(r"\bllmwatch_[a-z_]*[a-z]", RUNBOOKS.read_text()))
    assert named and {name for name in named if name not in catalog} == set()


def test_every_alert_has_a_firing_test_for_each_severity():
    tested: set[tuple[str, str]] = set()
    for path in TEST_FILES:
        for group in yaml.safe_load(path.read_text())["tests"]:
            for case in group.get("alert_rule_test", []):
                for alert in case.get("exp_alerts", []):
                    tested.add((case["alertname"], alert["exp_labels"]["severity"]))
    defined = {(rule["alert"], rule["labels"]["severity"]) for rule in rules("alert")}
    assert defined - tested == set(), f"alerts never shown firing in a test: {sorted(defined - tested)}"


def test_every_recording_rule_is_tested_or_feeds_a_tested_alert():
    checked = set()
    for path in TEST_FILES:
        for group in yaml.safe_load(path.read_text())["tests"]:
            checked |= {case["expr"] for case in group.get("promql_expr_test", [])}
    alert_exprs = " ".join(rule["expr"] for rule in rules("alert"))
    for rule in rules("record"):
        assert rule["record"] in checked or rule["record"] in alert_exprs, f"{rule['record']} is never tested"


def test_rules_use_only_what_prometheus_2_42_and_3_x_both_understand():
    text = "\n".join(p.read_text() for p in RULE_FILES)
    for feature in ("holt_winters", "double_exponential_smoothing", "first_over_time", "limitk", "info(",
                    "query_offset", 'le="1"'):
        assert feature not in text, feature
    config = (PROMETHEUS / "prometheus.yml").read_text()
    for key in ("scrape_protocols", "fallback_scrape_protocol", "metric_name_validation_scheme",
                "scrape_config_files", "enable_compression"):
        assert key not in config, key


def test_grafana_datasource_interval_matches_the_scrape_interval():
    prometheus = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    datasources = yaml.safe_load((REPO / "config/grafana/provisioning/datasources/datasources.yml").read_text())
    by_uid = {d["uid"]: d for d in datasources["datasources"]}
    assert set(by_uid) == {"prometheus", "loki", "alertmanager"}
    assert by_uid["prometheus"]["jsonData"]["timeInterval"] == prometheus["global"]["scrape_interval"] == "30s"
    assert by_uid["prometheus"]["url"] == "http://prometheus:23001" and by_uid["prometheus"]["basicAuth"] is True
    # from the file stack-config writes for Grafana, not from the environment
    assert by_uid["prometheus"]["secureJsonData"]["basicAuthPassword"] == "$__file{/etc/grafana/secrets/prometheus_password}"
    assert by_uid["alertmanager"]["secureJsonData"] == by_uid["prometheus"]["secureJsonData"]
    assert by_uid["loki"]["url"] == "http://loki:23002"
    assert by_uid["alertmanager"]["url"] == "http://alertmanager:23003"


def test_prometheus_serves_the_runbooks_page_every_alert_links(tmp_path):
    """The console page at Prometheus' external URL: every alert's anchor, docker's --format strings
    printed as written (Prometheus runs the page as a Go template)."""
    from tests.procs import Process, free_port, wait_until
    import httpx

    port = free_port()
    (tmp_path / "prometheus.yml").write_text("global: {}\n")
    with Process([require_binary("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
                  f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                  f"--web.console.templates={PROMETHEUS / 'consoles'}",
                  f"--web.external-url=http://prometheus.example:{port}/"], tmp_path / "prometheus.log"):
        url = f"http://127.0.0.1:{port}/consoles/runbooks.html"
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=2).status_code == 200, 30,
                   "Prometheus ready")
        page = httpx.get(url, timeout=5)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), page.text[:500]
    anchors = set(re.findall(r'<h2 id="([a-z0-9-]+)">', page.text))
    assert {rule["alert"].lower() for rule in every_alert()} <= anchors
    assert "{{.Names}} {{.Image}}" in page.text and '{{ "{{" }}' not in page.text
