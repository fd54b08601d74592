"""Langfuse analytics: traces, observations, cost, tokens, latency, TTFT, errors and scores."""

from __future__ import annotations

from llmwatch.tools.dashboards import limits
from llmwatch.tools.dashboards.drill import drill, no_traffic, related
from llmwatch.tools.dashboards.grafana import (BAD, FIRING_ALERTS, INFO, OK, WARN, dashboard, link, override, prom,
                                          query_variable, row, stat, steps, timeseries, value_text)

UID = "llmwatch-langfuse"
# "All" is ".*", which also matches a series without an environment label (environment_label off)
P = 'project=~"$project", environment=~"$environment"'
PM = f'{P}, model=~"$model"'
TOP = 10  # lines on the by-name and by-release panels
RATE = "[$__rate_interval]"


def by_project_and_environment() -> list[dict]:
    """Several projects and environments side by side (Langfuse's own home shows one project at a
    time): traces and cost per project and environment. The environment label is there only with
    ``langfuse.environment_label = true`` (off by default: most installations have one); without
    it these panels show one line per project."""
    return [
        row("Projects and environments"),
        timeseries("Traces/s per project and environment", "Traces per second by project and environment "
                   "(Langfuse's environment attribute: production, staging...; split only with the exporter's "
                   "langfuse.environment_label = true). Bad: a project or "
                   "environment dropping to 0 while its application runs — its SDK stopped sending.",
                   [prom(f"sum by (project, environment) (rate(llmwatch_langfuse_traces_total{{{P}}}{RATE}))",
                         "{{project}} / {{environment}}")], "reqps", minimum=0),
        timeseries("Cost per project and environment", "Cost per hour by project and environment, as Langfuse "
                   "computes it. Bad: a staging or test environment costing like production, or a "
                   "project's cost jumping without more traces.",
                   [prom(f"sum by (project, environment) (rate(llmwatch_langfuse_cost_usd_total{{{P}}}{RATE})) * 3600",
                         "{{project}} / {{environment}}")], "suffix: $/h", minimum=0, stack=True),
    ]


def by_name_and_release() -> list[dict]:
    """Traces by trace name (the application's operations) and by release (a deploy rolling out), the
    busiest ``TOP`` at each step; a trace without a name or release shows as "(none)"."""
    def top(label: str, metric: str) -> str:
        busiest = f"topk({TOP}, sum by ({label}) (rate({metric}{{{P}}}{RATE})))"
        return f'label_replace({busiest}, "{label}", "(none)", "{label}", "")'
    return [
        row("Traces by name and release"),
        timeseries("Traces by name", f"Traces per second by trace name, the {TOP} busiest (names past the "
                   "exporter's langfuse.trace_names_limit are counted as other). Bad: a name dropping to 0 while "
                   "the others go on — that feature stopped being called or stopped tracing; other growing — a "
                   "name that holds ids, or the limit is too low.",
                   [prom(top("trace_name", "llmwatch_langfuse_traces_by_name_total"), "{{trace_name}}")], "reqps",
                   minimum=0),
        timeseries("Traces by release", f"Traces per second by release (the SDK's release attribute), the {TOP} "
                   "busiest, stacked: a deploy shows as one release taking over from the last. Bad: a new release "
                   "whose share stops growing partway — clients pinned to the old one, or the new one failing "
                   "before it sends traces.",
                   [prom(top("release", "llmwatch_langfuse_traces_by_release_total"), "{{release}}")], "reqps",
                   minimum=0, stack=True),
    ]


def build() -> dict:
    ttft, ttft_words = limits.ttft()
    panels = [
        row("Health"),
        stat("Langfuse", "Whether Langfuse answers its health check and the last read of its data "
             "succeeded. Bad: down — traces may still arrive, but these panels stop.",
             [prom("min(llmwatch_langfuse_up)")], "none", graph=False, thresholds=steps(BAD, (OK, 1)),
             mappings=value_text({"1": ("up", OK), "0": ("down", BAD)})),
        stat("Version", "Langfuse version and where the exporter reads from (Postgres for v2, the public "
             "metrics API for v3/v4).", [prom("max by (version, source) (llmwatch_langfuse_info)",
                                                "{{version}} via {{source}}")],
             "none", graph=False, thresholds=steps(INFO), text_mode="name", color_mode="none"),
        stat("Counting lag", "How far behind now the counters are: the time since the exporter last read "
             "Langfuse successfully. Bad: growing past a few minutes — reads are failing (the counters catch up "
             "exactly once they succeed again).",
             [prom("time() - max(llmwatch_langfuse_counted_until_timestamp_seconds)")], "s",
             thresholds=steps(OK, (WARN, 300), (BAD, 900))),
        stat("Cost today", "Cost Langfuse recorded since midnight (browser time), selected projects; "
             "Langfuse's own LLM-as-a-judge and experiment runs are not included.",
             [prom(f"sum(increase(llmwatch_langfuse_cost_usd_total{{{P}}}[$__range]))")], "currencyUSD",
             decimals=2, thresholds=steps(INFO), time_from="now/d"),
        stat("Error share", "Share of observations logged at level ERROR, selected projects. Bad: above a few percent (the LangfuseErrorSpike alert).",
             [prom(f"sum(rate(llmwatch_langfuse_observations_total{{{P}, level=\"ERROR\"}}{RATE})) / "
                   f"sum(rate(llmwatch_langfuse_observations_total{{{P}}}{RATE}))")], "percentunit",
             thresholds=steps(OK, (WARN, 0.02), (BAD, 0.1))),
        stat("Read time", "How long the exporter's last read of Langfuse took. Bad: seconds — the "
             "database or ClickHouse is struggling.", [prom("max(llmwatch_langfuse_read_duration_seconds)")], "s",
             thresholds=steps(OK, (WARN, 2), (BAD, 5))),

        row("Traffic"),
        timeseries("Traces/s", "Traces per second per project, by trace timestamp (Langfuse v4 from 4.3: "
                   "root observations by start time; before 4.3 this panel is empty there).",
                   [prom(f"sum by (project) (rate(llmwatch_langfuse_traces_total{{{P}}}{RATE}))", "{{project}}")],
                   "reqps", minimum=0, w=8),
        timeseries("Observations/s by type", "Spans, generations and events per second. Generations are "
                   "model calls.",
                   [prom(f"sum by (type) (rate(llmwatch_langfuse_observations_total{{{P}}}{RATE}))", "{{type}}")],
                   "ops", minimum=0, stack=True, w=8),
        timeseries("Warnings and errors", "Observations at level WARNING or ERROR per interval, per model. "
                   "Bad: errors on one model — look at the traces in Langfuse.",
                   [prom(f'sum by (model, level) (increase(llmwatch_langfuse_observations_total{{{PM}, '
                         f'level=~"WARNING|ERROR"}}{RATE}))', "{{model}} {{level}}")], "none", bars=True, w=8,
                   overrides=[override(".*ERROR", color={"mode": "fixed", "fixedColor": "red"}),
                              override(".*WARNING", color={"mode": "fixed", "fixedColor": "orange"})]),

        row("Cost and tokens"),
        timeseries("Cost per model", "Cost per hour per model, as Langfuse computes it (the user's cost, else "
                   "its model prices; v2 rows without any cost are priced as Langfuse's own views price them).",
                   [prom(f"sum by (model) (rate(llmwatch_langfuse_cost_usd_total{{{PM}}}{RATE})) * 3600",
                         "{{model}}")], "suffix: $/h", minimum=0, stack=True),
        timeseries("Tokens/s per model", "Input and output tokens per second per model (Langfuse v2: usage "
                   "measured in tokens only, not characters, images or seconds).",
                   [prom(f"sum by (model, direction) (rate(llmwatch_langfuse_tokens_total{{{PM}}}{RATE}))",
                         "{{model}} {{direction}}")], "suffix: tok/s", minimum=0),

        row("Latency"),
        timeseries("Generation latency", "p50/p95/p99 of generation duration (end - start) per model over "
                   "the exporter's trailing window. Bad: p95 rising while tokens per call stay flat.",
                   [prom(f'max by (model, quantile) (llmwatch_langfuse_generation_latency_seconds{{{PM}}})',
                         "{{model}} p{{quantile}}")], "s", minimum=0),
        timeseries("Time to first token", "p50/p95/p99 TTFT of streamed generations per model, as the "
                   f"application saw it (includes LiteLLM and the network). Dashed: {ttft_words}.",
                   [prom(f'max by (model, quantile) (llmwatch_langfuse_generation_time_to_first_token_seconds{{{PM}}})',
                         "{{model}} p{{quantile}}")], "s", minimum=0,
                   thresholds=ttft, threshold_lines=True),

        row("Scores"),
        timeseries("Average score", "Average value of each numeric or boolean score over the interval (e.g. "
                   "helpfulness, correctness from evaluations or users; categorical scores are not averaged). "
                   "Bad: a drop after a model change.",
                   [prom(f"sum by (name) (increase(llmwatch_langfuse_score_value_sum{{{P}}}{RATE})) / "
                         f"sum by (name) (increase(llmwatch_langfuse_score_value_count{{{P}}}{RATE}))", "{{name}}")],
                   "none", decimals=2),
        timeseries("Scores/s", "Scores recorded per second by name. Bad: falling to 0 — the evaluation "
                   "job or the feedback widget stopped.",
                   [prom(f"sum by (name) (rate(llmwatch_langfuse_score_value_count{{{P}}}{RATE}))", "{{name}}")],
                   "ops", minimum=0),
    ]
    return dashboard(UID, "Langfuse analytics", "What the application traced: traces, generations, "
                     "cost and tokens per model, latency and time to first token, errors and scores.",
                     drill(no_traffic(panels + by_project_and_environment() + by_name_and_release())),
                     related=related("litellm", "vllm", "cost"),
                     variables=[query_variable("project", "Project",
                                               "label_values(llmwatch_langfuse_observations_total, project)"),
                                query_variable("environment", "Environment", "label_values(llmwatch_langfuse_"
                                               'observations_total{project=~"$project"}, environment)'),
                                query_variable("model", "Model", 'label_values(llmwatch_langfuse_tokens_total'
                                               '{project=~"$project"}, model)')],
                     annotations=[FIRING_ALERTS])


LINK = link("Langfuse analytics", UID)
