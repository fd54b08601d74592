"""``llmwatch top --once --json`` compared field by field with PromQL's own answers at the same instant.

Shared by the small known node (tests/top) and the stack test (tests/stack): the expressions
here are written out from the rules' recorded series, as a person checking top by hand would
query them in Prometheus' UI.
"""

from __future__ import annotations

from datetime import datetime

import pytest

PER_MODEL = "* on (container) group_left (model_name) llmwatch_vllm_instance_info"

MODEL_FIELDS = {
    "requests_per_second": "model_name:vllm_requests:rate5m",
    "ttft_p95_seconds": "model_name:vllm_time_to_first_token_seconds:p95_5m",
    "tpot_p95_seconds": "model_name:vllm_inter_token_latency_seconds:p95_5m",
    "tokens_per_second": "model_name:vllm_tokens:rate5m",
    # the recorded per-container 5xx share, weighted by each container's requests
    "error_ratio": "sum by (model_name) (container:vllm_http_errors:ratio_rate5m * container:vllm_http_requests:rate5m"
                   f" {PER_MODEL}) / sum by (model_name) (container:vllm_http_requests:rate5m {PER_MODEL})",
    "waiting_requests": "sum by (model_name) (vllm:num_requests_waiting)",
    "kv_cache_usage_ratio": "max by (model_name) (vllm:kv_cache_usage_perc)",
    "dollars_per_hour": "model_name:llmwatch_gpu_cost_dollars_per_hour:allocation",
    "dollars_per_million_tokens": "model_name:llmwatch_cost_dollars_per_million_tokens:allocation",
    "replicas_total": "count by (model_name) (llmwatch_vllm_instance_info)",
    "replicas_up": f"count by (model_name) ((llmwatch_vllm_up == 1) {PER_MODEL})",
}
# counted per model only where Prometheus has container-lifecycle series
LIFECYCLE_FIELDS = {
    "replicas_starting": f"count by (model_name) ((llmwatch_vllm_container_state{{state='starting'}} > 0) {PER_MODEL})",
    "replicas_exited": f"count by (model_name) ((llmwatch_vllm_container_state{{state='exited'}} > 0) {PER_MODEL})",
}
COUNTS = ("replicas_up", "replicas_starting", "replicas_exited")
GPU_FIELDS = {
    "utilization_ratio": "llmwatch_gpu_utilization_ratio",
    "memory_used_bytes": "llmwatch_gpu_memory_used_bytes",
    "memory_total_bytes": "llmwatch_gpu_memory_total_bytes",
    "temperature_celsius": "llmwatch_gpu_temperature_celsius",
    "power_watts": "llmwatch_gpu_power_watts",
    "ecc_uncorrected": "llmwatch_gpu_ecc_volatile_errors_total{error='uncorrected'}",
}


def _values(result: list[dict], label: str) -> dict[str, float]:
    return {r["metric"][label]: float(r["value"][1]) for r in result
            if label in r["metric"] and r["value"][1] not in ("NaN", "+Inf", "-Inf")}


def firing(get) -> list[dict]:
    """``/api/v1/alerts``' firing alerts as top shows them (the Watchdog's severity "none" left out)."""
    return [a for a in get("/api/v1/alerts").json()["data"]["alerts"]
            if a["state"] == "firing" and a["labels"].get("severity") != "none"]


def slo(query, at: float, metric: str, model: str) -> float | None:
    """A model's SLO as the insights exporter serves it: its own row if it has any SLO row, else the default."""
    own = query(f'{{__name__=~"llmwatch_insights_slo_.*", model_name="{model}"}}', at)
    row = model if own else "default"
    return _values(query(f'{metric}{{model_name="{row}"}}', at), "model_name").get(row)


def assert_equals_promql(snap: dict, query, at: float, alerts: list[dict]) -> None:
    """Every field of ``snap`` (top's JSON) equals PromQL's answer at ``at``; missing is null on both sides."""
    assert snap["problems"] == []
    lifecycle = bool(query("llmwatch_vllm_container_state", at))
    fields = {**MODEL_FIELDS, **(LIFECYCLE_FIELDS if lifecycle else {})}
    models = {m["model"]: m for m in snap["models"]}
    assert set(_values(query("llmwatch_vllm_instance_info", at), "model_name")) <= set(models)
    for field, expr in fields.items():
        expected = _values(query(expr, at), "model_name")
        for name, model in models.items():
            if field in COUNTS and name not in expected and model["replicas_total"]:
                expected[name] = 0.0  # count() of nothing is no series; top counts the model's replicas: 0
            assert model[field] == expected.get(name), (field, name, model[field], expected)
    if not lifecycle:
        assert all(m["replicas_starting"] is None and m["replicas_exited"] is None for m in models.values())
    for name, model in models.items():
        for field, metric in (("ttft_slo_seconds", "llmwatch_insights_slo_ttft_p95_seconds"),
                              ("tpot_slo_seconds", "llmwatch_insights_slo_tpot_p95_seconds"),
                              ("error_slo_ratio", "llmwatch_insights_slo_error_ratio")):
            assert model[field] == slo(query, at, metric, name), (field, name)
        advice = [r["metric"] for r in query(f'llmwatch_insights_advice_info{{model_name="{name}"}}', at)]
        assert model["advice"] == (advice[0]["advice"] if advice else None), name

    gpus = {g["gpu"]: g for g in snap["gpus"]}
    assert set(_values(query("llmwatch_gpu_up", at), "gpu")) <= set(gpus)
    for field, expr in GPU_FIELDS.items():
        expected = _values(query(expr, at), "gpu")
        assert {g: gpus[g][field] for g in gpus} == {g: expected.get(g) for g in gpus}, field
    heartbeat = query("cluster:llmwatch_heartbeat_bpm", at)
    assert snap["heartbeat_bpm"] == (float(heartbeat[0]["value"][1]) if heartbeat else None)

    expected_alerts = sorted((a["labels"]["alertname"], a["labels"]["severity"], a["activeAt"]) for a in alerts)
    assert sorted((a["alertname"], a["severity"], a["active_at"]) for a in snap["alerts"]) == expected_alerts
    for alert in snap["alerts"]:
        started = datetime.fromisoformat(alert["active_at"].replace("Z", "+00:00")).timestamp()
        assert alert["age_seconds"] == pytest.approx(max(0.0, snap["time"] - started), abs=1e-6)
