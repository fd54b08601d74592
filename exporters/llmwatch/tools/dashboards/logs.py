"""Logs (Loki, shipped by Alloy): volume and errors per container, vLLM engine errors, CUDA OOM."""

from __future__ import annotations

from llmwatch.mixin import LOG_CUDA_OOM, LOG_ENGINE_DEAD, LOG_ERROR_LEVELS
from llmwatch.tools.dashboards.drill import drill, related
from llmwatch.tools.dashboards.grafana import (BAD, FIRING_ALERTS, OK, WARN, dashboard, link, logs, loki,
                                          loki_label_variable, row, stat, steps, textbox_variable, timeseries)

UID = "llmwatch-logs"
# Alloy labels each stream with its host (issue 25); "All" is ".*", which matches streams without it too.
SEL = '{container=~"$container", host=~"$host"}'
# Alloy normalises every level to one spelling (mixin.LOG_LEVELS), so an exact match finds Go's
# level=error as well as Python's ERROR.
ERRORS = f'{{container=~"$container", host=~"$host", level=~"{"|".join(LOG_ERROR_LEVELS)}"}}'
ENGINE = f'|~ "(?i)({LOG_ENGINE_DEAD})"'
OOM = f'|~ "(?i)({LOG_CUDA_OOM})"'
GPU = f'|~ "(?i)({LOG_CUDA_OOM}|NCCL (WARN|error)|CUDA error|Xid|uncorrectable ECC)"'
# The critical alerts as on every board. This board has no Prometheus picker (its panels are all
# Loki), so the annotation names the provisioned Prometheus datasource by its fixed uid.
ALERTS = {**FIRING_ALERTS, "datasource": {"type": "prometheus", "uid": "prometheus"}}


def build() -> dict:
    panels = [
        row("Volume and errors"),
        stat("Error lines", "Lines at level ERROR or CRITICAL in the selected range (levels as Alloy "
             "parses them from vLLM, LiteLLM and llmwatch logs). Bad: a jump after a deploy.",
             [loki(f"sum(count_over_time({ERRORS} [$__range]))")], "short", thresholds=steps(OK, (WARN, 1), (BAD, 100)),
             graph=False, w=8),
        stat("CUDA out of memory", "Lines reporting a CUDA out-of-memory error in the selected range. Bad: "
             "any — lower gpu_memory_utilization or max_num_seqs, or the model does not fit.",
             [loki(f"sum(count_over_time({SEL} {OOM} [$__range]))")], "short", thresholds=steps(OK, (BAD, 1)),
             graph=False, w=8),
        stat("Engine errors", "vLLM engine failures (EngineDeadError and the like) in the selected range. "
             "Bad: any — the server stops answering until restarted.",
             [loki(f"sum(count_over_time({SEL} {ENGINE} [$__range]))")], "short", thresholds=steps(OK, (BAD, 1)),
             graph=False, w=8),
        timeseries("Log lines per container", "Lines per interval per container. A spike is usually an error "
                   "loop; silence from a busy container means it hangs.",
                   [loki(f"sum by (container) (count_over_time({SEL} [$__auto]))", "{{container}}")], "short",
                   bars=True, stack=True),
        timeseries("Errors per container", "ERROR and CRITICAL lines per interval per container.",
                   [loki(f"sum by (container) (count_over_time({ERRORS} [$__auto]))", "{{container}}")], "short",
                   bars=True, stack=True, thresholds=steps(OK, (BAD, 1))),

        row("Lines"),
        logs("Errors", "ERROR and CRITICAL lines of the selected containers, newest first.", ERRORS, h=10),
        logs("vLLM engine errors", "Lines where a vLLM engine died or failed: the first one usually names "
             "the cause (OOM, NCCL, a bad request).", f"{SEL} {ENGINE}", w=12, h=10),
        logs("CUDA out of memory and GPU errors", "CUDA OOM, NCCL and CUDA errors, XIDs in the logs.",
             f"{SEL} {GPU}", w=12, h=10),
        logs("All lines", "Every line of the selected containers; type in 'Search' above to filter (a "
             "regular expression).", f'{SEL} |~ "$search"', h=14),
    ]
    return dashboard(UID, "Logs", "Container logs from Loki: volume and errors per container, vLLM engine "
                     "failures, CUDA out-of-memory and GPU errors, and a searchable view of every line.",
                     drill(panels), annotations=[ALERTS], related=related("containers", "vllm", "gpu", "system"),
                     variables=[loki_label_variable("host", "Host", "host", all_value=".*"),
                                loki_label_variable("container", "Container", "container"),
                                textbox_variable("search", "Search")], refresh="1m", time_from="now-1h",
                     prometheus=False)


LINK = link("Logs", UID)
