"""Simulated OpenAI-compatible upstreams: a vLLM server that streams, and a LiteLLM proxy in front.

:class:`DemoVllmServer` is the simulated vLLM server (``/metrics`` in the dialect of its version,
``/v1/models``, ``/version``, ``/health``) that also answers ``/v1/chat/completions`` and
``/v1/completions``, streamed as vLLM streams them (a role chunk, one chunk per token, a
finish chunk, the usage chunk when asked, ``data: [DONE]``), timed by a :class:`LiveEngine`.
:func:`litellm_router` lets the simulated LiteLLM proxy forward chat requests to those servers
by model group, as the real proxy does.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np

from llmwatch.simulation.demo.engine import LiveEngine
from llmwatch.queueing.config import TokenDist
from llmwatch.simulation.vllm import FakeVllmServer

WORDS = ("simulated", " tokens", " from", " the", " llmwatch", " demo", " engine", ".")


def error_body(status: int, message: str, kind: str) -> tuple[int, str, bytes]:
    """vLLM's (and the OpenAI API's) error answer."""
    body = {"object": "error", "message": message, "type": kind, "param": None, "code": status}
    return status, "application/json", json.dumps(body).encode()


def prompt_tokens_of(request: dict) -> int:
    """A tokenizer's rough count (1.3 tokens a word) of the prompt or the chat messages."""
    if isinstance(request.get("messages"), list):
        text = " ".join(str(m.get("content", "")) for m in request["messages"] if isinstance(m, dict))
    else:
        text = str(request.get("prompt", ""))
    return max(1, round(len(text.split()) * 1.3))


def sse(event: dict | str) -> bytes:
    return b"data: " + (event if isinstance(event, str) else json.dumps(event)).encode() + b"\n\n"


def chunks(request_id: str, model: str, created: int, chat: bool, token_times: Iterator[int], prompt: int,
           want: int, usage: bool) -> Iterator[bytes]:
    """vLLM's server-sent events for one streamed completion."""
    kind = "chat.completion.chunk" if chat else "text_completion"

    def event(choice: dict, extra: dict | None = None) -> bytes:
        return sse({"id": request_id, "object": kind, "created": created, "model": model,
                    "choices": [{"index": 0, **choice}], **(extra or {})})

    sent = 0
    for k in token_times:
        if chat and k == 0:  # vLLM sends the role with the first output, after the prefill
            yield event({"delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None})
        word = WORDS[k % len(WORDS)]
        yield event({"delta": {"content": word}, "logprobs": None, "finish_reason": None} if chat
                    else {"text": word, "logprobs": None, "finish_reason": None})
        sent += 1
    reason = "length" if sent == want else "stop"
    yield event({"delta": {}, "logprobs": None, "finish_reason": reason} if chat
                else {"text": "", "logprobs": None, "finish_reason": reason})
    if usage:
        yield sse({"id": request_id, "object": kind, "created": created, "model": model, "choices": [],
                   "usage": {"prompt_tokens": prompt, "completion_tokens": sent, "total_tokens": prompt + sent}})
    yield sse("[DONE]")


class DemoVllmServer(FakeVllmServer):
    """A simulated vLLM server that serves completions through a :class:`LiveEngine`.

    Without ``ignore_eos``/``min_tokens`` a request stops at an output length drawn from
    ``natural_output`` (at most max_tokens), as a model stops at its end-of-sequence token.
    """

    def __init__(self, live: LiveEngine, version: str, *, natural_output: TokenDist | None = None, seed: int = 1,
                 host: str = "127.0.0.1", port: int = 0):
        super().__init__(version, [live.engine], host=host, port=port)
        self.live = live
        self.natural_output = natural_output or TokenDist.lognormal_p50_p90(120, 400)
        self._rng = np.random.default_rng(seed)
        self._rng_lock = threading.Lock()
        self._ids = iter(range(1, 1 << 62))

    def answer(self, path: str, headers: dict[str, str]) -> tuple[int, str, bytes]:
        with self.live.lock:
            return super().answer(path, headers)

    def answer_post(self, path: str, headers: dict[str, str], body: bytes):
        route = path.split("?", 1)[0]
        if route not in ("/v1/chat/completions", "/v1/completions"):
            return 404, "application/json", b'{"detail": "Not Found"}'
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return error_body(400, "request body is not JSON", "BadRequestError")
        if not isinstance(request, dict):
            return error_body(400, "request body must be a JSON object", "BadRequestError")
        return self.complete(request, chat=route.endswith("chat/completions"))

    def complete(self, request: dict, chat: bool = True):
        """``(status, content type, body)`` for one completion request (streamed or not)."""
        model = self.live.engine.model_name
        if request.get("model") != model:
            return error_body(404, f"The model `{request.get('model')}` does not exist.", "NotFoundError")
        max_tokens = request.get("max_tokens") or request.get("max_completion_tokens") or 256
        if not isinstance(max_tokens, int) or max_tokens < 1:
            return error_body(400, f"max_tokens must be a positive integer, got {max_tokens!r}", "BadRequestError")
        prompt = prompt_tokens_of(request)
        if request.get("ignore_eos") or request.get("min_tokens") == max_tokens:
            want = max_tokens
        else:
            with self._rng_lock:
                drawn = int(self.natural_output.sample(self._rng, 1)[0])
            want = min(max_tokens, drawn)
        request_id = f"{'chatcmpl' if chat else 'cmpl'}-{next(self._ids):016x}"
        created = int(time.time())
        token_times = self.live.tokens(prompt, want)
        if request.get("stream"):
            usage = bool((request.get("stream_options") or {}).get("include_usage"))
            return 200, "text/event-stream", chunks(request_id, model, created, chat, token_times, prompt, want, usage)
        text = "".join(WORDS[k % len(WORDS)] for k in token_times)
        choice = {"index": 0, "finish_reason": "length" if max_tokens == want else "stop", "logprobs": None}
        choice |= {"message": {"role": "assistant", "content": text}} if chat else {"text": text}
        answer = {"id": request_id, "object": "chat.completion" if chat else "text_completion", "created": created,
                  "model": model, "choices": [choice],
                  "usage": {"prompt_tokens": prompt, "completion_tokens": want, "total_tokens": prompt + want}}
        return 200, "application/json", json.dumps(answer).encode()


def litellm_router(servers: dict[str, DemoVllmServer], overhead_seconds: float = 0.004,
                   sleep: Callable[[float], None] = time.sleep):
    """A route for :class:`FakeLitellmServer`: model group -> the demo engine serving it, behind a
    proxy that adds ``overhead_seconds`` (routing, logging callbacks) to every request."""

    def route(group: str, request: dict):
        server = servers.get(group)
        if server is None:
            return None
        if overhead_seconds:
            sleep(overhead_seconds)
        return server.complete({**request, "model": server.live.engine.model_name})

    return route
