"""Demo mode: every upstream of the stack, simulated, so the dashboards are alive without GPUs.

:class:`Demo` starts, in one process or one role at a time:

- three vLLM servers (two current, one old enough to use vLLM's first metric names, so the vLLM
  exporter's normalisation shows) whose completions are timed by a continuously batching engine
  (:mod:`llmwatch.simulation.demo.engine`);
- a LiteLLM proxy in front of them (admin API, its own /metrics, chat completions routed by
  model group);
- a Langfuse whose traces keep arriving;
- a status server: ``/load`` gives each engine's busy share, which the GPU exporter's simulated
  node (``gpu.simulate_load_url``) turns into GPU utilisation, power and temperature;
- optionally a gentle Poisson load from the load generator through the proxy.

Everything it serves says it is simulated: the engines' ``/version``, the proxy's readiness, the
status page, and in the stack the ``simulated="true"`` label on every series scraped from it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from llmwatch.simulation.server import FakeServer
from llmwatch.simulation.demo.engine import LiveEngine
from llmwatch.simulation.demo.servers import DemoVllmServer, litellm_router
from llmwatch.queueing.config import MonoCluster, TokenDist
from llmwatch.simulation.vllm import Engine

log = logging.getLogger(__name__)

MASTER_KEY = "sk-demo-master"  # the simulated proxy's key: not a secret
LANGFUSE_KEYS = ("pk-lf-demo", "sk-lf-demo")
PORTS = {"status": 8000, "litellm": 4000, "langfuse": 3000}
ROLES = ("all", "vllm", "litellm", "langfuse")


@dataclass(frozen=True)
class EngineSpec:
    """One simulated vLLM container; names match the GPU exporter's simulated node."""

    container: str
    port: int
    version: str
    model: str
    root: str
    group: str  # the LiteLLM model group routed to it
    share: float  # of the demo load
    cluster: MonoCluster  # one request's prefill and decode speeds
    slots: int  # requests batched at once (vLLM's max_num_seqs): beyond them a request queues


ENGINES = (
    EngineSpec("vllm-llama-3.1-70b", 8001, "0.28.0", "llama-3.1-70b", "meta-llama/Llama-3.1-70B-Instruct",
               "llama-3.1-70b", 0.6, MonoCluster(gpus=4, prefill_tokens_per_s=6000.0, decode_tokens_per_s=35.0), 16),
    EngineSpec("vllm-qwen3-32b", 8002, "0.11.0", "qwen3-32b", "Qwen/Qwen3-32B", "qwen3-32b", 0.3,
               MonoCluster(gpus=4, prefill_tokens_per_s=9000.0, decode_tokens_per_s=55.0), 16),
    # the old one: vLLM 0.6.4 writes gpu_cache_usage_perc and time_per_output_token
    EngineSpec("vllm-embed", 8003, "0.6.4", "bge-m3", "BAAI/bge-m3", "embed", 0.1,
               MonoCluster(gpus=2, prefill_tokens_per_s=20000.0, decode_tokens_per_s=120.0), 16),
)
DEFAULT_LOAD = 1.0  # requests/s the compose demo sends: every SLO holds
BREACH_LOAD = 4.0  # 2.4/s to the llama, about all its 16 slots serve: its queue and TTFT grow
PROMPT_TOKENS = TokenDist.lognormal_mean_std(600, 400, 16)
OUTPUT_TOKENS = TokenDist.lognormal_p50_p90(120, 300)


LOAD_SEED = 7
LOAD_WINDOW = 60.0  # seconds of requests planned at a time


def load_plan(rng, load_rate: float, window: float = LOAD_WINDOW) -> list[tuple[float, int, int, int]]:
    """One window of the demo's Poisson load: (seconds into the window, engine index, prompt
    tokens, output tokens) per request, spread over ENGINES by their shares. The demo sends
    these; tests replay them in simulated time (tests/demo/test_demo_alerts.py)."""
    import numpy as np

    shares = np.array([spec.share for spec in ENGINES])
    count = rng.poisson(load_rate * window)
    times = np.sort(rng.uniform(0, window, count))
    groups = rng.choice(len(ENGINES), count, p=shares / shares.sum())
    prompts = PROMPT_TOKENS.sample(rng, count)
    outputs = OUTPUT_TOKENS.sample(rng, count)
    return [(float(t), int(g), int(p), max(1, int(o))) for t, g, p, o in zip(times, groups, prompts, outputs)]


class StatusServer(FakeServer):
    """``/load``: each engine's busy share (what the simulated GPUs follow); ``/``: what runs where."""

    def __init__(self, demo: "Demo", host: str, port: int):
        super().__init__(host=host, port=port)
        self.demo = demo

    def answer(self, path, headers):
        if path.split("?", 1)[0] == "/load":
            return 200, "application/json", json.dumps(self.demo.loads()).encode()
        lines = ["llmwatch demo: every upstream here is SIMULATED (no GPU, no model)."]
        lines += [f"  {name}: {url}" for name, url in self.demo.urls().items()]
        return 200, "text/plain; charset=utf-8", ("\n".join(lines) + "\n").encode()


class Demo:
    def __init__(self, *, host: str = "127.0.0.1", role: str = "all", fixed_ports: bool = True,
                 load_rate: float = 0.0, langfuse_version: str = "4.16.0", litellm_version: str | None = None):
        from llmwatch.simulation.langfuse import FakeLangfuseServer, generate
        from llmwatch.simulation.litellm import NEWEST, FakeLitellmServer

        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        port = (lambda p: p) if fixed_ports else (lambda p: 0)
        self.role, self.load_rate = role, load_rate
        self.servers: dict[str, FakeServer] = {}
        self.engines: dict[str, DemoVllmServer] = {}
        if role in ("all", "vllm", "litellm"):
            for spec in ENGINES:
                live = LiveEngine(Engine(model_name=spec.model, root=spec.root, started=_now().timestamp()),
                                  spec.cluster, slots=spec.slots)
                self.engines[spec.container] = DemoVllmServer(live, spec.version, natural_output=OUTPUT_TOKENS,
                                                              host=host, port=port(spec.port))
            if role in ("all", "vllm"):
                self.servers.update(self.engines)
        if role in ("all", "litellm"):
            router = litellm_router({spec.group: self.engines[spec.container] for spec in ENGINES})
            self.servers["litellm"] = FakeLitellmServer(litellm_version or NEWEST, master_key=MASTER_KEY,
                                                        host=host, port=port(PORTS["litellm"]), router=router)
        if role in ("all", "langfuse"):
            self._langfuse_round = 0
            self.servers["langfuse"] = FakeLangfuseServer(
                langfuse_version, generate(_now().replace(tzinfo=None), traces=120, prefix="d0-"),
                public_key=LANGFUSE_KEYS[0], secret_key=LANGFUSE_KEYS[1], host=host, port=port(PORTS["langfuse"]))
        self.servers["status"] = StatusServer(self, host, port(PORTS["status"]))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def urls(self) -> dict[str, str]:
        return {name: server.url for name, server in self.servers.items()}

    def loads(self) -> dict[str, float]:
        return {name: round(server.live.load(), 4) for name, server in self.engines.items()}

    def start(self) -> "Demo":
        for server in self.servers.values():
            server.start()
        if "langfuse" in self.servers:
            self._spawn(self._langfuse_traces, "demo-langfuse")
        if self.load_rate > 0 and "litellm" in self.servers:
            self._spawn(self._load, "demo-load")
        return self

    def _spawn(self, target, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _langfuse_traces(self) -> None:
        """New traces every minute, as an application keeps sending them."""
        from llmwatch.simulation.langfuse import generate

        data = self.servers["langfuse"].data
        while not self._stop.wait(60.0):
            self._langfuse_round += 1
            fresh = generate(_now().replace(tzinfo=None), traces=8, seed=self._langfuse_round,
                             span=timedelta(minutes=1), projects=data.projects, prefix=f"d{self._langfuse_round}-")
            data.traces.extend(fresh.traces)
            data.observations.extend(fresh.observations)
            data.scores.extend(fresh.scores)

    def _load(self) -> None:
        """Poisson requests through the proxy, spread over the model groups, until stopped."""
        import numpy as np

        from llmwatch.tools.loadgen.run import Endpoint, Planned, drive

        rng = np.random.default_rng(LOAD_SEED)
        url = self.servers["litellm"].url
        headers = (("Authorization", f"Bearer {MASTER_KEY}"),)
        window = LOAD_WINDOW
        while not self._stop.is_set():
            by_group: dict[int, list] = {}
            for t, g, p, o in load_plan(rng, self.load_rate, window):
                by_group.setdefault(g, []).append(Planned(t, p, o))

            async def minute():
                await asyncio.gather(*(drive(Endpoint(ENGINES[g].group, url, "openai", ENGINES[g].group, headers),
                                             planned, timeout=120, stall=60) for g, planned in by_group.items()),
                                     asyncio.sleep(window))

            asyncio.run(minute())

    def close(self) -> None:
        self._stop.set()
        for server in self.servers.values():
            server.close()


def _now() -> datetime:
    return datetime.now(timezone.utc)
