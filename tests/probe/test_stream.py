"""The streaming client against servers that behave, stall, fail mid-stream or send garbage."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from hypothesis import given, strategies as st

from llmwatch.simulation.demo.engine import LiveEngine
from llmwatch.simulation.demo.servers import DemoVllmServer
from llmwatch.upstreams import streaming as s
from llmwatch.queueing.config import MonoCluster
from llmwatch.simulation.vllm import Engine
from tests.fakes.streaming import CUT, ScriptedStreamServer, openai_events


def run(url: str, api: str = "openai", *, timeout: float = 5.0, stall: float = 2.0, body=None) -> s.Outcome:
    async def go():
        async with httpx.AsyncClient() as client:
            return await s.stream(client, url, api, body or s.request_body(api, "m", "hi", 8)[1],
                                  timeout=timeout, stall=stall)
    return asyncio.run(go())


def test_well_formed_stream_counts_tokens_and_times_them():
    with ScriptedStreamServer(openai_events(4, gap=0.3)) as server:
        out = run(server.url)
    assert out.outcome == "ok", out.detail
    assert out.tokens == 4
    assert out.ttft < out.e2e
    # tokens 0.3 s apart: scheduling on a busy machine may bunch or stretch them by a fraction of
    # that; a formula error (per token instead of per gap) would be off by a third or more
    assert out.tpot == pytest.approx(0.3, rel=0.25)
    assert server.bodies[0]["stream"] is True and server.bodies[0]["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("delay", [0.3, 0.6])
def test_measured_ttft_agrees_with_the_injected_delay(delay):
    # The server holds the first token back for `delay`, and each next one as long again: the
    # client's TTFT is at least the delay, and timing the wrong event (the role chunk is not a
    # token; the second token comes a delay later) would be off by a whole delay. One-sided
    # bounds, so a busy machine's scheduling cannot fail the test, a wrong measurement can.
    with ScriptedStreamServer([delay] + openai_events(3, gap=delay)) as server:
        out = run(server.url)
    assert out.outcome == "ok"
    assert delay <= out.ttft < 2 * delay
    first_token_written = server.writes[1] - out.sent  # by the server's clock
    assert 0 <= out.ttft - first_token_written < delay


def test_ttft_from_the_simulated_engine_matches_its_queueing_model():
    # one slot, prefill 1000 tokens/s, decode 2.5 tokens/s: TTFT = prompt/1000 + 1/2.5
    live = LiveEngine(Engine(model_name="m"), MonoCluster(gpus=1, prefill_tokens_per_s=1000.0, decode_tokens_per_s=2.5))
    with DemoVllmServer(live, "0.28.0") as server:
        body = s.request_body("openai", "m", " ".join(["word"] * 100), 5, exact=True)[1]
        out = run(server.url, body=body)
    assert out.outcome == "ok" and out.tokens == 5
    expected = 130 / 1000 + 1 / 2.5  # 100 words count as 130 tokens
    assert expected <= out.ttft < expected + 0.4  # plus the connection and loopback; the next token is 0.4 s on
    assert out.tpot == pytest.approx(1 / 2.5, rel=0.25)
    assert live.engine.histograms["ttft"].count == 1


def test_a_stall_mid_stream_is_stalled_not_a_hang():
    with ScriptedStreamServer(openai_events(2)[:3] + [1.0] + openai_events(2)[3:]) as server:
        out = run(server.url, stall=0.3)
    assert out.outcome == "stalled" and out.tokens == 2
    assert "no data for 0.3s" in out.detail


def test_no_first_token_in_time_is_a_timeout():
    with ScriptedStreamServer([1.0] + openai_events(2)) as server:
        out = run(server.url, stall=0.2)
    assert out.outcome == "timeout" and out.ttft is None


def test_the_whole_answer_is_bounded():
    with ScriptedStreamServer(openai_events(20, gap=0.1)) as server:
        out = run(server.url, timeout=0.5, stall=1.0)
    assert out.outcome == "timeout" and out.tokens > 0


def test_an_error_event_mid_stream():
    script = openai_events(3)[:2] + [b'data: {"error": {"message": "CUDA out of memory", "code": 500}}\n\n']
    with ScriptedStreamServer(script) as server:
        out = run(server.url)
    assert out.outcome == "stream_error" and "CUDA out of memory" in out.detail


def test_a_connection_cut_mid_stream():
    with ScriptedStreamServer(openai_events(4)[:3] + [CUT]) as server:
        out = run(server.url)
    assert out.outcome == "stream_error" and out.tokens == 2


def test_a_stream_without_its_terminator():
    with ScriptedStreamServer(openai_events(3, done=False)) as server:
        out = run(server.url)
    assert out.outcome == "stream_error" and "terminator" in out.detail


@pytest.mark.parametrize("script,content_type", [
    ([b"data: {not json\n\n"], "text/event-stream"),
    ([b'data: {"choices": "nope"}\n\n'], "text/event-stream"),
    ([b"<html>502 Bad Gateway</html>"], "text/event-stream"),
    ([b'{"choices": []}'], "application/json"),
])
def test_malformed_answers(script, content_type):
    with ScriptedStreamServer(script, content_type=content_type) as server:
        out = run(server.url)
    assert out.outcome == "malformed", out


def test_http_errors_name_the_status():
    with ScriptedStreamServer([b'{"error": "rate limited"}'], status=429, content_type="application/json") as server:
        out = run(server.url)
    assert out.outcome == "http_status" and out.status == 429 and "rate limited" in out.detail


@pytest.mark.parametrize("status,body,outcome", [
    # vLLM's own answer for a pooling model (chat, then text completions)
    (400, b'{"error": {"message": "The model does not support Chat Completions API", "type": "BadRequestError", '
          b'"param": null, "code": 400}}', "unsupported"),
    (400, b'{"object": "error", "message": "The model does not support Completions API", "type": '
          b'"BadRequestError", "param": null, "code": 400}', "unsupported"),
    # as LiteLLM passes it on from a hosted_vllm deployment
    (400, b'{"error": {"message": "litellm.BadRequestError: Hosted_vllmException - The model does not support Chat '
          b'Completions API. Received Model Group=embed", "type": null, "param": null, "code": "400"}}', "unsupported"),
    # other 400s and 404s are failures (a route missing is the caller's to judge: route_missing)
    (400, b'{"error": {"message": "max_tokens must be at least 1", "code": 400}}', "http_status"),
    (404, b'{"detail":"Not Found"}', "http_status"),
    (500, b'The model does not support Chat Completions API', "http_status"),
])
def test_an_answer_that_the_model_serves_no_chat_is_unsupported(status, body, outcome):
    with ScriptedStreamServer([body], status=status, content_type="application/json") as server:
        out = run(server.url)
    assert out.outcome == outcome and out.status == status
    assert s.route_missing(out) == (body == b'{"detail":"Not Found"}')


def test_an_empty_stream():
    with ScriptedStreamServer(openai_events(0, usage=False)) as server:
        out = run(server.url)
    assert out.outcome == "empty"


def test_nothing_listening_is_connect():
    server = ScriptedStreamServer([])
    url = server.url
    server.close()
    assert run(url).outcome == "connect"


def test_tgi_and_ollama_native_streams():
    tgi = [b'data: {"token": {"id": 1, "text": " a", "special": false}, "generated_text": null, "details": null}\n\n',
           0.4,
           b'data: {"token": {"id": 2, "text": " b", "special": false}, "generated_text": " a b", '
           b'"details": {"finish_reason": "length", "generated_tokens": 2}}\n\n']
    with ScriptedStreamServer(tgi) as server:
        out = run(server.url, "tgi")
    assert out.outcome == "ok" and out.tokens == 2 and out.tpot == pytest.approx(0.4, rel=0.5)
    ollama = [b'{"model": "m", "message": {"role": "assistant", "content": "a"}, "done": false}\n',
              b'{"model": "m", "message": {"role": "assistant", "content": "b"}, "done": false}\n',
              b'{"model": "m", "message": {"role": "assistant", "content": ""}, "done": true, "eval_count": 2}\n']
    with ScriptedStreamServer(ollama, content_type="application/x-ndjson") as server:
        out = run(server.url, "ollama")
        assert server.bodies[0]["options"]["num_predict"] == 8
    assert out.outcome == "ok" and out.tokens == 2


@given(st.text(max_size=200))
def test_parsers_raise_only_malformed(data):
    for parse in s.PARSERS.values():
        try:
            piece = parse(data)
        except s.Malformed:
            continue
        assert piece.tokens >= 0


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                        st.sampled_from(["choices", "delta", "content", "usage", "completion_tokens", "token",
                                         "generated_text", "details", "message", "done", "error", "text"]),
                        inner, max_size=4), max_leaves=12))
def test_parsers_survive_any_json_shape(value):
    import json
    data = json.dumps(value)
    for parse in s.PARSERS.values():
        try:
            parse(data)
        except s.Malformed:
            pass


def test_an_error_answer_is_quoted_from_its_first_bytes_not_read_whole():
    # a 500 whose body goes on for minutes: its first 300 bytes name it, the rest is not waited for
    with ScriptedStreamServer([b"x" * 400, 60.0, b"never read"], status=500, content_type="text/plain") as server:
        out = run(server.url, timeout=3.0, stall=2.0)
    assert out.outcome == "http_status" and out.status == 500
    assert out.detail == "HTTP 500: " + "x" * 300
