"""The one config (exporters/llmwatch/mixin.py) feeds the rules, the boards, the insights exporter
and the stack's ports; changing it changes all of them, and stale generated files are caught."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path
from types import MappingProxyType

import pytest
import yaml

from llmwatch import mixin
from llmwatch.exporters.insights.collector import slo_families
from llmwatch.mixin import MIXIN, MixinError, Slo, Slos
from llmwatch.tools import dashboards, rules
from llmwatch.tools.dashboards import cli as dashboards_cli
from llmwatch.tools.rules import cli as rules_cli
from tests.conftest import require_binary

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "config" / "prometheus" / "rules"


def alerts(rendered: dict[str, str], name: str) -> list[dict]:
    return [r for text in rendered.values() for g in yaml.safe_load(text)["groups"] for r in g["rules"]
            if r.get("alert") == name]


def records(rendered: dict[str, str], name: str) -> list[dict]:
    return [r for text in rendered.values() for g in yaml.safe_load(text)["groups"] for r in g["rules"]
            if r.get("record") == name]


def test_the_committed_rule_files_are_what_the_code_builds():
    assert rules_cli.main(["--check"]) == 0, "run: llmwatch rules"


def test_changing_the_default_slo_changes_rules_and_boards_and_the_files_go_stale(monkeypatch, tmp_path, capsys):
    before_rules, before_boards = rules.render(), dashboards.render()
    monkeypatch.setattr(mixin, "MIXIN", MIXIN.with_slo(ttft_p95_seconds=2.5))
    after_rules, after_boards = rules.render(), dashboards.render()

    changed = {name for name in before_rules if before_rules[name] != after_rules[name]}
    assert changed == {"vllm.yml", "insights.yml", "probe.yml"}
    warning, critical = alerts(after_rules, "VllmTtftP95High")
    assert " > 3.75 and on " in warning["expr"] and " > 7.5 and on " in critical["expr"]
    assert all('le=~"2\\\\.5"' in r["expr"] for r in records(after_rules, "model_name:llmwatch_slo_ttft_burn_rate:1h"))
    assert [a["expr"].split()[-1] for a in alerts(after_rules, "ProbeTtftAboveSlo")] == ["2.5"]
    changed_boards = {name for name in before_boards if before_boards[name] != after_boards[name]}
    assert "llmwatch/vllm.json" in changed_boards and "7.5 s critical" in after_boards["llmwatch/vllm.json"]
    # per-model panels draw each model's SLO from the recording rule the rules changed with it
    assert "llmwatch/overview.json" not in changed_boards
    assert "model_name:llmwatch_slo_ttft_p95_seconds:target" in after_boards["llmwatch/overview.json"]

    assert rules_cli.main(["--check"]) == 1
    assert dashboards_cli.main(["--check"]) == 1
    assert "stale rule files (run llmwatch rules): vllm.yml, insights.yml, probe.yml" in capsys.readouterr().err


def test_a_model_override_gets_its_own_rules_and_the_default_excludes_it(monkeypatch):
    m = MIXIN.with_slo("Qwen/Qwen3-32B", ttft_p95_seconds=2.5, error_ratio=0.01)
    m = m.with_slo("BAAI/bge-m3", ttft_p95_seconds=None, tpot_p95_seconds=None)
    monkeypatch.setattr(mixin, "MIXIN", m)
    rendered = rules.render()

    ttft = [a["expr"] for a in alerts(rendered, "VllmTtftP95High")]
    assert ttft == [
        'model_name:vllm_time_to_first_token_seconds:p95_5m{model_name="Qwen/Qwen3-32B"} > 3.75',
        'model_name:vllm_time_to_first_token_seconds:p95_5m{model_name="Qwen/Qwen3-32B"} > 7.5',
        'model_name:vllm_time_to_first_token_seconds:p95_5m{model_name!~"Qwen/Qwen3-32B|BAAI/bge-m3"} > 1.5'
        f' and on (model_name, simulated) ({mixin.GENERATIVE})',
        'model_name:vllm_time_to_first_token_seconds:p95_5m{model_name!~"Qwen/Qwen3-32B|BAAI/bge-m3"} > 3'
        f' and on (model_name, simulated) ({mixin.GENERATIVE})',
    ]
    # the embedding model has no latency SLO: no TPOT alert names it, the default excludes it
    tpot = [a["expr"] for a in alerts(rendered, "VllmTpotP95High")]
    assert all("bge-m3" not in e or "!~" in e for e in tpot) and len(tpot) == 4
    burns = [r["expr"] for r in records(rendered, "model_name:llmwatch_slo_error_burn_rate:1h")]
    assert [b.rstrip().rsplit("/ ", 1)[1] for b in burns] == ["0.01", "0.001", "0.001"]
    probe = [a["expr"] for a in alerts(rendered, "ProbeTtftAboveSlo")]
    assert probe[0].endswith('{model="Qwen/Qwen3-32B"} > 2.5')

    families = {f.name: {s.labels["model_name"]: s.value for s in f.samples} for f in slo_families(m.slo)}
    assert families["llmwatch_insights_slo_ttft_p95_seconds"] == {"default": 1.0, "Qwen/Qwen3-32B": 2.5}
    assert families["llmwatch_insights_slo_error_ratio"] == {"default": 0.001, "Qwen/Qwen3-32B": 0.01,
                                                             "BAAI/bge-m3": 0.001}


@pytest.mark.parametrize("slos, message", [
    (lambda: Slos(Slo(ttft_p95_seconds=1.5)), "slo.default.ttft_p95_seconds = 1.5 is not a bucket bound"),
    (lambda: Slos(overrides=MappingProxyType({"m": Slo(tpot_p95_seconds=0.12)})),
     "slo.overrides['m'].tpot_p95_seconds = 0.12 is not a bucket bound"),
    (lambda: Slos(Slo(error_ratio=0)), "slo.default.error_ratio = 0 must be between 0 and 1"),
    (lambda: Slos(overrides=MappingProxyType({"default": Slo()})), "'default' is not a usable model_name"),
])
def test_a_bad_slo_is_refused_with_its_key(slos, message):
    with pytest.raises(MixinError, match=re.escape(message)):
        slos()


@pytest.mark.parametrize("fixture", sorted((REPO / "tests" / "vllm" / "fixtures").glob("vllm-*.prom")))
def test_slo_bounds_are_bucket_bounds_of_every_vllm_version(fixture):
    text = fixture.read_text()
    for family, bounds in (("time_to_first_token_seconds", mixin.VLLM_TTFT_BOUNDS),
                           ("time_per_output_token_seconds", mixin.VLLM_ITL_BOUNDS)):
        les = {float(le) for le in re.findall(rf'vllm:{family}_bucket{{[^}}]*le="([^"+]+)"', text)}
        if les:  # a version that has the histogram has every bound the mixin allows
            assert set(bounds) <= les, (fixture.name, family, sorted(set(bounds) - les))


def test_the_stack_uses_the_mixins_ports():
    settings = tomllib.loads((REPO / "config" / "settings.toml").read_text())
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    prometheus = yaml.safe_load((REPO / "config" / "prometheus" / "prometheus.yml").read_text())
    static = {t for job in prometheus["scrape_configs"] for c in job.get("static_configs", []) for t in c["targets"]}
    ports = MIXIN.ports
    for name in ("gpu", "vllm", "litellm", "langfuse", "insights", "probe"):
        port = getattr(ports, name)
        assert settings[name]["port"] == port, name
        assert compose[f"{name}-exporter"]["healthcheck"]["test"][-1] == str(port), name
    assert f"insights-exporter:{ports.insights}" in static
    # node-exporter runs in the host network: Prometheus reaches it through the host gateway
    for host, port in (("alertmanager", ports.alertmanager), ("host.docker.internal", ports.node_exporter),
                       ("cadvisor", ports.cadvisor), ("loki", ports.loki), ("grafana", ports.grafana)):
        assert f"{host}:{port}" in static, host
    assert f"localhost:{ports.prometheus}" in static
    assert any(p.endswith(f":{ports.grafana}") for p in compose["grafana"]["ports"])  # the container side
    assert any(p.endswith(f":{ports.prometheus}") for p in compose["prometheus"]["ports"])


OVERRIDE_TEST = """
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'model_name:vllm_time_to_first_token_seconds:p95_5m{{model_name="big"}}'
        values: '3x30'
      - series: 'model_name:vllm_time_to_first_token_seconds:p95_5m{{model_name="small"}}'
        values: '2x30'
      - series: 'model_name:vllm_time_to_first_token_seconds:p95_5m{{model_name="embed"}}'
        values: '9x30'
      - series: 'vllm:generation_tokens_total{{model_name="small"}}'
        values: '0+100x30'
      - series: 'vllm:generation_tokens_total{{model_name="embed"}}'
        values: '0x30'
    alert_rule_test:
      - eval_time: 20m
        alertname: VllmTtftP95High
        exp_alerts:
          - exp_labels: {{severity: warning, model_name: small}}
            exp_annotations:
              summary: Time to first token is above 1.5 s at the 95th percentile.
              description: Model small has a TTFT p95 of 2s over 5 minutes (warning above 1.5 s; its SLO is 1 s).
              runbook_url: /consoles/runbooks.html#vllmttftp95high
"""


@pytest.mark.integration
def test_promtool_an_overridden_model_alerts_at_its_own_bound(monkeypatch, tmp_path):
    """big's SLO is 2.5 s (warning above 3.75 s): its 3 s p95 is quiet while the default model's 2 s
    warns; the embedding model has no TTFT SLO and never alerts."""
    promtool = require_binary("promtool")
    m = MIXIN.with_slo("big", ttft_p95_seconds=2.5).with_slo("embed", ttft_p95_seconds=None)
    monkeypatch.setattr(mixin, "MIXIN", m)
    (tmp_path / "vllm.yml").write_text(rules.render()["vllm.yml"])
    (tmp_path / "test.yml").write_text(OVERRIDE_TEST.format(rules="vllm.yml"))
    result = subprocess.run([promtool, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr



GENERATIVE_TEST = """
rule_files: [vllm.yml, insights.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # an embedding model that generates no tokens, with slow "first tokens" (5-10 s)
      - series: 'vllm:generation_tokens_total{model_name="embed"}'
        values: '0x70'
      - series: 'model_name:vllm_time_to_first_token_seconds:p95_5m{model_name="embed"}'
        values: '9x70'
      - series: 'vllm:time_to_first_token_seconds_bucket{model_name="embed", le="1.0"}'
        values: '0x70'
      - series: 'vllm:time_to_first_token_seconds_bucket{model_name="embed", le="+Inf"}'
        values: '0+60x70'
      - series: 'vllm:time_to_first_token_seconds_count{model_name="embed"}'
        values: '0+60x70'
    promql_expr_test:
      - expr: count by (alertname, severity) (ALERTS{alertstate="firing", model_name="embed"})
        eval_time: 70m
        exp_samples: %s
"""


@pytest.mark.integration
@pytest.mark.parametrize("override", [False, True], ids=["default", "override"])
def test_promtool_an_embedding_model_has_no_token_slo_unless_an_override_gives_it_one(monkeypatch, tmp_path, override):
    """The default TTFT SLO covers models that generate tokens (mixin.GENERATIVE): an embedding
    model's slow "TTFT" samples stay quiet; an override naming it makes them count."""
    promtool = require_binary("promtool")
    m = MIXIN.with_slo("embed", ttft_p95_seconds=1.0) if override else MIXIN
    monkeypatch.setattr(mixin, "MIXIN", m)
    rendered = rules.render()
    for name in ("vllm.yml", "insights.yml"):
        (tmp_path / name).write_text(rendered[name])
    firing = [("TtftSloFastBurn", "critical"), ("TtftSloSlowBurn", "warning"), ("VllmTtftP95High", "critical"),
              ("VllmTtftP95High", "warning")]
    samples = "".join(f"\n          - labels: '{{alertname=\"{a}\", severity=\"{s}\"}}'\n            value: 1"
                      for a, s in firing) if override else " []"
    (tmp_path / "test.yml").write_text(GENERATIVE_TEST % samples)
    result = subprocess.run([promtool, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
