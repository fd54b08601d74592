"""Thresholds the boards draw, from the mixin the alert rules are generated from, so a dashed line
and the alert it stands for cannot disagree. Read at build time (boards are built by
``llmwatch dashboards``), for the default SLO; panels that show models one by one draw each
model's own SLO instead (:func:`slo_lines`, from a recording rule built from the same mixin)."""

from __future__ import annotations

from llmwatch import mixin
from llmwatch.mixin import percent, seconds
from llmwatch.tools.dashboards.grafana import BAD, DASHED, OK, WARN, override, prom, steps


def _latency(slo: float | None, threshold) -> tuple[list, str]:
    if slo is None:
        return steps(OK), "no SLO is set"
    t = threshold(slo)
    return (steps(OK, (WARN, t.warning), (BAD, t.critical)),
            f"{seconds(t.warning)} warning and {seconds(t.critical)} critical, the alert limits for the "
            f"{seconds(slo)} SLO")


def ttft() -> tuple[list, str]:
    """Steps and words for TTFT p95 panels: the VllmTtftP95High limits of the default SLO."""
    m = mixin.MIXIN
    return _latency(m.slo.default.ttft_p95_seconds, m.ttft_threshold)


def inter_token() -> tuple[list, str]:
    m = mixin.MIXIN
    return _latency(m.slo.default.tpot_p95_seconds, m.tpot_threshold)


def kv_cache() -> tuple[list, str]:
    t = mixin.MIXIN.kv_cache_usage
    return steps(OK, (WARN, t.warning), (BAD, t.critical)), f"{t.warning:g} and {t.critical:g}"


def error_ratio(which: str = "vllm") -> tuple[list, str]:
    t = mixin.MIXIN.vllm_error_ratio if which == "vllm" else mixin.MIXIN.litellm_error_ratio
    return steps(OK, (WARN, t.warning), (BAD, t.critical)), f"{percent(t.warning)} and {percent(t.critical)}"


def filesystems() -> str:
    return mixin.MIXIN.filesystem_selector


def slo_lines(attribute: str, selector: str = "") -> tuple[dict, dict, str]:
    """A target drawing each model's own latency SLO ("SLO <model>", dashed by the override), and
    words for the description: per model, where fixed threshold lines could only show the default."""
    from llmwatch.tools.rules.insights import SLO_TARGETS

    m = mixin.MIXIN
    factor = m.ttft_alert_factor if attribute == "ttft_p95_seconds" else m.tpot_alert_factor
    target = prom(f"{SLO_TARGETS[attribute]}{{{selector}}}" if selector else SLO_TARGETS[attribute],
                  "SLO {{model_name}}")
    words = (f"each model's own SLO (mixin.py; none for a model without one, such as an embedding model); "
             f"its alert warns above {factor.warning:g}x and pages above {factor.critical:g}x")
    return target, override("SLO .*", custom__lineStyle=DASHED), words
