"""``llmwatch top``'s pure parts: query answers -> snapshot -> text, with hand-written answers.

The rule throughout: a series Prometheus does not have is None and "–", never 0.
"""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from llmwatch.exporters.insights.prometheus import QueryFailed, Sample
from llmwatch.tools.top import live, render, snapshot
from llmwatch.tools.top.cli import main
from llmwatch.tools.top.source import Reader, Target, Unavailable, read_env_file, resolve, url_from_env
from tests.fakes.prometheus import FakePrometheus

NOW = 1_795_000_000.0


def s(value: float, **labels) -> Sample:
    return Sample(labels, value)


def answers(**over) -> dict:
    """A node: llama on two containers (one down), every query answered; ``over`` replaces some."""
    base = {name: [] for name in snapshot.queries()}
    base.update(
        instances=[s(1, container="vllm-a", model_name="llama"), s(1, container="vllm-b", model_name="llama")],
        vllm_up=[s(1, container="vllm-a"), s(0, container="vllm-b")],
        requests=[s(3.0, model_name="llama")],
        ttft_p95=[s(0.42, model_name="llama")],
        tpot_p95=[s(0.12, model_name="llama")],
        error_ratio=[s(0.02, model_name="llama")],
        waiting=[s(0.0, model_name="llama")],
        slo_ttft=[s(1.0, model_name="default")],
        slo_tpot=[s(0.1, model_name="default")],
        slo_error=[s(0.001, model_name="default")],
        gpu_up=[s(1, gpu="0"), s(1, gpu="10"), s(1, gpu="2")],
        gpu_utilization=[s(0.5, gpu="0"), s(0.0, gpu="10"), s(0.25, gpu="2")],
        heartbeat=[s(95.0)],
    )
    base.update(over)
    return base


def model(snap: snapshot.Snapshot, name: str) -> snapshot.Model:
    return next(m for m in snap.models if m.model == name)


def test_missing_series_are_none_and_a_dash_never_zero():
    snap = snapshot.build(answers(), {"alerts": []}, NOW, "http://p")
    llama = model(snap, "llama")
    # no KV-cache, token, cost or advice series at all: None
    assert (llama.kv_cache_usage_ratio, llama.tokens_per_second, llama.dollars_per_hour, llama.advice) == \
        (None, None, None, None)
    assert llama.waiting_requests == 0.0  # a real zero stays zero
    gpu = snap.gpus[0]
    assert gpu.temperature_celsius is None and gpu.memory_used_bytes is None and gpu.ecc_uncorrected is None
    text = _text(snap)
    row = next(line for line in text.splitlines() if "llama" in line)
    assert "–" in row and " 0 " in row  # KV cache and cost a dash, waiting a real 0
    assert json.loads(render.as_json(snap))["models"][0]["kv_cache_usage_ratio"] is None


def test_no_container_lifecycle_series_leaves_starting_and_exited_unknown():
    snap = snapshot.build(answers(), {}, NOW, "http://p")
    llama = model(snap, "llama")
    assert (llama.replicas_up, llama.replicas_total, llama.replicas_starting, llama.replicas_exited) == (1, 2, None, None)
    states = [s(1, container="vllm-a", state="running"), s(1, container="vllm-b", state="exited")]
    llama = model(snapshot.build(answers(container_state=states), {}, NOW, "http://p"), "llama")
    assert (llama.replicas_starting, llama.replicas_exited) == (0, 1)
    assert render.replicas(llama).plain == "1/2 (1 exited)"


def test_slo_default_override_and_override_without_a_latency_slo():
    slo = dict(slo_ttft=[s(1.0, model_name="default"), s(2.5, model_name="big")],
               slo_tpot=[s(0.1, model_name="default")],  # "embed" overrides and has no TPOT SLO
               slo_error=[s(0.001, model_name="default"), s(0.01, model_name="big"), s(0.001, model_name="embed")],
               requests=[s(1.0, model_name=m) for m in ("llama", "big", "embed")])
    snap = snapshot.build(answers(**slo), {}, NOW, "http://p")
    assert (model(snap, "llama").ttft_slo_seconds, model(snap, "big").ttft_slo_seconds) == (1.0, 2.5)
    assert model(snap, "big").tpot_slo_seconds is None  # big overrides without a TPOT value: none, not default
    assert model(snap, "embed").tpot_slo_seconds is None and model(snap, "embed").error_slo_ratio == 0.001
    assert model(snap, "big").error_slo_ratio == 0.01


def test_over_the_slo_is_red():
    snap = snapshot.build(answers(), {}, NOW, "http://p")
    llama = model(snap, "llama")
    assert render.against(llama.ttft_p95_seconds, llama.ttft_slo_seconds).plain == "420 ms / 1 s"
    assert "red" not in str(render.against(llama.ttft_p95_seconds, llama.ttft_slo_seconds).style)
    assert "red" in str(render.against(llama.tpot_p95_seconds, llama.tpot_slo_seconds).style)


def test_gpus_in_natural_order_with_trouble_and_holders():
    over = dict(gpu_xid=[s(60, gpu="2", xid="79"), s(30, gpu="2", xid="48")],
                gpu_ecc=[s(0, gpu="0"), s(3, gpu="2")],
                gpu_containers=[s(1e9, gpu="0", container="vllm-a")])
    snap = snapshot.build(answers(**over), {}, NOW, "http://p")
    assert [g.gpu for g in snap.gpus] == ["0", "2", "10"]
    g0, g2, g10 = snap.gpus
    assert render.trouble(g0).plain == "ok" and g0.containers == ["vllm-a"]
    assert render.trouble(g2).plain == "xid 48,79 ecc 3"
    assert render.trouble(g10).plain == "–"  # no ECC series: unknown, not "ok"


def test_two_hosts_keep_their_gpu_0_and_vllm_a_apart():
    """An agent host joins with the same GPU index and container name: two rows each, named host/value,
    and each model's replicas count both hosts' containers."""
    over = dict(instances=[s(1, container="vllm-a", model_name="llama", host="gpu-1"),
                           s(1, container="vllm-a", model_name="llama", host="gpu-2")],
                vllm_up=[s(1, container="vllm-a", host="gpu-1"), s(0, container="vllm-a", host="gpu-2")],
                gpu_up=[s(1, gpu="0", host="gpu-1"), s(1, gpu="0", host="gpu-2")],
                gpu_utilization=[s(0.5, gpu="0", host="gpu-1"), s(0.9, gpu="0", host="gpu-2")],
                gpu_containers=[s(1e9, gpu="0", container="vllm-a", host="gpu-2")])
    snap = snapshot.build(answers(**over), {}, NOW, "http://p")
    llama = model(snap, "llama")
    assert llama.containers == ["gpu-1/vllm-a", "gpu-2/vllm-a"]
    assert (llama.replicas_up, llama.replicas_total) == (1, 2)
    assert [(g.gpu, g.utilization_ratio, g.containers) for g in snap.gpus] == [
        ("gpu-1/0", 0.5, []), ("gpu-2/0", 0.9, ["gpu-2/vllm-a"])]
    assert "on (container, host)" in snapshot.queries()["error_ratio"]


def test_alerts_firing_worst_then_oldest_watchdog_hidden():
    data = {"alerts": [
        {"labels": {"alertname": "Watchdog", "severity": "none"}, "state": "firing", "activeAt": "2026-11-12T10:00:00Z"},
        {"labels": {"alertname": "ExporterDown", "severity": "critical", "job": "node", "instance": "h:9100"},
         "state": "firing", "activeAt": "2026-11-12T10:04:30Z"},
        {"labels": {"alertname": "VllmQueueGrowing", "severity": "warning", "container": "vllm-a", "job": "vllm"},
         "state": "firing", "activeAt": "2026-11-12T10:00:00Z", "annotations": {"summary": "queue"}},
        {"labels": {"alertname": "GpuLost", "severity": "critical", "gpu": "3"}, "state": "pending",
         "activeAt": "2026-11-12T10:00:00Z"},
        {"labels": {"alertname": "TtftHigh", "severity": "critical", "model_name": "llama"}, "state": "firing",
         "activeAt": "2026-11-12T10:04:00.500000123Z"},
    ]}
    now = 1_794_477_900.0  # 2026-11-12T10:05:00Z
    got = snapshot.alerts(data, now)
    assert [(a.alertname, a.severity, a.subject) for a in got] == [
        ("TtftHigh", "critical", "model_name=llama"), ("ExporterDown", "critical", "job=node instance=h:9100"),
        ("VllmQueueGrowing", "warning", "container=vllm-a")]
    assert got[0].age_seconds == pytest.approx(59.5) and got[2].age_seconds == pytest.approx(300)
    assert render.age(got[2].age_seconds) == "5m00s"


def test_a_refused_query_blanks_its_fields_and_is_named():
    snap = snapshot.build(answers(ttft_p95=QueryFailed("query_error", "bad_data: parse error")), {}, NOW, "http://p")
    assert model(snap, "llama").ttft_p95_seconds is None
    assert snap.problems == ["ttft_p95: bad_data: parse error"]


def test_sort_and_filter():
    over = dict(instances=[s(1, container="vllm-a", model_name="llama"), s(1, container="vllm-q", model_name="qwen")],
                requests=[s(3.0, model_name="llama"), s(5.0, model_name="qwen")])
    snap = snapshot.build(answers(**over), {}, NOW, "http://p")
    view = render.View()
    assert _order(snap, view) == ["llama", "qwen"]
    view.next_sort()  # requests/s, highest first
    assert _order(snap, view) == ["qwen", "llama"]
    view.filter = "VLLM-A"  # by container, any case
    assert _order(snap, view) == ["llama"]
    view.next_pane()
    assert view.pane == "models" and "GPUs (sort" not in _text(snap, view)


def _order(snap, view) -> list[str]:
    table = render.models_table(snap, view)
    return list(table.columns[0]._cells)


def _text(snap, view=None) -> str:
    console = Console(width=220, record=True, color_system=None)
    console.print(render.snapshot_view(snap, view or render.View()))
    return console.export_text()


def test_settings_from_env_file(tmp_path, monkeypatch):
    monkeypatch.delenv("PROMETHEUS_PASSWORD", raising=False)
    env = tmp_path / ".env"
    env.write_text("# comment\nPROMETHEUS_PASSWORD=first\nPROMETHEUS_PASSWORD='s3cret'\n"
                   "LLMWATCH_PUBLISH_ADDRESS=0.0.0.0\nPROMETHEUS_PORT=24001\n")
    assert read_env_file(env)["PROMETHEUS_PASSWORD"] == "s3cret"
    target = resolve(None, None, None, env)
    assert target == Target("http://127.0.0.1:24001", "llmwatch", "s3cret")
    assert url_from_env({"LLMWATCH_PUBLISH_ADDRESS": "10.0.0.5"}) == "http://10.0.0.5:23001"
    assert url_from_env({"LLMWATCH_PUBLISH_ADDRESS": "::1"}) == "http://[::1]:23001"
    password = tmp_path / "pw"
    password.write_text("from-file\n")
    assert resolve("http://other:9090/", "", password, env) == Target("http://other:9090", "", "from-file")


class AlertingPrometheus(FakePrometheus):
    """The canned queries plus /api/v1/alerts."""

    def answer(self, path, headers):
        if path.startswith("/api/v1/alerts"):
            return 200, "application/json", b'{"status": "success", "data": {"alerts": []}}'
        return super().answer(path, headers)


def test_reader_reads_and_names_a_wrong_password():
    rows = {snapshot.queries()["requests"]: [({"model_name": "llama"}, 2.0)]}
    with AlertingPrometheus(rows, password="right-one") as prom:
        reader = Reader(Target(prom.url, "llmwatch", "right-one"), clock=lambda: NOW)
        try:
            snap = reader.read()
        finally:
            reader.close()
        assert snap.time == NOW and model(snap, "llama").requests_per_second == 2.0
        reader = Reader(Target(prom.url, "llmwatch", "wrong-one"))
        try:
            with pytest.raises(Unavailable, match=r"^Prometheus refused the password \(HTTP 401\) at http"):
                reader.read()
        finally:
            reader.close()


def test_something_that_is_not_prometheus_is_one_line(capsys):
    class NotPrometheus(FakePrometheus):
        def answer(self, path, headers):
            return 200, "text/html", b"<html>Grafana</html>"

    with NotPrometheus({}) as server:
        assert main(["--once", "--url", server.url, "--user", ""]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{server.url} does not answer as Prometheus does" in err


def test_the_live_view_keeps_the_last_snapshot_under_the_error_line_and_recovers():
    good = snapshot.build(answers(), {}, NOW, "http://p")
    results = [good, Unavailable("cannot reach Prometheus at http://p: refused"), good]

    class Flaky:
        url = "http://p"

        def read(self):
            result = results.pop(0)
            if isinstance(result, Exception):
                raise result
            return result

    refresher = live.Refresher(Flaky(), 1.0, wake_fd=-1)
    view = render.View()
    refresher.refresh()
    assert "llama" in _text_of(live.screen(refresher, view, False, 1.0))
    refresher.refresh()
    text = _text_of(live.screen(refresher, view, False, 1.0))
    assert text.startswith("cannot reach Prometheus at http://p: refused (retrying every 1s; last answer")
    assert "llama" in text  # the last data stays under the line
    refresher.refresh()
    assert refresher.error is None and "retrying" not in _text_of(live.screen(refresher, view, False, 1.0))


def _text_of(renderable) -> str:
    console = Console(width=220, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()
