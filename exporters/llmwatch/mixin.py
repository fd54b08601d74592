"""The numbers the rules, the alerts and the dashboards share: SLOs, thresholds, selectors, ports.

One config, as kubernetes-mixin's ``config.libsonnet`` is for its rules and boards: the Prometheus
rule files (``llmwatch rules``) and the Grafana boards (``llmwatch dashboards``) are generated
from it, and the insights exporter serves the SLOs as ``llmwatch_insights_slo_*{model_name}``
series, so an alert, a burn rate, a board line and ``llmwatch top`` compare against the same
number. Change a value here, run ``llmwatch rules && llmwatch dashboards``, commit all three;
a test fails while the generated files are stale.

SLOs are per model: :data:`MIXIN.slo` holds a default and overrides by vLLM's ``model_name``.
A latency SLO is read from the histogram bucket at its bound, so the bound must be one of the
bucket bounds every vLLM version has (:data:`VLLM_TTFT_BOUNDS`, :data:`VLLM_ITL_BOUNDS`);
``None`` means the model has no such SLO (an embedding model has no time per output token).

The token SLOs (:data:`TOKEN_SLOS`: TTFT and time per output token) of the *default* apply only
to models that generate tokens, those whose vLLM counter ``vllm:generation_tokens_total`` is
above 0 (:data:`GENERATIVE`). An embedding or rerank model generates none, so it gets no TTFT or
TPOT alert, burn rate or SLO line unless an override names it: a model in ``overrides`` states
all its SLOs, and its token SLOs count whether it generates tokens or not. The gate is read from
vLLM itself rather than from a list of model kinds here, so a new embedding model needs no
config to stay quiet, and a chat model needs none to be watched. (The probe's TTFT alert has no
gate: the probe streams completions only to models that serve them.)

Hosts (issue 25): every series scraped by or remote-written to the central Prometheus carries a
``host`` label, the name of the machine it comes from. Rules keep ``host`` wherever they keep a
machine's own identity (a container, a GPU index, an instance, a device, a mountpoint: two hosts
can both have GPU 0 and a container named vllm-a) and in every join on such labels; they drop it
where a model spans hosts (fleet-wide rates, percentiles, SLO ratios and burn rates, cost per
model). Series without ``host`` (one host before the change, promtool tests) are one host named
"": ``by (host)`` and ``on (host)`` treat a missing label as empty, so nothing changes for them.
The boards filter on it through their ``host`` variable (tools/dashboards/grafana.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import NamedTuple

# Bucket bounds of vLLM's TTFT and inter-token latency histograms present in every version
# llmwatch supports (0.5 to the newest: newer versions only add larger bounds).
VLLM_TTFT_BOUNDS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
VLLM_ITL_BOUNDS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)

DEFAULT_MODEL = "default"  # the model_name under which the default SLO is served
# SLOs on tokens, which the default sets only for models that generate them (module docstring).
TOKEN_SLOS = ("ttft_p95_seconds", "tpot_p95_seconds")
# The models that generate tokens, by model_name: vLLM counts every output token, and an
# embedding or rerank model's counter stays at 0 (or is absent).
GENERATIVE = "max by (model_name, simulated) (vllm:generation_tokens_total) > 0"

# Where Prometheus serves the runbooks (docs/runbooks.md as a console page, --web.console.templates):
# every alert's runbook_url, and the notifications' runbook links, point there.
RUNBOOKS_PAGE = "consoles/runbooks.html"

# Log levels as Alloy writes the level label whatever the program wrote (config/alloy/config.alloy:
# error, err, Error -> ERROR; fatal, crit -> CRITICAL; warn -> WARNING), and the ones counted as errors.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_ERROR_LEVELS = ("ERROR", "CRITICAL")
# Log lines (case-insensitive regexes) that the Logs board counts and the Loki alerts fire on:
# CUDA out of memory, and a vLLM engine dying (V0 AsyncLLMEngine, V1 EngineCore).
LOG_CUDA_OOM = "CUDA out of memory|OutOfMemoryError|CUBLAS_STATUS_ALLOC_FAILED|cudaErrorMemoryAllocation"
LOG_ENGINE_DEAD = "EngineDeadError|AsyncEngineDeadError|EngineCore.*(died|failed|fatal|exception)|Engine loop has died"


class MixinError(ValueError):
    """A value in the mixin that rules or boards cannot be built from; names the key."""


@dataclass(frozen=True)
class Slo:
    """What one model promises its users (per request, over 30 days)."""

    ttft_p95_seconds: float | None = 1.0  # 95 % of requests get their first token within this
    tpot_p95_seconds: float | None = 0.1  # 95 % of requests stream tokens at least this fast
    error_ratio: float = 0.001  # at most this share of API requests fail (5xx)
    availability_ratio: float = 0.999  # the model's servers are up this share of the time

    def check(self, where: str) -> None:
        for key, value, bounds in (("ttft_p95_seconds", self.ttft_p95_seconds, VLLM_TTFT_BOUNDS),
                                   ("tpot_p95_seconds", self.tpot_p95_seconds, VLLM_ITL_BOUNDS)):
            if value is not None and value not in bounds:
                raise MixinError(f"{where}.{key} = {value!r} is not a bucket bound of vLLM's histogram "
                                 f"(one of {', '.join(map(str, bounds))}); SLO-met ratios are read at the bound")
        for key, value in (("error_ratio", self.error_ratio), ("availability_ratio", self.availability_ratio)):
            if not 0 < value < 1:
                raise MixinError(f"{where}.{key} = {value!r} must be between 0 and 1")


class SloGroup(NamedTuple):
    """Models that share one SLO value: a label matcher (empty: all models), the value, and
    ``gate``: an ``and on (...)`` clause to append to the PromQL that compares against it (empty,
    or :data:`GENERATIVE` for the default's token SLOs)."""

    matcher: str
    value: float
    gate: str = ""


@dataclass(frozen=True)
class Slos:
    """The default SLO and the models that differ from it."""

    default: Slo = Slo()
    overrides: Mapping[str, Slo] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self):
        self.default.check("slo.default")
        for model, slo in self.overrides.items():
            if not model or model == DEFAULT_MODEL or not re.fullmatch(r"[^\"\\\n]+", model):
                raise MixinError(f"slo.overrides: {model!r} is not a usable model_name")
            slo.check(f"slo.overrides[{model!r}]")

    def of(self, model: str) -> Slo:
        return self.overrides.get(model, self.default)

    def by_model(self) -> dict[str, Slo]:
        """``default`` first, then each override: what the insights exporter serves."""
        return {DEFAULT_MODEL: self.default, **self.overrides}

    def groups(self, attribute: str, label: str = "model_name") -> list[SloGroup]:
        """Groups covering every model exactly once for one SLO attribute: one per override that
        sets it, then the default for all other models (an empty matcher when there are no
        overrides). Models whose value is None get no group: no SLO, no alert. The default's
        token SLOs are gated to models that generate tokens (module docstring) where the series
        carry vLLM's ``model_name``; the probe's ``model`` label is no vLLM model name."""
        pairs = [SloGroup(f'{label}="{m}"', getattr(s, attribute)) for m, s in self.overrides.items()
                 if getattr(s, attribute) is not None]
        others = "|".join(promql_regex(m) for m in self.overrides)
        if getattr(self.default, attribute) is not None:
            gate = (f" and on (model_name, simulated) ({GENERATIVE})"
                    if attribute in TOKEN_SLOS and label == "model_name" else "")
            pairs.append(SloGroup(f'{label}!~"{others}"' if others else "", getattr(self.default, attribute), gate))
        return pairs


@dataclass(frozen=True)
class Threshold:
    warning: float
    critical: float


@dataclass(frozen=True)
class Ports:
    """Where each service listens inside the compose network."""

    gpu: int = 9445
    vllm: int = 9902
    litellm: int = 9901
    langfuse: int = 9903
    insights: int = 9904
    probe: int = 9905
    grafana: int = 23000
    prometheus: int = 23001
    loki: int = 23002
    alertmanager: int = 23003
    node_exporter: int = 9100
    cadvisor: int = 8080


@dataclass(frozen=True)
class Mixin:
    slo: Slos = Slos()
    # The latency alerts fire at multiples of each model's own SLO bound: TTFT p95 above
    # 1.5x its SLO warns and 3x pages; time per output token above its SLO warns, 3x pages.
    ttft_alert_factor: Threshold = Threshold(warning=1.5, critical=3.0)
    tpot_alert_factor: Threshold = Threshold(warning=1.0, critical=3.0)
    vllm_error_ratio: Threshold = Threshold(warning=0.01, critical=0.05)  # 5xx share per server
    litellm_error_ratio: Threshold = Threshold(warning=0.01, critical=0.05)  # failed share per proxy
    kv_cache_usage: Threshold = Threshold(warning=0.8, critical=0.95)  # alert at critical, boards show both
    # A vLLM container that exits with one of these codes was stopped on purpose (0: a clean
    # shutdown; 143: SIGTERM from `docker stop` / `compose down` ended it) and pages only if it was
    # OOM-killed; any other code (1: a crash, 137: SIGKILL from the kernel or a stop that timed out)
    # pages. Restarts by Docker's restart policy page from this many within the window.
    vllm_clean_exit_codes: tuple[int, ...] = (0, 143)
    vllm_restart_loop: int = 2
    vllm_restart_window: str = "15m"
    # Error-ratio and burn-rate alerts stay quiet below this many requests per second over their
    # window (0.05: 15 in 5 minutes, 180 in an hour): with a trickle, one failed or slow request
    # is a large share, and a model with a handful of requests an hour would page.
    min_request_rate: float = 0.05
    # Share of requests refused as the client's fault (4xx: bad request, invalid or expired key,
    # rate or budget limit) above which the info-level client-error alerts show it. Never a page:
    # the fix is with the client, and the server-error alerts leave these requests out.
    client_error_ratio: float = 0.1
    # Burn-rate alerts (Google SRE workbook): page at 14.4x over 1 h and 5 m, ticket at 6x over
    # 6 h and 30 m.
    fast_burn: float = 14.4
    slow_burn: float = 6.0
    # node-exporter filesystems that are real disks (not tmpfs, overlays, snaps).
    filesystem_selector: str = 'fstype!~"tmpfs|ramfs|squashfs|overlay|nsfs|fuse.*"'
    # node-exporter network devices that are physical NICs (not loopback, Docker's bridges and veths).
    network_device_selector: str = 'device!~"lo|veth.*|docker.*|br-.*|virbr.*|cali.*|flannel.*|cni.*|tun.*|tap.*"'
    # Host alerts: a real filesystem with less than this share of its inodes free pages
    # (HostInodesAlmostExhausted); an interface with errors on more than this share of its
    # packets warns (HostNetworkErrors). The System board draws the same lines.
    inodes_free_ratio: float = 0.05
    network_error_ratio: float = 0.01
    # A host is lost (LlmwatchHostLost, critical) when Prometheus has had no sample from it for this
    # many seconds, for host_lost_for; a host is remembered for host_lost_lookback after its last
    # sample (then the alert resolves on its own: a host removed for good needs no silence). 120 s is
    # four scrapes at the default 30 s and leaves room for the agent's remote-write batching.
    host_lost_seconds: float = 120
    host_lost_for: str = "1m"
    host_lost_lookback: str = "1d"
    ports: Ports = Ports()

    def ttft_threshold(self, slo: float) -> Threshold:
        return Threshold(round(slo * self.ttft_alert_factor.warning, 6), round(slo * self.ttft_alert_factor.critical, 6))

    def tpot_threshold(self, slo: float) -> Threshold:
        return Threshold(round(slo * self.tpot_alert_factor.warning, 6), round(slo * self.tpot_alert_factor.critical, 6))

    def with_slo(self, model: str | None = None, **values) -> Mixin:
        """A copy with the default SLO (model None) or one model's SLO changed (tests, what-ifs)."""
        if model is None:
            return replace(self, slo=replace(self.slo, default=replace(self.slo.default, **values)))
        base = self.slo.overrides.get(model, self.slo.default)
        overrides = {**self.slo.overrides, model: replace(base, **values)}
        return replace(self, slo=Slos(self.slo.default, MappingProxyType(overrides)))


# The stack's configuration. Per-model SLOs go in ``overrides``, e.g.
#   Slos(default=Slo(), overrides=MappingProxyType({
#       "meta-llama/Llama-3.1-70B-Instruct": Slo(ttft_p95_seconds=2.5),
#       "BAAI/bge-m3": Slo(ttft_p95_seconds=None, tpot_p95_seconds=None),  # embeddings: no token SLOs
#   }))
MIXIN = Mixin()


def promql_regex(text: str) -> str:
    """``text`` matched literally inside a PromQL regex string: metacharacters escaped with a
    backslash, itself doubled for the double-quoted PromQL string."""
    return re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\\\1", text)


def le_matcher(bound: float) -> str:
    """A regex for a bucket's ``le`` label: Prometheus 2.x wrote whole bounds as "1.0", 3.x as "1"."""
    if float(bound).is_integer():
        return f"{int(bound)}(\\\\.0)?"
    return promql_regex(repr(float(bound)))


def fmt(value: float) -> str:
    """A number as PromQL and humans write it: 1.5, 3, 0.001."""
    return f"{value:g}" if abs(value) >= 1e-4 else repr(value)


def seconds(value: float) -> str:
    """1.5 -> "1.5 s", 0.1 -> "100 ms"."""
    return f"{fmt(value)} s" if value >= 1 else f"{fmt(value * 1000)} ms"


def percent(value: float) -> str:
    """0.01 -> "1 %"."""
    return f"{fmt(value * 100)} %"
