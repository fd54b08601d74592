"""What the probe streams to: engines from settings, the vLLM exporter's servers, LiteLLM's groups.

Each round asks :class:`TargetSource` for the current list. vLLM containers come and go through
Docker, so the list is rebuilt every round. A round does no other I/O: a target whose models
must be read from ``/v1/models`` is listed with ``list_models`` set, and :meth:`TargetSource.resolve`
reads them in that target's own turn, so a slow server delays only itself. Model lists are cached
for ``models_seconds`` and read under one deadline and a size cap (a server that drips its answer
a byte at a time is given up on, not waited for). A target whose model list cannot be read keeps
``problem`` set, so its failure shows as ``up 0`` instead of the target silently vanishing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
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
                 models_seconds: float = 300.0, timeout: float = 5.0, max_body_bytes: int = 1 << 20,
                 clock: Callable[[], float] = time.monotonic):
        self.static, self.keys = list(static), dict(keys or {})
        self.vllm_static, self.discovery = list(vllm_static), discovery
        self.litellm_url, self.litellm_key, self.litellm_models = litellm_url.rstrip("/"), litellm_key, litellm_models
        self.models_seconds, self.timeout, self.clock = models_seconds, timeout, clock
        self.max_body_bytes = max_body_bytes
        self._models: ExpiringMap[str, tuple[str, ...]] = ExpiringMap(models_seconds, clock)  # url -> ids

    async def _list_models(self, client: httpx.AsyncClient, url: str, headers: dict[str, str],
                           base_only: bool) -> tuple[str, ...]:
        if self._models.fresh(url):
            return self._models[url]
        async with asyncio.timeout(self.timeout):
            async with client.stream("GET", url + "/v1/models", headers=headers, timeout=self.timeout) as response:
                if response.status_code != 200:
                    raise ValueError(f"HTTP {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > self.max_body_bytes:
                        raise ValueError(f"answer larger than {self.max_body_bytes} bytes")
        ids = tuple(model_ids(bytes(body), base_only=base_only))
        return self._models.set(url, ids)

    def _target(self, *, name: str, url: str, api: str, via: str, source: str, model: str, key: str,
                base_only: bool = True, listed: tuple[str, ...] = ()) -> Probe:
        headers = tuple({"Authorization": f"Bearer {key}"}.items()) if key else ()
        if model or listed:
            return Probe(name, url, api, via, source, (model,) if model else listed, headers)
        if api != "openai":  # TGI serves one model and needs no name
            return Probe(name, url, api, via, source, ("default",), headers)
        return Probe(name, url, api, via, source, (), headers, list_models=True, base_only=base_only)

    async def resolve(self, client: httpx.AsyncClient, probe: Probe) -> Probe:
        """``probe`` with its models read from ``/v1/models`` if it needs them (cached), or with
        ``problem`` set when they cannot be read within ``timeout`` and ``max_body_bytes``."""
        if not probe.list_models:
            return probe
        try:
            ids = await self._list_models(client, probe.url, dict(probe.headers), probe.base_only)
        except TimeoutError:
            problem = f"/v1/models: no complete answer within {self.timeout:g}s"
        except (httpx.HTTPError, ValueError, KeyError, AttributeError) as e:
            problem = f"/v1/models: {type(e).__name__}: {e}" if str(e) else f"/v1/models: {type(e).__name__}"
        else:
            # an engine is probed on its base model; LiteLLM on every group (or the chosen ones)
            return replace(probe, models=ids if probe.via == "litellm" else ids[:1], list_models=False)
        log.warning("cannot list the models of a probe target", extra={"target": probe.target, "error": problem})
        return replace(probe, problem=problem, list_models=False)

    async def probes(self) -> tuple[list[Probe], list[str]]:
        """The targets of this round, and the sources that could not be asked (docker). Nothing
        here waits on a target: model lists are read later, by :meth:`resolve`."""
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
        for engine in engines:
            if engine.name in taken:
                continue
            taken.add(engine.name)
            probes.append(self._target(name=engine.name, url=engine.url, api="openai", via="direct",
                                       source="docker" if engine.source == "docker" else "vllm", model="", key=""))
        if self.litellm_url:
            probes.append(self._target(name="litellm", url=self.litellm_url, api="openai", via="litellm",
                                       source="litellm", model="", key=self.litellm_key, base_only=False,
                                       listed=self.litellm_models))
        return probes, failed

    def close(self) -> None:
        if self.discovery is not None:
            self.discovery.close()
