"""What the probe streams to: engines from settings, the vLLM exporter's servers, LiteLLM's groups.

Each round asks :class:`TargetSource` for the current list. vLLM containers come and go through
Docker, so the list is rebuilt every round. A round does no other I/O: a target whose models
must be read from ``/v1/models`` is listed with ``list_models`` set, and :meth:`TargetSource.resolve`
reads them in that target's own turn, so a slow server delays only itself. Model lists are cached
for ``models_seconds`` and read under one deadline and a size cap (a server that drips its answer
a byte at a time is given up on, not waited for). A target whose model list cannot be read keeps
``problem`` set, so its failure shows as ``up 0`` instead of the target silently vanishing.

Only what serves chat or text completions is probed. LiteLLM says per model group what it is
(``model_info.mode`` of ``/model/info``): embedding, rerank, image or audio groups are listed in
``skipped`` with their mode, never sent a completion. A vLLM server does not say (``/v1/models``
carries no task), so its answer decides (the collector's ``unsupported`` outcome). A container
labelled ``llmwatch.probe=false`` and a model group matching ``probe.litellm_exclude`` are left out
too, while the vLLM and LiteLLM exporters keep watching them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from fnmatch import fnmatchcase
from dataclasses import dataclass, replace
from typing import TypeVar

import httpx

from llmwatch.core.cache import ExpiringMap
from llmwatch.exporters.probe import StaticTarget
from llmwatch.upstreams.vllm_discovery import DockerDiscovery, Target

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Probe:
    """One target and the models probed on it, one after the other."""

    target: str
    url: str
    api: str
    via: str  # direct (an engine) or litellm (through the proxy)
    source: str  # settings, vllm (the vLLM exporter's settings), docker, litellm
    models: tuple[str, ...]
    headers: tuple[tuple[str, str], ...] = ()
    problem: str = ""  # why there is nothing to probe (model list unreadable)
    list_models: bool = False  # the models come from /v1/models, read in the target's turn
    base_only: bool = True  # of those, only base models (not LoRA adapters)
    completions: tuple[str, ...] = ()  # of ``models``, those streamed through /v1/completions
    skipped: tuple[tuple[str, str], ...] = ()  # (model, reason) listed but not probed


# LiteLLM's model_info.mode -> the API a probe of the group streams. "None": no mode (a model the
# cost map does not know and whose config sets no model_info.mode), probed as chat; an embedding
# model among those answers "unsupported" until its config says model_info: {mode: embedding}.
PROBED_MODES = {"chat": "openai", "None": "openai", "completion": "completions"}


def model_ids(payload: bytes, *, base_only: bool) -> list[str]:
    """Model ids of an OpenAI ``/v1/models`` answer; ``base_only`` leaves out LoRA adapters
    (vLLM lists them with a parent). Raises ValueError for anything else."""
    data = json.loads(payload).get("data")
    if not isinstance(data, list):
        raise ValueError("no data list")
    ids = [str(card["id"]) for card in data if isinstance(card, dict) and card.get("id")
           and not (base_only and card.get("parent"))]
    if not ids:
        raise ValueError("no models listed")
    return ids


def group_modes(payload: bytes) -> dict[str, str]:
    """Model group -> LiteLLM's mode for it, from ``/model/info``: one entry per deployment,
    ``{model_name, litellm_params, model_info: {mode, ...}}``; a mode that is null or absent reads
    "None", as the LiteLLM exporter's deployment_info shows it. A group whose deployments disagree
    takes a mode that can be probed, chat first. Raises ValueError for anything else."""
    data = json.loads(payload).get("data")
    if not isinstance(data, list):
        raise ValueError("no data list")
    modes: dict[str, list[str]] = {}
    for entry in data:
        info = entry.get("model_info") if isinstance(entry, dict) else None
        if isinstance(info, dict) and isinstance(entry.get("model_name"), str) and entry["model_name"]:
            mode = info.get("mode")
            modes.setdefault(entry["model_name"], []).append("None" if mode is None else str(mode))
    if not modes:
        raise ValueError("no model groups listed")
    return {group: next((m for m in ("chat", "None", "completion") if m in found), found[0])
            for group, found in modes.items()}


class NotFound(ValueError):
    """HTTP 404: the server has no such endpoint (an OpenAI-compatible server that is not LiteLLM)."""


async def in_daemon_thread(work: Callable[[], T]) -> T:
    """``await work()`` run in a daemon thread. Not the loop's executor: the interpreter joins
    executor threads at exit, so a Docker call that hangs would hold the process up after SIGTERM."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()

    def settle(result, error) -> None:
        if not future.done():  # the awaiting turn may have been cancelled
            future.set_exception(error) if error is not None else future.set_result(result)

    def run() -> None:
        try:
            result, error = work(), None
        except Exception as e:
            result, error = None, e
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:  # the loop has closed: nobody waits any more
            pass

    threading.Thread(target=run, name="probe-docker", daemon=True).start()
    return await future


class TargetSource:
    def __init__(self, *, static: Sequence[StaticTarget] = (), keys: dict[str, str] | None = None,
                 vllm_static: Sequence[Target] = (), discovery: DockerDiscovery | None = None,
                 litellm_url: str = "", litellm_key: str = "", litellm_models: tuple[str, ...] = (),
                 litellm_exclude: tuple[str, ...] = (), models_seconds: float = 300.0, timeout: float = 5.0,
                 max_body_bytes: int = 1 << 20, clock: Callable[[], float] = time.monotonic):
        self.static, self.keys = list(static), dict(keys or {})
        self.vllm_static, self.discovery = list(vllm_static), discovery
        self.litellm_url, self.litellm_key, self.litellm_models = litellm_url.rstrip("/"), litellm_key, litellm_models
        self.litellm_exclude = litellm_exclude
        self.models_seconds, self.timeout, self.clock = models_seconds, timeout, clock
        self.max_body_bytes = max_body_bytes
        # (via, url) -> (models, completions, skipped), as :meth:`_list_models` read them
        self._models: ExpiringMap[tuple[str, str], tuple] = ExpiringMap(models_seconds, clock)

    async def _get(self, client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> bytes:
        """The body of a GET, within ``timeout`` and ``max_body_bytes``."""
        async with asyncio.timeout(self.timeout):
            async with client.stream("GET", url, headers=headers, timeout=self.timeout) as response:
                if response.status_code == 404:
                    raise NotFound("HTTP 404")
                if response.status_code != 200:
                    raise ValueError(f"HTTP {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > self.max_body_bytes:
                        raise ValueError(f"answer larger than {self.max_body_bytes} bytes")
        return bytes(body)

    async def _list_models(self, client: httpx.AsyncClient, probe: Probe) -> Probe:
        """``probe`` with its models: an engine's base model from /v1/models; LiteLLM's groups from
        /model/info with their modes (/v1/models, every group as chat, from a gateway without it)."""
        key = (probe.via, probe.url)
        if not self._models.fresh(key):
            headers = dict(probe.headers)
            if probe.via != "litellm":
                ids = model_ids(await self._get(client, probe.url + "/v1/models", headers), base_only=probe.base_only)
                self._models.set(key, (tuple(ids[:1]), (), ()))
            else:
                try:
                    modes = group_modes(await self._get(client, probe.url + "/model/info", headers))
                except NotFound:
                    ids = model_ids(await self._get(client, probe.url + "/v1/models", headers), base_only=False)
                    modes = dict.fromkeys(ids, "None")
                self._models.set(key, (tuple(g for g, mode in modes.items() if mode in PROBED_MODES),
                                       tuple(g for g, mode in modes.items() if PROBED_MODES.get(mode) == "completions"),
                                       tuple((g, f"mode_{mode}") for g, mode in modes.items()
                                             if mode not in PROBED_MODES)))
        models, completions, skipped = self._models[key]
        resolved = replace(probe, models=models, completions=completions, skipped=skipped, list_models=False)
        return self._exclude(resolved) if probe.via == "litellm" else resolved

    def _exclude(self, probe: Probe) -> Probe:
        """``probe`` without the model groups ``litellm_exclude`` matches (they become skipped)."""
        out = tuple(m for m in probe.models if any(fnmatchcase(m, p) for p in self.litellm_exclude))
        if not out:
            return probe
        return replace(probe, models=tuple(m for m in probe.models if m not in out),
                       skipped=probe.skipped + tuple((m, "excluded") for m in out))

    def _target(self, *, name: str, url: str, api: str, via: str, source: str, model: str, key: str,
                base_only: bool = True, listed: tuple[str, ...] = ()) -> Probe:
        headers = tuple({"Authorization": f"Bearer {key}"}.items()) if key else ()
        if model or listed:
            probe = Probe(name, url, api, via, source, (model,) if model else listed, headers)
            return self._exclude(probe) if via == "litellm" else probe
        if api not in ("openai", "completions"):  # TGI serves one model and needs no name
            return Probe(name, url, api, via, source, ("default",), headers)
        return Probe(name, url, api, via, source, (), headers, list_models=True, base_only=base_only)

    async def resolve(self, client: httpx.AsyncClient, probe: Probe) -> Probe:
        """``probe`` with its models read (cached) if it needs them, or with ``problem`` set when
        they cannot be read within ``timeout`` and ``max_body_bytes``."""
        if not probe.list_models:
            return probe
        path = "/model/info" if probe.via == "litellm" else "/v1/models"
        try:
            return await self._list_models(client, probe)
        except TimeoutError:
            problem = f"{path}: no complete answer within {self.timeout:g}s"
        except (httpx.HTTPError, ValueError, KeyError, AttributeError, TypeError) as e:
            problem = f"{path}: {type(e).__name__}: {e}" if str(e) else f"{path}: {type(e).__name__}"
        log.warning("cannot list the models of a probe target", extra={"target": probe.target, "error": problem})
        return replace(probe, problem=problem, list_models=False)

    async def probes(self) -> tuple[list[Probe], list[str], list[str]]:
        """The targets of this round, the sources that could not be asked (docker), and the vLLM
        containers labelled out of the probe. Nothing here waits on a target: model lists are read
        later, by :meth:`resolve`."""
        failed: list[str] = []
        probes = [self._target(name=t.name, url=t.url, api=t.api, via="direct", source="settings",
                               model=t.model, key=self.keys.get(t.name, "")) for t in self.static]
        engines = list(self.vllm_static)
        if self.discovery is not None:
            try:
                engines += await in_daemon_thread(self.discovery.targets)
            except Exception as e:  # docker SDK and requests errors: the engine cannot be asked
                log.warning("cannot list vLLM containers", extra={"error": str(e)})
                failed.append("docker")
        taken = {t.name for t in self.static}
        opted_out = []
        for engine in engines:
            if engine.name in taken:
                continue
            taken.add(engine.name)
            if not engine.probe:
                opted_out.append(engine.name)
                continue
            probes.append(self._target(name=engine.name, url=engine.url, api="openai", via="direct",
                                       source="docker" if engine.source == "docker" else "vllm", model="", key=""))
        if self.litellm_url:
            probes.append(self._target(name="litellm", url=self.litellm_url, api="openai", via="litellm",
                                       source="litellm", model="", key=self.litellm_key, base_only=False,
                                       listed=self.litellm_models))
        return probes, failed, opted_out

    def close(self) -> None:
        if self.discovery is not None:
            self.discovery.close()
