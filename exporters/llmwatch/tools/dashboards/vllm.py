"""vLLM: per container and model — load, KV cache, latency percentiles and distributions, tokens."""

from __future__ import annotations

from llmwatch import mixin
from llmwatch.tools.dashboards import limits
from llmwatch.tools.dashboards.drill import drill, no_traffic, related
from llmwatch.tools.dashboards.grafana import (BAD, FIRING_ALERTS, INFO, OK, WARN, annotation, dashboard,
                                          heatmap, link, override, prom, query_variable, row, stat, steps,
                                          table, timeseries)

UID = "llmwatch-vllm"

SEL = 'container=~"$container", model_name=~"$model"'
LOGS = [{"title": "Logs of ${__field.labels.container}", "targetBlank": False,
         "url": "/d/llmwatch-logs?var-container=${__field.labels.container}&${__url_time_range}"}]


def recorded(metric: str, level: str = "container_model_name", suffix: str = "", operation: str = "rate5m") -> str:
    """The recorded series (config/prometheus/rules/recording.yml) of a vLLM metric, selected by the
    board's variables: ``recorded("vllm:prompt_tokens")`` reads container_model_name:vllm_prompt_tokens:rate5m."""
    return f"{level}:{metric.replace('vllm:', 'vllm_')}{suffix}:{operation}{{{SEL}}}"


def buckets(metric: str) -> str:
    """Per-second bucket rates of a vLLM histogram per container, model and ``le``, over 5 minutes."""
    return recorded(metric, "container_model_name_le", "_bucket")


# The models the selected containers serve: per-model percentiles are recorded over all of a model's
# containers (config/prometheus/rules/recording.yml), and the board shows those of the selection's models.
SELECTED_MODELS = 'and on (model_name) group by (model_name) (llmwatch_vllm_instance_info{container=~"$container"})'


def model_percentile(metric: str, q: int) -> str:
    """A recorded per-model percentile (model_name:vllm_..._seconds:p95_5m) of the selected models."""
    return f'model_name:{metric.replace("vllm:", "vllm_")}:p{q}_5m{{model_name=~"$model"}} {SELECTED_MODELS}'


def quantiles(metric: str) -> list[dict]:
    return [prom(model_percentile(metric, q), f"{{{{model_name}}}} p{q}") for q in (50, 95, 99)]


def distribution(metric: str) -> str:
    """Requests per second in each bucket (5-minute rates), for a heatmap."""
    return f"sum by (le) ({buckets(metric)})"


FIVE_MINUTES = "5m"  # the heatmaps' min step: their rates are over 5 minutes, finer steps add nothing


def mean(metric: str) -> str:
    """Average per request and model over 5 minutes: the histogram's recorded sum rate over its count rate."""
    return (f"sum by (model_name) ({recorded(metric, suffix='_sum')}) / "
            f"sum by (model_name) ({recorded(metric, suffix='_count')})")


def phases_and_features() -> list[dict]:
    """What vLLM's own dashboards show beyond latency percentiles: the time a request spends in
    prefill and in decode, the output length asked for, speculative decoding and LoRA adapters."""
    ttft_words = limits.ttft()[1]
    lora = table("LoRA adapters in use", "Per server: the LoRA adapters in the running batch and waiting "
                 "for a slot, and how many can be loaded at once (max_lora), from vLLM's lora_requests_info "
                 "(servers started with --enable-lora). Bad: adapters waiting while max_lora is reached — "
                 "requests for them queue; raise --max-loras or spread the adapters over servers.",
                 [prom('topk by (container) (1, vllm:lora_requests_info{container=~"$container"})', instant=True,
                       table=True),
                  prom('count by (container) (llmwatch_vllm_lora_adapter_info{container=~"$container"})',
                       instant=True, table=True)], "none", merge=True, w=12,
                 hide=("Time", "Value #A", "__name__", "job", "instance", "vllm_version"),
                 rename={"container": "Container", "running_lora_adapters": "Running", "waiting_lora_adapters":
                         "Waiting", "max_lora": "Max loaded", "Value #B": "Adapters listed"})
    lora["fieldConfig"]["defaults"]["noValue"] = "No LoRA adapters on these servers"
    speculative = timeseries(
        "Speculative decoding acceptance", "Share of draft tokens the model accepted, per model "
        "(rate of accepted over proposed draft tokens; servers with a speculative config only, V0 and V1). "
        "Bad: falling — drafts are wasted work and decode gets slower than without speculation; "
        "check the draft model or lower num_speculative_tokens.",
        [prom(f"sum by (model_name) ({recorded('vllm:spec_decode_num_accepted_tokens')}) / "
              f"sum by (model_name) ({recorded('vllm:spec_decode_num_draft_tokens')})",
              "{{model_name}}")], "percentunit", minimum=0, maximum=1, w=12)
    speculative["fieldConfig"]["defaults"]["noValue"] = "No speculative decoding on these servers"
    return [
        row("Phases, speculative decoding and adapters"),
        timeseries("Prefill and decode time per request", "Average time a request spends in prefill (reading "
                   "its prompt) and in decode (writing its answer), per model (vLLM's PREFILL and DECODE "
                   f"phases). Bad: prefill growing — long prompts or a cold prefix cache push TTFT towards its "
                   f"alert limits ({ttft_words}); decode growing while answers are as long — batches too big.",
                   [prom(mean("vllm:request_prefill_time_seconds"), "{{model_name}} prefill"),
                    prom(mean("vllm:request_decode_time_seconds"), "{{model_name}} decode")], "s", minimum=0,
                   w=12),
        timeseries("Max generation tokens per request", "Average output length requests asked for (max "
                   "tokens, or what is left of the context) against what they generated, per model. Bad: "
                   "generated close to the maximum — answers are cut off (finish reason length); a maximum far "
                   "above what is generated reserves KV cache for nothing.",
                   [prom(mean("vllm:request_max_num_generation_tokens"), "{{model_name}} asked at most"),
                    prom(mean("vllm:request_generation_tokens"), "{{model_name}} generated")], "short", minimum=0,
                   w=12),
        speculative,
        lora,
    ]


def build() -> dict:
    ttft, ttft_words = limits.ttft()
    ttft_slo = limits.slo_lines("ttft_p95_seconds", 'model_name=~"$model"')
    itl_slo = limits.slo_lines("tpot_p95_seconds", 'model_name=~"$model"')
    kv, kv_words = limits.kv_cache()
    errors, error_words = limits.error_ratio("vllm")
    panels = [
        row("Health"),
        stat("Servers down", "vLLM servers whose /metrics did not answer this scrape (llmwatch_vllm_up = 0). "
             "Bad: anything above 0 — the model behind it is not serving.",
             [prom('count(llmwatch_vllm_up{container=~"$container"} == 0) or vector(0)')], "none",
             thresholds=steps(OK, (BAD, 1)), graph=False),
        stat("Engines unhealthy", "Servers that answer /metrics but whose /health is not 200 (engine dead or "
             "stuck). Bad: above 0 — restart the container and read its logs.",
             [prom('count(llmwatch_vllm_healthy{container=~"$container"} == 0) or vector(0)')], "none",
             thresholds=steps(OK, (BAD, 1)), graph=False),
        stat("Requests/s", "Finished requests per second over the selected servers and models. "
             "Bad: a sudden drop to 0 while clients still send traffic.",
             [prom(f"sum({recorded('vllm:request_success', 'container_model_name_finished_reason')})")], "reqps", thresholds=steps(INFO)),
        stat("Generated tokens/s", "Output tokens per second. Bad: falling while requests/s holds "
             "(shorter answers or a slower engine).",
             [prom(f"sum({recorded('vllm:generation_tokens')})")], "suffix: tok/s",
             thresholds=steps(INFO)),
        stat("TTFT p95", "95th percentile time to first token over all selected models, last 5 minutes. "
             f"Orange and red at {ttft_words}.",
             [prom(f"histogram_quantile(0.95, sum by (le) ({buckets('vllm:time_to_first_token_seconds')}))")],
             "s", thresholds=ttft, graph=False),
        stat("Waiting", "Requests queued, not yet scheduled. Bad: above 0 for minutes — the server is at "
             "capacity (KV cache full or max_num_seqs reached).",
             [prom(f"sum(vllm:num_requests_waiting{{{SEL}}})")], "none", thresholds=steps(OK, (WARN, 1), (BAD, 20))),

        row("Load"),
        timeseries("Requests running and waiting", "Requests in the running batch and in the queue, per "
                   "container. Bad: waiting stays above 0 and grows — add capacity or lower max_tokens.",
                   [prom(f"sum by (container) (vllm:num_requests_running{{{SEL}}})", "{{container}} running"),
                    prom(f"sum by (container) (vllm:num_requests_waiting{{{SEL}}})", "{{container}} waiting")],
                   "none", links=LOGS, overrides=[override(".* waiting", color={"mode": "fixed",
                                                                               "fixedColor": "orange"})]),
        timeseries("KV-cache usage", "Share of the KV cache in use, per container (1 = full). Bad: above "
                   f"{mixin.MIXIN.kv_cache_usage.critical:g} for long — requests queue and get preempted (dashed lines: {kv_words}).",
                   [prom(f"max by (container) (vllm:kv_cache_usage_perc{{{SEL}}})", "{{container}}")],
                   "percentunit", minimum=0, maximum=1, thresholds=kv, threshold_lines=True, links=LOGS),
        timeseries("Prefix-cache hit ratio", "Share of prompt tokens found in the prefix cache. Higher is "
                   "cheaper prefill; a drop means prompts stopped sharing prefixes or the cache is thrashing.",
                   [prom(f"sum by (container) ({recorded('vllm:prefix_cache_hits')}) / "
                         f"sum by (container) ({recorded('vllm:prefix_cache_queries')})",
                         "{{container}}")], "percentunit", minimum=0, maximum=1, links=LOGS),
        timeseries("Preemptions", "Requests the scheduler preempted (KV cache ran out mid-generation) per "
                   "minute, over 5 minutes. Bad: any steady rate — latency suffers; lower max_num_seqs or add GPUs.",
                   [prom(f"sum by (container) ({recorded('vllm:num_preemptions')}) * 60",
                         "{{container}}")], "none", thresholds=steps(OK, (WARN, 1)), bars=True, links=LOGS),

        row("Latency"),
        timeseries("Time to first token", "p50/p95/p99 per model (over all its containers, 5-minute windows): "
                   f"queueing plus prefill. Dashed: {ttft_slo[2]}.", quantiles("vllm:time_to_first_token_seconds") + [ttft_slo[0]],
                   "s", overrides=[ttft_slo[1]], w=8),
        timeseries("Inter-token latency", "p50/p95/p99 per model: time between output chunks, what a reader "
                   f"of a streamed answer feels. Dashed: {itl_slo[2]}.",
                   quantiles("vllm:inter_token_latency_seconds") + [itl_slo[0]], "s", overrides=[itl_slo[1]], w=8),
        timeseries("End-to-end latency", "p50/p95/p99 per model, inside the server (queue + prefill + "
                   "decode). Bad: rising while lengths stay the same.", quantiles("vllm:e2e_request_latency_seconds"),
                   "s", w=8),
        heatmap("TTFT distribution", "Every request's time to first token, by bucket. A second band high "
                "up means some requests queue or hit long prompts.",
                distribution("vllm:time_to_first_token_seconds"), "s", w=8, min_step=FIVE_MINUTES),
        heatmap("Inter-token latency distribution", "Every output chunk's gap, by bucket. A wide spread "
                "means batches are too big for steady streaming.",
                distribution("vllm:inter_token_latency_seconds"), "s", w=8, min_step=FIVE_MINUTES),
        timeseries("Queue time p95", "95th percentile time requests wait before the engine schedules them, "
                   "per model. Bad: above a few hundred ms — the server is saturated.",
                   [prom(model_percentile("vllm:request_queue_time_seconds", 95), "{{model_name}}")],
                   "s", thresholds=steps(OK, (WARN, 0.5), (BAD, 2)), threshold_lines=True, w=8),

        row("Throughput and lengths"),
        timeseries("Tokens/s", "Prompt (prefill) and generated tokens per second, per model. Compare with "
                   "the requests rate: tokens per request tell you what the load looks like.",
                   [prom(f"sum by (model_name) ({recorded('vllm:prompt_tokens')})", "{{model_name}} prompt"),
                    prom(f"sum by (model_name) ({recorded('vllm:generation_tokens')})",
                         "{{model_name}} generated")], "suffix: tok/s", w=8),
        timeseries("Finished requests by reason", "Requests per second by finish reason: stop (normal), "
                   "length (hit max_tokens), abort (client left or error). Bad: abort rising.",
                   [prom(f"sum by (finished_reason) ({recorded('vllm:request_success', 'container_model_name_finished_reason')})",
                         "{{finished_reason}}")], "reqps", stack=True, w=8,
                   overrides=[override("abort", color={"mode": "fixed", "fixedColor": "red"})]),
        timeseries("API errors (5xx share)", "Share of OpenAI-API requests answered with a 5xx, per "
                   f"container. Dashed: {error_words}, where the VllmErrorRate alert warns and pages.",
                   [prom('max by (container) (container:vllm_http_errors:ratio_rate5m{container=~"$container"})', "{{container}}")],
                   "percentunit", minimum=0, thresholds=errors, threshold_lines=True,
                   w=8, links=LOGS),
        heatmap("Prompt length distribution", "Prompt tokens per request, by bucket. Long prompts cost "
                "prefill time and KV cache.", distribution("vllm:request_prompt_tokens"), "none", min_step=FIVE_MINUTES),
        heatmap("Generated length distribution", "Generated tokens per request, by bucket. A band at "
                "max_tokens means answers are cut off (finish reason length).",
                distribution("vllm:request_generation_tokens"), "none", min_step=FIVE_MINUTES),

        row("Servers"),
        table("Servers", "Every vLLM server: model, version, image, GPUs and context length. Bad: an "
              "unexpected version after an upgrade, or a server missing from the list.",
              [prom('max by (container, model_name, vllm_version, image, gpus, max_model_len, source) '
                    '(llmwatch_vllm_instance_info{container=~"$container"})', instant=True, table=True)], "none",
              hide=("Time", "Value"), rename={"container": "Container", "model_name": "Model",
                                               "vllm_version": "vLLM", "image": "Image", "gpus": "GPUs",
                                               "max_model_len": "Context", "source": "Found by"}, w=16, links=LOGS),
        timeseries("Metrics answer time", "How long each server took to answer /metrics. Bad: close to the "
                   "scrape timeout — the API server's event loop is overloaded.",
                   [prom('max by (container) (llmwatch_vllm_target_scrape_duration_seconds{container=~"$container"})',
                         "{{container}}")], "s", thresholds=steps(OK, (WARN, 2), (BAD, 5)), w=8),
    ]
    panels += phases_and_features()
    return dashboard(UID, "vLLM", "Per container and model: load, KV cache, latency percentiles and "
                     "distributions, tokens, errors and versions of every vLLM server.",
                     drill(no_traffic(panels)), related=related("gpu", "containers", "logs", "litellm"),
                     variables=[query_variable("container", "Container", "label_values(llmwatch_vllm_up, container)"),
                                query_variable("model", "Model", 'label_values(vllm:num_requests_running'
                                               '{container=~"$container"}, model_name)')],
                     annotations=[FIRING_ALERTS, annotation(
                         "Server restarts", 'changes(container_start_time_seconds{name=~"$container"}[2m]) > 0',
                         "orange", "{{name}} restarted")])


LINK = link("vLLM", UID)
