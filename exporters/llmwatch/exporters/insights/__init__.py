"""Insights exporter (``llmwatch insights``, port 9904): what PromQL alone cannot derive.

The price table and SLO targets from settings as metrics (one source of truth for rules and
dashboards), which model holds which GPU, scale-up / scale-down advice with hysteresis, and a
capacity forecast per model from the TTFT simulator fed with the model's observed workload.
It reads the other exporters' series back from Prometheus' HTTP API.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmwatch.core.checks import url_setting
from llmwatch.core.exporter import ExporterSpec
from llmwatch.core.settings import Settings, setting

DESCRIPTION = ("GPU prices and SLO targets as metrics, GPU-to-model attribution, scale-up/scale-down advice "
               "per model, and a capacity forecast (max request rate meeting the TTFT SLO) from a queueing "
               "simulation of each model's observed workload. Reads Prometheus' HTTP API.")



def parse_prices(value) -> tuple[tuple[str, float], ...]:
    """``[{match = "H200", dollars_per_hour = 6.0}, ...]`` -> (("h200", 6.0), ...), first match wins."""
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"must be a list of {{match = \"H100\", dollars_per_hour = 5.0}} tables, got {value!r}")
    out = []
    for i, item in enumerate(value):
        item = {str(k).lower(): v for k, v in item.items()} if isinstance(item, dict) else item
        if not isinstance(item, dict) or set(item) != {"match", "dollars_per_hour"}:
            raise ValueError(f"item {i}: must be a table with exactly match and dollars_per_hour, got {item!r}")
        match, price = item["match"], item["dollars_per_hour"]
        if not isinstance(match, str) or not match.strip():
            raise ValueError(f"item {i}: match must be a non-empty part of the GPU name, got {match!r}")
        if isinstance(price, bool) or not isinstance(price, (int, float)) or not 0 <= price < 10_000:
            raise ValueError(f"item {i}: dollars_per_hour must be a number in [0, 10000), got {price!r}")
        out.append((match.strip().lower(), float(price)))
    return tuple(out)


@dataclass(frozen=True)
class InsightsSettings:
    port: int = setting(min=1, max=65535)
    prometheus_url: str = setting(check=url_setting("http://prometheus:23001"), help="Prometheus' base URL")
    prometheus_user: str = setting(help="basic-auth user; empty for none")
    prometheus_password: str = setting(secret=True, help="basic-auth password; environment only")
    cache_seconds: float = setting(min=0, max=3600, help="Prometheus is queried again after this long")
    gpu_prices: list = setting(check=parse_prices, help="$/GPU-hour by part of the GPU name; first match wins")
    default_dollars_per_hour: float = setting(min=0, max=10_000, help="price of a GPU no entry matches")
    heartbeat_min_bpm: float = setting(min=1, max=1000)
    heartbeat_max_bpm: float = setting(min=1, max=1000)
    scale_up_kv_cache: float = setting(min=0, max=1)
    scale_up_queue_per_replica: float = setting(min=0, max=100_000)
    scale_up_utilization: float = setting(min=0, max=1)
    scale_down_utilization: float = setting(min=0, max=1)
    scale_down_kv_cache: float = setting(min=0, max=1)
    advice_window_seconds: float = setting(min=60, max=7 * 86400, help="how long low load must last")
    advice_hold_seconds: float = setting(min=0, max=86400, help="an advice stands at least this long")
    advice_hysteresis: float = setting(min=0, max=0.9, help="leave an advice only this far past its threshold")
    forecast: bool = setting(help="run the capacity forecast")
    forecast_interval_seconds: float = setting(min=10, max=86400)
    forecast_window_seconds: float = setting(min=300, max=7 * 86400, help="workload fitted over this window")
    forecast_slots_per_replica: int = setting(min=0, max=4096,
                                              help="requests a replica serves at once; 0: from the KV cache")
    forecast_max_slots_per_replica: int = setting(min=1, max=4096, help="at most this many (vLLM's max_num_seqs)")
    forecast_requests: int = setting(min=200, max=1_000_000, help="requests per simulation")



def build(settings: Settings[InsightsSettings]):
    from llmwatch.exporters.insights.collector import InsightsExporter
    from llmwatch.exporters.insights.prometheus import PrometheusSource

    insights: InsightsSettings = settings.exporter
    source = PrometheusSource(insights.prometheus_url, insights.prometheus_user, insights.prometheus_password,
                              timeout=settings.common.scrape_budget_seconds)
    return InsightsExporter(source, insights)


SPEC = ExporterSpec(name="insights", summary="prices, SLOs, GPU attribution, scaling advice, capacity forecast",
                    settings=InsightsSettings, description=DESCRIPTION, build=build)
