"""Named probe situations, shared by the golden tests and the metric-catalog test.

Each runs one round of probes against loopback servers and returns the /metrics text. Probe
timing uses a stepping clock per probe (each reading 50 ms after the last), so TTFT, TPOT and
end-to-end values depend only on the events a server sent, and the expositions are repeatable.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from pathlib import Path

from llmwatch.simulation.demo.engine import LiveEngine
from llmwatch.simulation.demo.servers import DemoVllmServer, litellm_router
from llmwatch.simulation.litellm import FakeLitellmServer
from llmwatch.exporters.probe import StaticTarget
from llmwatch.exporters.probe.collector import ProbeExporter
from llmwatch.exporters.probe.targets import TargetSource
from llmwatch.queueing.config import MonoCluster
from llmwatch.upstreams.vllm_discovery import Target
from llmwatch.simulation.vllm import Engine
from tests.fakes.streaming import CUT, ScriptedStreamServer, openai_events
from tests.procs import dead_url, render

NOW = 1_795_000_000.0
TGI = [b'data: {"token": {"id": 1, "text": " a", "special": false}, "generated_text": null, "details": null}\n\n',
       b'data: {"token": {"id": 2, "text": " b", "special": false}, "generated_text": null, "details": null}\n\n',
       b'data: {"token": {"id": 3, "text": " c", "special": false}, "generated_text": " a b c", '
       b'"details": {"finish_reason": "length", "generated_tokens": 3}}\n\n']
OLLAMA = [b'{"model": "llama3.2", "message": {"role": "assistant", "content": "a"}, "done": false}\n',
          b'{"model": "llama3.2", "message": {"role": "assistant", "content": "b"}, "done": false}\n',
          b'{"model": "llama3.2", "message": {"role": "assistant", "content": ""}, "done": true, "eval_count": 2}\n']


def stepping_clock():
    steps = itertools.count()
    return lambda: next(steps) * 0.05


def run_round(source: TargetSource, expected_probes: int, **kwargs) -> str:
    exporter = ProbeExporter(source, interval=3600, timeout=kwargs.pop("timeout", 5.0),
                             stall=kwargs.pop("stall", 2.0), prompt="Say ok.", max_tokens=8, concurrency=4,
                             now=lambda: NOW, stream_clock=stepping_clock, **kwargs)
    with contextlib.closing(exporter):
        assert exporter.wait_for(lambda e: e.rounds >= 1 and e.probes_done >= expected_probes
                                and e.turns >= len(e.state.targets), 20), "probes did not end"
        return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", render(exporter))


def demo_engine(model: str = "qwen3-32b") -> DemoVllmServer:
    live = LiveEngine(Engine(model_name=model), MonoCluster(gpus=2, prefill_tokens_per_s=50000.0,
                                                            decode_tokens_per_s=2000.0))
    return DemoVllmServer(live, "0.28.0")


def engines(tmp_path: Path) -> str:
    """Every way in: a vLLM server of the vLLM exporter's (model from /v1/models), TGI and Ollama
    natively, an OpenAI-compatible gateway with a key, and LiteLLM's three groups: it routes one,
    the other chat group answers 400, the embedding group is not probed (its model_info.mode)."""
    with contextlib.ExitStack() as stack:
        vllm = stack.enter_context(demo_engine())
        litellm = stack.enter_context(FakeLitellmServer(router=litellm_router({"qwen3-32b": vllm}, 0)))
        tgi = stack.enter_context(ScriptedStreamServer(TGI))
        ollama = stack.enter_context(ScriptedStreamServer(OLLAMA, content_type="application/x-ndjson"))
        gateway = stack.enter_context(ScriptedStreamServer(openai_events(4)))
        source = TargetSource(
            static=[StaticTarget("tgi-mistral", tgi.url, "tgi", "", ""),
                    StaticTarget("ollama", ollama.url, "ollama", "llama3.2", ""),
                    StaticTarget("gateway", gateway.url, "openai", "gpt-oss", "GATEWAY_KEY")],
            keys={"gateway": "sk-gateway"}, vllm_static=[Target("vllm-qwen3-32b", vllm.url, "static")],
            litellm_url=litellm.url, litellm_key="sk-master")
        text = run_round(source, 6)
        assert gateway.headers[-1]["authorization"] == "Bearer sk-gateway"
        return text


def failures(tmp_path: Path) -> str:
    """Every way a probe fails: nothing listening, a stall after two tokens, an error event, a cut
    connection, garbage, HTTP 500, and a server whose model list cannot be read."""
    with contextlib.ExitStack() as stack:
        servers = {
            "stalls": ScriptedStreamServer(openai_events(4)[:3] + [3.0] + openai_events(4)[3:]),
            "errors": ScriptedStreamServer(openai_events(4)[:2] + [b'data: {"error": {"message": "boom"}}\n\n']),
            "cut": ScriptedStreamServer(openai_events(4)[:3] + [CUT]),
            "garbage": ScriptedStreamServer([b"<html>bad gateway</html>"], content_type="text/html"),
            "http-500": ScriptedStreamServer([b'{"error": "internal"}'], status=500, content_type="application/json"),
        }
        for server in servers.values():
            stack.enter_context(server)
        no_models = stack.enter_context(ScriptedStreamServer(openai_events(1)))
        static = [StaticTarget(name, server.url, "openai", "m", "") for name, server in servers.items()]
        static.append(StaticTarget("down", dead_url(), "openai", "m", ""))
        source = TargetSource(static=static, vllm_static=[Target("vllm-no-models", no_models.url, "static")])
        return run_round(source, 6, stall=0.5)


SCENARIOS = {"engines": engines, "failures": failures}
