"""Thresholds the boards draw, from the mixin the alert rules are generated from, so a dashed line
and the alert it stands for cannot disagree. Read at build time (boards are built by
``llmwatch dashboards``), for the default SLO: boards show every model together."""

from __future__ import annotations

from llmwatch import mixin
from llmwatch.mixin import percent, seconds
from llmwatch.tools.dashboards.grafana import BAD, OK, WARN, steps


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
