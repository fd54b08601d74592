"""Probe exporter (``llmwatch probe``, port 9905): latency as a user sees it.

Every ``interval_seconds`` it streams a tiny chat completion through the LiteLLM proxy (per model
group that chats) and straight to each engine (every vLLM server the vLLM exporter watches, but
those labelled ``llmwatch.probe=false``, plus TGI, Ollama or other OpenAI-compatible servers
listed in settings), and records TTFT, time per output token, end-to-end time and the outcome per
target and model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from llmwatch.core.exporter import ExporterSpec
from llmwatch.core.settings import Settings, setting
from llmwatch.upstreams.streaming import APIS
from llmwatch.core.checks import check_url
from llmwatch.upstreams.vllm_discovery import DiscoverySettings

DESCRIPTION = ("Streams a tiny chat completion through LiteLLM and to each engine on an interval: "
               "client-side TTFT, time per output token, end-to-end time and outcome per target and model.")


@dataclass(frozen=True)
class LitellmProxySettings:
    """The ``[litellm]`` keys the probe reads: where the proxy is and its master key."""

    url: str = setting(help="the proxy's base URL")
    master_key: str = setting(secret=True, help="LiteLLM master key; environment only")


# The probe follows the vLLM exporter's targets and the LiteLLM exporter's proxy (partial views).
READS = {"vllm": DiscoverySettings, "litellm": LitellmProxySettings}


@dataclass(frozen=True)
class StaticTarget:
    """An engine listed in ``probe.targets``."""

    name: str
    url: str
    api: str  # openai, tgi or ollama
    model: str  # empty: the first model the server lists (OpenAI API)
    api_key_env: str  # the environment variable holding its API key, if it needs one


_TARGET_KEYS = {"name", "url", "api", "model", "api_key_env"}


def parse_targets(raw: Sequence) -> list[StaticTarget]:
    """``probe.targets``: tables ``{name, url, api, model, api_key_env}`` (name and url required)."""
    if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence):
        raise ValueError(f"must be a list of {{name, url, api, model, api_key_env}} tables, got {raw!r}")
    targets, names = [], set()
    for i, entry in enumerate(raw):
        where = f"entry {i + 1}"
        if not isinstance(entry, Mapping) or not {"name", "url"} <= set(entry) or set(entry) - _TARGET_KEYS:
            raise ValueError(f"{where} must be a table with name and url, and optionally api, model and "
                             f"api_key_env; got {entry!r}")
        name = str(entry["name"]).strip()
        if not name or name in names or name == "litellm":
            raise ValueError(f"{where}: name {name!r} is empty, used twice or reserved (litellm)")
        names.add(name)
        api = str(entry.get("api", "openai"))
        if api not in APIS:
            raise ValueError(f"{where}: api must be one of {', '.join(APIS)}, got {api!r}")
        model = str(entry.get("model", ""))
        if api == "ollama" and not model:
            raise ValueError(f"{where}: an Ollama target needs a model (the name `ollama list` shows)")
        key_env = str(entry.get("api_key_env", ""))
        if key_env and not key_env.replace("_", "").isalnum():
            raise ValueError(f"{where}: api_key_env must be an environment variable name, got {key_env!r}")
        targets.append(StaticTarget(name, check_url(str(entry["url"]), where), api, model, key_env))
    return targets


def _models(value) -> None:
    if not all(isinstance(m, str) and m for m in value):
        raise ValueError(f"must be a list of model group names, got {value!r}")


@dataclass(frozen=True)
class ProbeSettings:
    port: int = setting(min=1, max=65535)
    interval_seconds: float = setting(min=1, max=3600, help="a probe of every target this often")
    timeout_seconds: float = setting(min=0.5, max=600, help="one probe, start to end, at most")
    stall_seconds: float = setting(min=0.1, max=600, help="the connection, the first token, each next one")
    prompt: str = setting(help="the probe's user message")
    max_tokens: int = setting(min=2, max=4096, help="tokens a probe asks for")
    concurrency: int = setting(min=1, max=256, help="probes in flight at once, over all targets")
    targets: list = setting(check=parse_targets, help="engines: {name, url, api, model, api_key_env}")
    vllm: bool = setting(help="probe every vLLM server the vLLM exporter finds (its [vllm] settings)")
    litellm: bool = setting(help="probe each model group through the LiteLLM proxy at litellm.url")
    litellm_models: list = setting(check=_models, help="model groups probed through LiteLLM; empty: all that chat")
    litellm_exclude: list = setting(check=_models, help="model groups never probed (shell patterns: embed-*)")
    litellm_key: str = setting(secret=True, help="LiteLLM key for the probe; empty: litellm.master_key")
    models_cache_seconds: float = setting(min=0, max=86400, help="model lists read again after this long")
    max_body_bytes: int = setting(min=1024, max=1 << 30, help="a model list larger than this is refused")


def build(settings: Settings[ProbeSettings]):
    from llmwatch.exporters.probe.collector import ProbeExporter
    from llmwatch.exporters.probe.targets import TargetSource
    from llmwatch.upstreams.vllm_discovery import discovery_from, parse_static_targets

    probe = settings.exporter
    vllm: DiscoverySettings = settings.reads["vllm"]
    litellm: LitellmProxySettings = settings.reads["litellm"]
    discovery = discovery_from(vllm, settings.docker) if probe.vllm else None
    static = parse_targets(probe.targets)
    keys = {t.name: os.environ.get(t.api_key_env, "") for t in static if t.api_key_env}
    source = TargetSource(
        static=static, keys=keys,
        vllm_static=parse_static_targets(vllm.targets) if probe.vllm else [], discovery=discovery,
        litellm_url=litellm.url if probe.litellm else "", litellm_key=probe.litellm_key or litellm.master_key,
        litellm_models=tuple(probe.litellm_models), litellm_exclude=tuple(probe.litellm_exclude),
        models_seconds=probe.models_cache_seconds,
        timeout=min(probe.stall_seconds, probe.timeout_seconds), max_body_bytes=probe.max_body_bytes)
    return ProbeExporter(source, interval=probe.interval_seconds, timeout=probe.timeout_seconds,
                         stall=probe.stall_seconds, prompt=probe.prompt, max_tokens=probe.max_tokens,
                         concurrency=probe.concurrency)


SPEC = ExporterSpec(name="probe", summary="TTFT and TPOT as a user sees them, through LiteLLM and per engine",
                    settings=ProbeSettings, description=DESCRIPTION, build=build, reads=READS)
