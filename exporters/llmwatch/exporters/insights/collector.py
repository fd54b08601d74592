"""The insights exporter's scrape: settings as metrics, attribution and advice from Prometheus.

Per scrape (at most every ``cache_seconds``) one batch of instant queries reads what the GPU and
vLLM exporters publish; attribution and advice are computed from it, the advice against the
previous one (hysteresis). The capacity forecast is slower (a bisection of simulations per model),
so it runs in its own thread every ``forecast_interval_seconds`` and scrapes serve its last result.
Prices and heartbeat bounds come from settings, SLO targets (per model) from the mixin that the
rules and dashboards are generated from; all are served even while Prometheus is unreachable.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily, Metric

from llmwatch import mixin
from llmwatch.core.cache import Expiring
from llmwatch.core.scrape import ExporterCollector, ScrapeErrors, natural_key
from llmwatch.exporters.insights import InsightsSettings, analysis, parse_prices
from llmwatch.exporters.insights.analysis import ADVICES, Advice, Gpu, Load, Server, Thresholds, Workload
from llmwatch.exporters.insights.prometheus import ERRORS, PrometheusSource, QueryFailed, Sample
from llmwatch.mixin import DEFAULT_MODEL, Slos
from llmwatch.queueing import capacity

log = logging.getLogger(__name__)

QUANTILE = 0.95  # the TTFT SLO is a p95


def queries(window_seconds: float) -> dict[str, str]:
    """What attribution and advice read, each query answered per model or per GPU."""
    w = f"{int(window_seconds)}s"
    return {
        "gpu_info": "llmwatch_gpu_info",
        "gpu_memory_total": "llmwatch_gpu_memory_total_bytes",
        "gpu_memory_used": "llmwatch_gpu_memory_used_bytes",
        "gpu_utilization": "avg_over_time(llmwatch_gpu_utilization_ratio[5m])",
        "gpu_utilization_window": f"avg_over_time(llmwatch_gpu_utilization_ratio[{w}])",
        "container_memory": "llmwatch_gpu_container_memory_used_bytes > 0",
        "instances": "llmwatch_vllm_instance_info",
        "container_gpu": "llmwatch_vllm_container_gpu",
        "kv_cache": "max by (model_name) (avg_over_time(vllm:kv_cache_usage_perc[5m]))",
        "kv_cache_window": f"max by (model_name) (max_over_time(vllm:kv_cache_usage_perc[{w}]))",
        "queue_per_replica": "sum by (model_name) (avg_over_time(vllm:num_requests_waiting[5m]))"
                             " / count by (model_name) (vllm:num_requests_waiting)",
        "ttft_burn_1h": "model_name:llmwatch_slo_ttft_burn_rate:1h",
    }


def forecast_queries(window_seconds: float) -> dict[str, str]:
    """A model's workload over the window: token quantiles, per-request speeds, the current rate."""
    w = f"{int(window_seconds)}s"
    out = {}
    for kind, family in (("prompt", "vllm:request_prompt_tokens"), ("output", "vllm:request_generation_tokens")):
        for q in ("50", "90"):
            out[f"{kind}_p{q}"] = (f"histogram_quantile(0.{q}, sum by (model_name, le) "
                                   f"(rate({family}_bucket[{w}])))")
    out["prefill_speed"] = (f"sum by (model_name) (rate(vllm:request_prompt_tokens_sum[{w}]))"
                            f" / sum by (model_name) (rate(vllm:request_prefill_time_seconds_sum[{w}]))")
    out["decode_speed"] = (f"sum by (model_name) (rate(vllm:request_generation_tokens_sum[{w}]))"
                           f" / sum by (model_name) (rate(vllm:request_decode_time_seconds_sum[{w}]))")
    out["request_rate"] = "sum by (model_name) (rate(vllm:e2e_request_latency_seconds_count[5m]))"
    out["replicas"] = "count by (model_name) (llmwatch_vllm_instance_info)"
    # Requests a replica could hold at once: those running / the share of KV cache they take.
    out["slots_by_kv"] = (f"avg by (model_name) (avg_over_time(vllm:num_requests_running[{w}])"
                          f" / avg_over_time(vllm:kv_cache_usage_perc[{w}]))")
    out["peak_running"] = f"max by (model_name) (max_over_time(vllm:num_requests_running[{w}]))"
    return out


def by_label(samples: list[Sample] | QueryFailed, label: str) -> dict[str, float]:
    if isinstance(samples, QueryFailed):
        return {}
    return {s.labels[label]: s.value for s in samples if label in s.labels}


@dataclass(frozen=True)
class Forecast:
    max_rate: float
    workload: Workload
    slots_per_replica: int


@dataclass
class Snapshot:
    ok: bool = False
    gpus: list[Gpu] = field(default_factory=list)
    servers: list[Server] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    replicas: dict[str, int] = field(default_factory=dict)


class InsightsExporter:
    def __init__(self, source: PrometheusSource, settings: InsightsSettings, *, slos: Slos | None = None,
                 clock: Callable[[], float] = time.time, start_forecast: bool = True):
        self.source = source
        self.settings = settings
        self.slos = slos if slos is not None else mixin.MIXIN.slo
        self.clock = clock
        self.prices = parse_prices(settings.gpu_prices)
        self.thresholds = Thresholds(
            up_kv_cache=settings.scale_up_kv_cache, up_queue_per_replica=settings.scale_up_queue_per_replica,
            up_utilization=settings.scale_up_utilization, down_utilization=settings.scale_down_utilization,
            down_kv_cache=settings.scale_down_kv_cache, hold_seconds=settings.advice_hold_seconds,
            hysteresis=settings.advice_hysteresis)
        self.collector = ExporterCollector("insights", self.scrape, reasons=ERRORS)
        self._lock = threading.Lock()
        self._snapshot = Snapshot()
        # one refresh at a time: concurrent scrapes wait for it and share its result
        self._refreshed = Expiring(settings.cache_seconds, time.monotonic)
        self._refresh_lock = threading.Lock()
        self._advice: dict[str, Advice] = {}
        self._forecasts: dict[str, Forecast] = {}
        self._forecast_at: float | None = None
        self._forecast_seconds: float | None = None
        self._stop = threading.Event()
        self._thread = None
        if settings.forecast and start_forecast:
            self._thread = threading.Thread(target=self._forecast_loop, name="insights-forecast", daemon=True)
            self._thread.start()

    # -- attribution and advice -------------------------------------------------------------

    def refresh(self, errors: ScrapeErrors) -> Snapshot:
        answers = self.source.query_all(queries(self.settings.advice_window_seconds))
        failed = {name: a for name, a in answers.items() if isinstance(a, QueryFailed)}
        for name, failure in failed.items():
            errors.add(failure.reason)
        if failed:
            first = next(iter(failed.items()))
            log.warning("prometheus queries failed", extra={"failed": len(failed), "query": first[0],
                                                              "error": str(first[1])})
        total = by_label(answers["gpu_memory_total"], "gpu")
        used = by_label(answers["gpu_memory_used"], "gpu")
        gpus = sorted((Gpu(s.labels.get("gpu", ""), s.labels.get("uuid", ""), s.labels.get("name", ""),
                           total.get(s.labels.get("gpu"), math.nan), used.get(s.labels.get("gpu"), math.nan))
                       for s in ([] if isinstance(answers["gpu_info"], QueryFailed) else answers["gpu_info"])
                       if s.labels.get("gpu", "").isdigit()), key=lambda g: int(g.index))
        assigned: dict[str, list[str]] = {}
        for s in [] if isinstance(answers["container_gpu"], QueryFailed) else answers["container_gpu"]:
            assigned.setdefault(s.labels.get("container", ""), []).append(s.labels.get("gpu", ""))
        holding: dict[str, list[str]] = {}
        for s in [] if isinstance(answers["container_memory"], QueryFailed) else answers["container_memory"]:
            holding.setdefault(s.labels.get("container", ""), []).append(s.labels.get("gpu", ""))
        servers = []
        for s in [] if isinstance(answers["instances"], QueryFailed) else answers["instances"]:
            container, model = s.labels.get("container", ""), s.labels.get("model_name", "unknown")
            servers.append(Server(container, model, analysis.server_gpus(
                container, assigned.get(container, ()), holding.get(container, ()), gpus)))
        models = sorted({s.model_name for s in servers})
        replicas = {m: sum(1 for s in servers if s.model_name == m) for m in models}

        utilization = by_label(answers["gpu_utilization"], "gpu")
        window_utilization = by_label(answers["gpu_utilization_window"], "gpu")
        kv, kv_window = by_label(answers["kv_cache"], "model_name"), by_label(answers["kv_cache_window"], "model_name")
        queue, burn = by_label(answers["queue_per_replica"], "model_name"), by_label(answers["ttft_burn_1h"], "model_name")
        gpu_by_index = {g.index: g for g in gpus}
        now = self.clock()
        advice = {}
        for model in models:
            mine = sorted({g for s in servers if s.model_name == model for g in s.gpus})

            def mean(values: dict[str, float]) -> float | None:
                seen = [values[g] for g in mine if g in values]
                return sum(seen) / len(seen) if seen else None

            load = Load(kv_cache=kv.get(model), queue_per_replica=queue.get(model),
                        ttft_burning=burn.get(model, 0.0) > 1.0, utilization=mean(utilization),
                        window_utilization=mean(window_utilization), window_kv_cache=kv_window.get(model),
                        replicas=replicas[model])
            beside = analysis.fits_beside(model, servers, gpu_by_index)
            advice[model] = analysis.decide(self._advice.get(model), load, self.thresholds, now, beside)
        snapshot = Snapshot(ok=not failed, gpus=gpus, servers=servers, models=models, replicas=replicas)
        with self._lock:
            self._advice = advice  # models gone from Prometheus lose their advice
            self._snapshot = snapshot
        return snapshot

    # -- forecast ---------------------------------------------------------------------------

    def forecast_now(self) -> None:
        """Fit each model's workload and find its highest request rate meeting the TTFT SLO."""
        start = time.perf_counter()
        answers = self.source.query_all(forecast_queries(self.settings.forecast_window_seconds))
        for failure in answers.values():
            if isinstance(failure, QueryFailed):
                self.collector.errors.add(failure.reason)
        values = {name: by_label(a, "model_name") for name, a in answers.items()}
        results = {}
        for model in sorted(values["replicas"]):
            if self._stop.is_set():  # closing: a forecast takes seconds per model
                return
            workload = Workload(
                request_rate=values["request_rate"].get(model, 0.0),
                prompt_p50=values["prompt_p50"].get(model, math.nan),
                prompt_p90=values["prompt_p90"].get(model, math.nan),
                output_p50=values["output_p50"].get(model, math.nan),
                output_p90=values["output_p90"].get(model, math.nan),
                prefill_tokens_per_s=values["prefill_speed"].get(model, math.nan),
                decode_tokens_per_s=values["decode_speed"].get(model, math.nan),
                replicas=int(values["replicas"][model]))
            if not analysis.usable(workload):
                continue
            slots = analysis.slots_per_replica(self.settings.forecast_slots_per_replica,
                                               self.settings.forecast_max_slots_per_replica,
                                               values["slots_by_kv"].get(model), values["peak_running"].get(model))
            slo = self.slos.of(model).ttft_p95_seconds
            if slo is None:  # no TTFT SLO (an embedding model): nothing to forecast against
                continue
            config = analysis.simulation(workload, slots, self.settings.forecast_requests)
            rate = capacity.max_rate(config, slo, QUANTILE, self.settings.forecast_requests)
            results[model] = Forecast(rate, workload, slots)
        with self._lock:
            self._forecasts = results
            self._forecast_at = self.clock()
            self._forecast_seconds = time.perf_counter() - start

    def _forecast_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.forecast_now()
            except Exception:
                log.exception("forecast failed")
            self._stop.wait(self.settings.forecast_interval_seconds)

    # -- exposition -------------------------------------------------------------------------

    def scrape(self, errors: ScrapeErrors) -> Iterable[Metric]:
        s = self.settings
        with self._refresh_lock:
            if self._refreshed.due():
                self.refresh(errors)
                self._refreshed.set()
        with self._lock:
            snap, advice, forecasts = self._snapshot, dict(self._advice), dict(self._forecasts)
            forecast_at, forecast_seconds = self._forecast_at, self._forecast_seconds

        yield GaugeMetricFamily("llmwatch_insights_up", "1 when Prometheus answered every query of the last "
                                "refresh; 0 when any failed (see scrape_errors_total).", value=1.0 if snap.ok else 0.0)
        yield from slo_families(self.slos)
        for name, help_text, value in (
                ("heartbeat_min_bpm", "Heartbeat at 0 % aggregate GPU utilisation.", s.heartbeat_min_bpm),
                ("heartbeat_max_bpm", "Heartbeat at 100 % aggregate GPU utilisation.", s.heartbeat_max_bpm)):
            yield GaugeMetricFamily(f"llmwatch_insights_{name}", help_text, value=value)

        cost = GaugeMetricFamily("llmwatch_insights_gpu_cost_dollars_per_hour",
                                 "What an hour of this GPU costs (insights.gpu_prices, matched on its name).",
                                 labels=["gpu", "gpu_name"])
        for gpu in snap.gpus:
            cost.add_metric([gpu.index, gpu.name],
                            analysis.price_for(gpu.name, self.prices, s.default_dollars_per_hour))
        yield cost
        shares = analysis.allocation(snap.servers)
        allocated = GaugeMetricFamily("llmwatch_insights_gpu_allocation_ratio",
                                      "Share of a GPU allocated to a model (1/n when n models share it).",
                                      labels=["gpu", "model_name"])
        for (gpu, model), share in sorted(shares.items(), key=lambda kv: (natural_key(kv[0][0]), kv[0][1])):
            allocated.add_metric([gpu, model], share)
        yield allocated
        count = GaugeMetricFamily("llmwatch_insights_gpu_models",
                                  "Models served from this GPU; 0: allocated to none (idle spend).", labels=["gpu"])
        for gpu in snap.gpus:
            count.add_metric([gpu.index], sum(1 for (g, _) in shares if g == gpu.index))
        yield count
        replicas = GaugeMetricFamily("llmwatch_insights_model_replicas", "vLLM servers serving the model.",
                                     labels=["model_name"])
        for model in snap.models:
            replicas.add_metric([model], snap.replicas[model])
        yield replicas

        state = GaugeMetricFamily("llmwatch_insights_advice",
                                  "1 for the model's current advice (none, scale_up, scale_down, consolidate).",
                                  labels=["model_name", "advice"])
        info = GaugeMetricFamily("llmwatch_insights_advice_info",
                                 "The current advice with its reason and, to consolidate, the model beside which "
                                 "it fits; always 1.", labels=["model_name", "advice", "reason", "beside"])
        since = GaugeMetricFamily("llmwatch_insights_advice_since_timestamp_seconds",
                                  "When the current advice was first given (unix time).", labels=["model_name"])
        for model in sorted(advice):
            a = advice[model]
            for name in ADVICES:
                state.add_metric([model, name], 1.0 if a.advice == name else 0.0)
            info.add_metric([model, a.advice, a.reason, a.beside], 1.0)
            since.add_metric([model], a.since)
        yield from (state, info, since)

        families = {
            "max_request_rate": ("Highest request rate (req/s) at which the simulated TTFT p95 meets the SLO.",
                                 lambda f: f.max_rate),
            "request_rate": ("Request rate (req/s) over the last 5 minutes, as the forecast saw it.",
                             lambda f: f.workload.request_rate),
            "headroom_ratio": ("Forecast max request rate / current rate: how many times today's traffic fits.",
                               lambda f: f.max_rate / f.workload.request_rate if f.workload.request_rate > 0 else None),
            "prefill_tokens_per_second": ("Per-request prefill speed fitted from vLLM's timings.",
                                          lambda f: f.workload.prefill_tokens_per_s),
            "decode_tokens_per_second": ("Per-request decode speed fitted from vLLM's timings.",
                                         lambda f: f.workload.decode_tokens_per_s),
            "slots_per_replica": ("Requests a replica serves at once in the forecast's model.",
                                  lambda f: f.slots_per_replica),
        }
        for name, (help_text, get) in families.items():
            fam = GaugeMetricFamily(f"llmwatch_insights_forecast_{name}", help_text, labels=["model_name"])
            for model in sorted(forecasts):
                value = get(forecasts[model])
                if value is not None:
                    fam.add_metric([model], value)
            yield fam
        for kind, help_text in (("prompt", "Prompt"), ("output", "Output")):
            fam = GaugeMetricFamily(f"llmwatch_insights_forecast_{kind}_tokens",
                                    f"{help_text} tokens per request the forecast assumed (fitted quantiles).",
                                    labels=["model_name", "quantile"])
            for model in sorted(forecasts):
                w = forecasts[model].workload
                fam.add_metric([model, "0.5"], getattr(w, f"{kind}_p50"))
                fam.add_metric([model, "0.9"], getattr(w, f"{kind}_p90"))
            yield fam
        if forecast_at is not None:
            yield GaugeMetricFamily("llmwatch_insights_forecast_timestamp_seconds",
                                    "When the last forecast finished (unix time).", value=forecast_at)
            yield GaugeMetricFamily("llmwatch_insights_forecast_duration_seconds",
                                    "How long the last forecast took (queries and simulations).",
                                    value=forecast_seconds)

    def close(self) -> None:
        """Stop the forecast within 2 s: it ends at the next model, and its thread is a daemon, so
        a query still waiting on Prometheus cannot hold the process up."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.source.close()


SLO_HELP = {
    "ttft_p95_seconds": "TTFT SLO: 95 % of requests get their first token within this.",
    "tpot_p95_seconds": "TPOT SLO: 95 % of requests decode at this or less per output token.",
    "error_ratio": "Error SLO: at most this share of requests fail.",
    "availability_ratio": "Availability SLO: the service is up at least this share of time.",
}


def slo_families(slos: Slos) -> Iterable[Metric]:
    """``llmwatch_insights_slo_*{model_name}`` from the mixin: model_name="default" for every model
    without an override, one series per override; a model without such an SLO has no series."""
    for attribute, help_text in SLO_HELP.items():
        family = GaugeMetricFamily(f"llmwatch_insights_slo_{attribute}", f"{help_text} Per model; "
                                   f'model_name="{DEFAULT_MODEL}" holds for every model without its own.',
                                   labels=["model_name"])
        for model, slo in slos.by_model().items():
            value = getattr(slo, attribute)
            if value is not None:
                family.add_metric([model], value)
        yield family
