"""A well-mannered probe: it probes only what chats, stays off what is labelled or excluded
(while the other exporters keep watching it), and says what it is wherever it lands."""

from __future__ import annotations

import contextlib
import json

import pytest

from llmwatch.core import settings as settings_mod
from llmwatch.exporters import known_sections
from llmwatch.exporters.probe import READS, ProbeSettings, StaticTarget, build
from llmwatch.exporters.probe.collector import ProbeExporter
from llmwatch.exporters.probe.targets import TargetSource
from llmwatch.simulation.demo.servers import litellm_router
from llmwatch.simulation.litellm import FakeLitellmServer, ProxyState, deployment
from llmwatch.upstreams.vllm_discovery import DockerDiscovery, MatchRules, Target
from tests.fakes.docker_engine import FakeDockerEngine, container
from tests.fakes.streaming import ScriptedStreamServer, openai_events
from tests.probe.scenarios import demo_engine
from tests.procs import render, samples, value
from tests.vllm.scenarios import make_exporter

# vLLM's answers for a pooling model: older versions keep the route and say so (the message is
# vLLM's own, create_error_response's body), newer ones register no generate route (FastAPI's 404)
VLLM_400 = json.dumps({"error": {"message": "The model does not support Chat Completions API",
                                 "type": "BadRequestError", "param": None, "code": 400}}).encode()
VLLM_OLD_400 = json.dumps({"object": "error", "message": "The model does not support Chat Completions API",
                           "type": "BadRequestError", "param": None, "code": 400}).encode()
ROUTE_404 = b'{"detail":"Not Found"}'


def exporter(source: TargetSource, **kwargs) -> ProbeExporter:
    options = dict(interval=0.05, timeout=5.0, stall=2.0, prompt="Say ok.", max_tokens=4, concurrency=4) | kwargs
    return ProbeExporter(source, **options)


def names(text: str, name: str, **labels) -> list[dict]:
    return [dict(ls) for (n, ls), _ in samples(text).items() if n == name and set(labels.items()) <= ls]


def test_an_embedding_group_is_not_probed_and_raises_no_failure():
    state = ProxyState(deployments=[
        deployment("chat", "Qwen/Qwen3-32B", "http://vllm-qwen:8000/v1", "d-chat"),
        deployment("embed", "BAAI/bge-m3", "http://vllm-embed:8000/v1", "d-embed", mode="embedding"),
        deployment("rerank", "BAAI/bge-reranker-v2-m3", "http://vllm-rerank:8000/v1", "d-rerank", mode="rerank")])
    asked: list[str] = []
    with demo_engine("Qwen/Qwen3-32B") as engine:
        route = litellm_router({"chat": engine}, 0)
        with FakeLitellmServer(state=state, router=lambda g, r: asked.append(g) or route(g, r)) as proxy:
            source = TargetSource(litellm_url=proxy.url, litellm_key="sk-master")
            with contextlib.closing(exporter(source)) as probe:
                assert probe.wait_for(lambda e: e.probes_done >= 3, 20)
                text = render(probe)
    assert set(asked) == {"chat"}
    assert value(text, "llmwatch_probe_success", target="litellm", model="chat") == 1
    assert value(text, "llmwatch_probe_up", target="litellm") == 1
    assert not names(text, "llmwatch_probe_success", model="embed")
    assert not names(text, "llmwatch_probe_requests_total", model="embed")
    assert value(text, "llmwatch_probe_skipped_info", target="litellm", model="embed", reason="mode_embedding") == 1
    assert value(text, "llmwatch_probe_skipped_info", target="litellm", model="rerank", reason="mode_rerank") == 1


def test_a_completion_group_is_probed_through_v1_completions_and_excluded_groups_not_at_all(monkeypatch):
    with ScriptedStreamServer(openai_events(2), modes={"chat": "chat", "instruct": "completion",
                                                       "embed-a": "embedding", "paid-gpt": None}) as proxy:
        monkeypatch.setenv("LLMWATCH_VLLM__DISCOVERY", "false")
        monkeypatch.setenv("LLMWATCH_LITELLM__URL", proxy.url)
        monkeypatch.setenv("LLMWATCH_PROBE__INTERVAL_SECONDS", "3600")
        monkeypatch.setenv("LLMWATCH_PROBE__LITELLM_EXCLUDE", '["paid-*"]')
        loaded = settings_mod.load("probe", ProbeSettings, known_sections=known_sections(), reads=READS)
        with contextlib.closing(build(loaded)) as probe:
            assert probe.wait_for(lambda e: e.probes_done >= 2, 30)
            text = render(probe)
    sent = dict(zip((b["model"] for b in proxy.bodies), proxy.paths))
    assert sent == {"chat": "/v1/chat/completions", "instruct": "/v1/completions"}
    instruct = next(b for b in proxy.bodies if b["model"] == "instruct")
    assert instruct["prompt"] == loaded.exporter.prompt and "messages" not in instruct
    assert value(text, "llmwatch_probe_success", target="litellm", model="instruct") == 1
    assert value(text, "llmwatch_probe_skipped_info", target="litellm", model="paid-gpt", reason="excluded") == 1
    assert value(text, "llmwatch_probe_skipped_info", target="litellm", model="embed-a", reason="mode_embedding") == 1


@pytest.mark.parametrize("status,body", [(400, VLLM_400), (400, VLLM_OLD_400), (404, ROUTE_404)])
def test_a_vllm_server_that_does_not_chat_is_unsupported_not_failed_and_not_asked_again(status, body):
    with ScriptedStreamServer([body], status=status, content_type="application/json", models=["bge-m3"]) as embed, \
            ScriptedStreamServer(openai_events(2), models=["qwen"]) as chat:
        source = TargetSource(vllm_static=[Target("vllm-embed", embed.url, "static"),
                                           Target("vllm-qwen", chat.url, "static")])
        with contextlib.closing(exporter(source)) as probe:
            assert probe.wait_for(lambda e: e.turns >= 10 and e.probes_done >= 3, 20)
            text = render(probe)
    assert len(embed.bodies) == 1  # ten turns, one question: the answer is kept for models_cache_seconds
    assert value(text, "llmwatch_probe_requests_total", target="vllm-embed", model="bge-m3", outcome="unsupported") == 1
    assert value(text, "llmwatch_probe_requests_total", target="vllm-embed", model="bge-m3", outcome="http_status") == 0
    assert not names(text, "llmwatch_probe_success", target="vllm-embed")  # what ProbeThroughLitellmFailing reads
    assert value(text, "llmwatch_probe_up", target="vllm-embed") == 1  # nothing on it fails
    assert value(text, "llmwatch_probe_skipped_info", target="vllm-embed", model="bge-m3", reason="unsupported") == 1
    assert value(text, "llmwatch_probe_success", target="vllm-qwen", model="qwen") == 1


def test_a_missing_route_is_unsupported_only_where_the_server_is_known_to_be_there():
    # a target from probe.targets with its model set was never asked /v1/models: a 404 from a
    # wrong base path must stay a failure; a 404 naming the model is a failure everywhere
    missing_model = json.dumps({"error": {"message": "The model `qwen` does not exist.", "type": "NotFoundError",
                                          "param": None, "code": 404}}).encode()
    with ScriptedStreamServer([ROUTE_404], status=404, content_type="application/json") as wrong_path, \
            ScriptedStreamServer([missing_model], status=404, content_type="application/json",
                                 models=["qwen"]) as no_model:
        source = TargetSource(static=[StaticTarget("wrong-path", wrong_path.url, "openai", "m", "")],
                              vllm_static=[Target("vllm-qwen", no_model.url, "static")])
        with contextlib.closing(exporter(source, interval=3600)) as probe:
            assert probe.wait_for(lambda e: e.probes_done >= 2, 20)
            text = render(probe)
    for target, model in (("wrong-path", "m"), ("vllm-qwen", "qwen")):
        assert value(text, "llmwatch_probe_requests_total", target=target, model=model, outcome="http_status") == 1
        assert value(text, "llmwatch_probe_success", target=target, model=model) == 0


def test_the_label_keeps_a_container_out_of_the_probe_and_in_the_vllm_exporter(tmp_path):
    with demo_engine("qwen") as chat, demo_engine("bge-m3") as embed:
        containers = [container("a" * 64, "vllm-qwen", ports={8000: chat.port}),
                      container("b" * 64, "vllm-embed", ports={8000: embed.port},
                                labels={"llmwatch.probe": "false"})]
        with FakeDockerEngine(tmp_path / "docker.sock", containers) as docker:
            rules = MatchRules(host_address="127.0.0.1")
            vllm = make_exporter([], discovery=DockerDiscovery(docker.url, 5.0, rules))
            try:
                scraped = render(vllm)
            finally:
                vllm.close()
            source = TargetSource(discovery=DockerDiscovery(docker.url, 5.0, rules))
            with contextlib.closing(exporter(source, interval=3600)) as probe:
                assert probe.wait_for(lambda e: e.probes_done >= 1 and e.turns >= 1, 20)
                text = render(probe)
    assert value(scraped, "llmwatch_vllm_up", container="vllm-embed") == 1  # still watched
    assert names(scraped, "vllm:num_requests_running", container="vllm-embed")
    assert [t["target"] for t in names(text, "llmwatch_probe_target_info")] == ["vllm-qwen"]
    assert value(text, "llmwatch_probe_skipped_info", target="vllm-embed", model="", reason="label") == 1
    assert not [r for r in embed.requests if "completions" in r]
    assert [r for r in chat.requests if "completions" in r]


def test_probe_requests_say_what_they_are():
    with ScriptedStreamServer(openai_events(2), models=["qwen"]) as engine, \
            ScriptedStreamServer(openai_events(2), modes={"group-a": "chat"}) as proxy:
        source = TargetSource(vllm_static=[Target("vllm-qwen", engine.url, "static")], litellm_url=proxy.url,
                              litellm_key="sk-probe")
        with contextlib.closing(exporter(source, interval=3600)) as probe:
            assert probe.wait_for(lambda e: e.probes_done >= 2, 20)
    from llmwatch import __version__
    for server in (engine, proxy):
        for headers in server.headers:  # model lists and completions alike
            assert headers["user-agent"] == f"llmwatch-probe/{__version__}"
            assert headers["x-llmwatch-probe"] == "1"
        assert server.bodies[0]["user"] == "llmwatch-probe"
    # LiteLLM's request tags (spend logs, Langfuse tags) and Langfuse's trace and generation names
    assert proxy.bodies[0]["metadata"] == {"tags": ["llmwatch-probe"], "trace_name": "llmwatch-probe",
                                           "generation_name": "llmwatch-probe", "trace_user_id": "llmwatch-probe"}
    assert "metadata" not in engine.bodies[0]  # vLLM would log a warning per request for a field it ignores


def test_a_proxy_of_embedding_groups_only_is_sent_nothing_and_is_up():
    with ScriptedStreamServer(openai_events(2), modes={"embed-a": "embedding", "embed-b": "embedding"}) as proxy:
        source = TargetSource(litellm_url=proxy.url, litellm_key="sk-probe")
        with contextlib.closing(exporter(source)) as probe:
            assert probe.wait_for(lambda e: e.turns >= 3, 20)
            text = render(probe)
    assert not proxy.bodies
    assert value(text, "llmwatch_probe_up", target="litellm") == 1
    assert len(names(text, "llmwatch_probe_skipped_info", target="litellm", reason="mode_embedding")) == 2
