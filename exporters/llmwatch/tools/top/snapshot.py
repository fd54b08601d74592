"""From query answers to one snapshot of the stack: per model, per GPU, firing alerts.

Pure functions, no I/O: :func:`build` takes the answers of :func:`queries` (as the Prometheus
reader returns them) and the data of ``/api/v1/alerts``. The arithmetic lives in the recording
rules (config/prometheus/rules): what is read here is their output, joined by label. A value
Prometheus has no series for is ``None`` (shown as "–"), never 0: no traffic, no insights
exporter, or an exporter that is down must not read as a healthy zero.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from llmwatch.core.scrape import natural_key
from llmwatch.exporters.insights.prometheus import QueryFailed, Sample
from llmwatch.mixin import DEFAULT_MODEL

# vLLM's HTTP counters carry no model label: a container's series joined to the model it serves.
# The error ratio per model is each container's recorded 5xx share weighted by its requests.
_PER_MODEL = "* on (container, host) group_left (model_name) llmwatch_vllm_instance_info"
# XIDs younger than this show as GPU trouble (the XID alerts look back 10 minutes; an hour keeps
# an XID in sight at 3 a.m. after its alert resolved).
XID_RECENT_SECONDS = 3600
# Severity "none" is the Watchdog (always firing, by design): not trouble, so not shown.
HIDDEN_SEVERITIES = ("none",)
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


def queries() -> dict[str, str]:
    """Name -> PromQL, one instant query each: recorded series where the rules define them."""
    return {
        # per container: which model it serves, whether its exporter scrape works, its lifecycle
        "instances": "llmwatch_vllm_instance_info",
        "vllm_up": "llmwatch_vllm_up",
        "container_state": "llmwatch_vllm_container_state > 0",
        # per model (recording rules)
        "requests": "model_name:vllm_requests:rate5m",
        "ttft_p95": "model_name:vllm_time_to_first_token_seconds:p95_5m",
        "tpot_p95": "model_name:vllm_inter_token_latency_seconds:p95_5m",
        "tokens": "model_name:vllm_tokens:rate5m",
        "error_ratio": (f"sum by (model_name) (container:vllm_http_errors:ratio_rate5m"
                        f" * container:vllm_http_requests:rate5m {_PER_MODEL})"
                        f" / sum by (model_name) (container:vllm_http_requests:rate5m {_PER_MODEL})"),
        "waiting": "sum by (model_name) (vllm:num_requests_waiting)",
        "kv_cache": "max by (model_name) (vllm:kv_cache_usage_perc)",
        "dollars_per_hour": "model_name:llmwatch_gpu_cost_dollars_per_hour:allocation",
        "dollars_per_mtok": "model_name:llmwatch_cost_dollars_per_million_tokens:allocation",
        "advice": "llmwatch_insights_advice_info",
        # the SLOs as the insights exporter serves them from the mixin (model_name="default": the rest)
        "slo_ttft": "llmwatch_insights_slo_ttft_p95_seconds",
        "slo_tpot": "llmwatch_insights_slo_tpot_p95_seconds",
        "slo_error": "llmwatch_insights_slo_error_ratio",
        # per GPU
        "gpu_info": "llmwatch_gpu_info",
        "gpu_up": "llmwatch_gpu_up",
        "gpu_utilization": "llmwatch_gpu_utilization_ratio",
        "gpu_memory_used": "llmwatch_gpu_memory_used_bytes",
        "gpu_memory_total": "llmwatch_gpu_memory_total_bytes",
        "gpu_temperature": "llmwatch_gpu_temperature_celsius",
        "gpu_power": "llmwatch_gpu_power_watts",
        "gpu_xid": f"time() - llmwatch_gpu_xid_last_timestamp_seconds < {XID_RECENT_SECONDS}",
        "gpu_ecc": 'llmwatch_gpu_ecc_volatile_errors_total{error="uncorrected"}',
        "gpu_containers": "llmwatch_gpu_container_memory_used_bytes > 0",
        "heartbeat": "cluster:llmwatch_heartbeat_bpm",
    }


@dataclass
class Model:
    model: str
    containers: list[str] = field(default_factory=list)
    replicas_up: int | None = None
    replicas_total: int | None = None
    replicas_starting: int | None = None  # None: no container-lifecycle series in Prometheus
    replicas_exited: int | None = None
    requests_per_second: float | None = None
    ttft_p95_seconds: float | None = None
    ttft_slo_seconds: float | None = None
    tpot_p95_seconds: float | None = None
    tpot_slo_seconds: float | None = None
    error_ratio: float | None = None
    error_slo_ratio: float | None = None
    waiting_requests: float | None = None
    kv_cache_usage_ratio: float | None = None
    tokens_per_second: float | None = None
    dollars_per_hour: float | None = None
    dollars_per_million_tokens: float | None = None
    advice: str | None = None
    advice_reason: str | None = None


@dataclass
class Gpu:
    gpu: str
    name: str | None = None
    up: bool | None = None
    utilization_ratio: float | None = None
    memory_used_bytes: float | None = None
    memory_total_bytes: float | None = None
    temperature_celsius: float | None = None
    power_watts: float | None = None
    xid_recent: list[str] = field(default_factory=list)  # XID codes seen within XID_RECENT_SECONDS
    ecc_uncorrected: float | None = None  # uncorrected ECC errors since the driver loaded
    containers: list[str] = field(default_factory=list)


@dataclass
class Alert:
    alertname: str
    severity: str
    active_at: str
    age_seconds: float | None
    subject: str  # the labels that say what fires: model, container, GPU, job...
    summary: str


@dataclass
class Snapshot:
    time: float  # unix time the queries were evaluated at
    prometheus: str
    heartbeat_bpm: float | None
    models: list[Model]
    gpus: list[Gpu]
    alerts: list[Alert]
    problems: list[str] = field(default_factory=list)  # queries Prometheus refused (their fields are "–")


Answers = dict[str, "list[Sample] | QueryFailed"]


def _samples(answers: Answers, name: str) -> list[Sample]:
    got = answers.get(name)
    return [] if got is None or isinstance(got, QueryFailed) else got


# Labels that name a thing on one machine: with several hosts, two can both have GPU 0 or a container
# vllm-a, so these are shown (and kept apart) as host/value; with one host (no host label), as value.
ON_A_HOST = ("container", "gpu")


def _key(labels: dict[str, str], label: str) -> str:
    value = labels[label]
    return f"{labels['host']}/{value}" if label in ON_A_HOST and labels.get("host") else value


def _by(answers: Answers, name: str, label: str) -> dict[str, float]:
    return {_key(s.labels, label): s.value for s in _samples(answers, name) if label in s.labels}


def _slo(values: dict[str, float], overridden: set[str], model: str) -> float | None:
    """A model's own SLO if it has an override (an override without this SLO: none), else the default."""
    if model in overridden:
        return values.get(model)
    return values.get(DEFAULT_MODEL)


def _models(answers: Answers) -> list[Model]:
    container_model = {_key(s.labels, "container"): s.labels["model_name"] for s in _samples(answers, "instances")
                       if "container" in s.labels and "model_name" in s.labels}
    up = _by(answers, "vllm_up", "container")
    states_known = bool(_samples(answers, "container_state"))
    state: dict[str, str] = {}
    for s in _samples(answers, "container_state"):
        container = s.labels.get("container") and _key(s.labels, "container")
        if container and "state" in s.labels:
            state[container] = s.labels["state"]
            if s.labels.get("model_name"):
                container_model.setdefault(container, s.labels["model_name"])
    per_model = {key: _by(answers, key, "model_name") for key in (
        "requests", "ttft_p95", "tpot_p95", "tokens", "error_ratio", "waiting", "kv_cache",
        "dollars_per_hour", "dollars_per_mtok")}
    advice = {s.labels["model_name"]: s.labels for s in _samples(answers, "advice") if "model_name" in s.labels}
    slos = {key: _by(answers, key, "model_name") for key in ("slo_ttft", "slo_tpot", "slo_error")}
    # Every override serves an error SLO (never None): the models with their own SLO row.
    overridden = set(slos["slo_error"]) - {DEFAULT_MODEL}

    names = set(container_model.values()) | set(advice)
    for values in per_model.values():
        names |= set(values)
    containers: dict[str, list[str]] = defaultdict(list)
    for container, model in container_model.items():
        containers[model].append(container)

    out = []
    for name in sorted(names):
        mine = sorted(containers.get(name, []), key=natural_key)
        m = Model(name, mine)
        if mine:
            m.replicas_total = len(mine)
            m.replicas_up = sum(1 for c in mine if up.get(c) == 1)
            if states_known:
                m.replicas_starting = sum(1 for c in mine if state.get(c) == "starting")
                m.replicas_exited = sum(1 for c in mine if state.get(c) == "exited")
        m.requests_per_second = per_model["requests"].get(name)
        m.ttft_p95_seconds = per_model["ttft_p95"].get(name)
        m.tpot_p95_seconds = per_model["tpot_p95"].get(name)
        m.tokens_per_second = per_model["tokens"].get(name)
        m.error_ratio = per_model["error_ratio"].get(name)
        m.waiting_requests = per_model["waiting"].get(name)
        m.kv_cache_usage_ratio = per_model["kv_cache"].get(name)
        m.dollars_per_hour = per_model["dollars_per_hour"].get(name)
        m.dollars_per_million_tokens = per_model["dollars_per_mtok"].get(name)
        m.ttft_slo_seconds = _slo(slos["slo_ttft"], overridden, name)
        m.tpot_slo_seconds = _slo(slos["slo_tpot"], overridden, name)
        m.error_slo_ratio = _slo(slos["slo_error"], overridden, name)
        if name in advice:
            m.advice = advice[name].get("advice") or None
            m.advice_reason = advice[name].get("reason") or None
        out.append(m)
    return out


def _gpus(answers: Answers) -> list[Gpu]:
    values = {key: _by(answers, key, "gpu") for key in (
        "gpu_up", "gpu_utilization", "gpu_memory_used", "gpu_memory_total", "gpu_temperature", "gpu_power", "gpu_ecc")}
    info = {_key(s.labels, "gpu"): s.labels for s in _samples(answers, "gpu_info") if "gpu" in s.labels}
    xids: dict[str, set[str]] = defaultdict(set)
    for s in _samples(answers, "gpu_xid"):
        if "gpu" in s.labels and "xid" in s.labels:
            xids[_key(s.labels, "gpu")].add(s.labels["xid"])
    holders: dict[str, set[str]] = defaultdict(set)
    for s in _samples(answers, "gpu_containers"):
        if "gpu" in s.labels and "container" in s.labels:
            holders[_key(s.labels, "gpu")].add(_key(s.labels, "container"))
    names = set(info) | set(xids) | set(holders)
    for per_gpu in values.values():
        names |= set(per_gpu)
    out = []
    for gpu in sorted(names, key=natural_key):
        up = values["gpu_up"].get(gpu)
        out.append(Gpu(
            gpu=gpu, name=info.get(gpu, {}).get("name") or None, up=None if up is None else up == 1,
            utilization_ratio=values["gpu_utilization"].get(gpu),
            memory_used_bytes=values["gpu_memory_used"].get(gpu),
            memory_total_bytes=values["gpu_memory_total"].get(gpu),
            temperature_celsius=values["gpu_temperature"].get(gpu), power_watts=values["gpu_power"].get(gpu),
            xid_recent=sorted(xids.get(gpu, ()), key=natural_key), ecc_uncorrected=values["gpu_ecc"].get(gpu),
            containers=sorted(holders.get(gpu, ()), key=natural_key)))
    return out


def _parse_time(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (TypeError, ValueError):
        return None


# What an alert is about, in this order; the scrape target (job, instance) only when nothing else says it.
SUBJECT_LABELS = ("model_name", "container", "gpu", "xid", "requested_model", "target")
TARGET_LABELS = ("job", "instance")


def alerts(data: object, now: float) -> list[Alert]:
    """Firing alerts from ``/api/v1/alerts``' data, worst first, then oldest first."""
    items = data.get("alerts", []) if isinstance(data, dict) else []
    out = []
    for item in items:
        if not isinstance(item, dict) or item.get("state") != "firing":
            continue
        labels = item.get("labels") if isinstance(item.get("labels"), dict) else {}
        severity = str(labels.get("severity", ""))
        if severity in HIDDEN_SEVERITIES:
            continue
        active_at = str(item.get("activeAt", ""))
        started = _parse_time(active_at)
        subject = " ".join(f"{k}={labels[k]}" for k in SUBJECT_LABELS if labels.get(k)) or \
            " ".join(f"{k}={labels[k]}" for k in TARGET_LABELS if labels.get(k))
        annotations = item.get("annotations") if isinstance(item.get("annotations"), dict) else {}
        out.append(Alert(alertname=str(labels.get("alertname", "?")), severity=severity or "?",
                         active_at=active_at, age_seconds=None if started is None else max(0.0, now - started),
                         subject=subject, summary=str(annotations.get("summary", ""))))
    out.sort(key=lambda a: (SEVERITY_ORDER.get(a.severity, 3), -(a.age_seconds or 0), a.alertname, a.subject))
    return out


def build(answers: Answers, alert_data: object, now: float, prometheus: str) -> Snapshot:
    """One snapshot. A query Prometheus refused leaves its fields "–" and is named in ``problems``."""
    problems = [f"{name}: {answer.detail}" for name, answer in answers.items()
                if isinstance(answer, QueryFailed)]
    heartbeat = [s.value for s in _samples(answers, "heartbeat")]
    return Snapshot(time=now, prometheus=prometheus,
                    heartbeat_bpm=heartbeat[0] if len(heartbeat) == 1 and math.isfinite(heartbeat[0]) else None,
                    models=_models(answers), gpus=_gpus(answers), alerts=alerts(alert_data, now),
                    problems=problems)
