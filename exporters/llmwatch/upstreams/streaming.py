"""One streamed completion, timed from the client's side: what the probe and the load generator share.

Server-side TTFT (vLLM's histograms) starts when the engine receives a request; a user waits
also for the proxy, the network and the HTTP server. This module sends a streaming request the
way a client does and timestamps every event as it arrives:

- TTFT: from sending the request to the first event that carries generated text;
- TPOT: the time between the first and the last token over the tokens after the first;
- end-to-end: from sending to the stream's terminator.

Four wire formats: the OpenAI-compatible ``/v1/chat/completions`` that vLLM, LiteLLM, TGI and
Ollama all serve (server-sent events, ``data: [DONE]`` at the end); its text-completion sibling
``/v1/completions`` (``completions``: a model with no chat template); TGI's native
``/generate_stream`` (server-sent events, the last one has ``generated_text``); Ollama's native
``/api/chat`` (one JSON object per line, the last one has ``done: true``).

The parsers are pure functions of one event; :func:`stream` is the I/O. Every way a request can
go wrong ends as an :class:`Outcome` with a reason from :data:`OUTCOMES`, never as an exception.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from contextlib import aclosing
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
from httpx_sse import EventSource, SSEError

APIS = ("openai", "completions", "tgi", "ollama")
# ok; connect: not reachable; timeout: no first token in time or the whole answer took too long;
# stalled: tokens stopped coming for stall seconds; http_status: not 200; malformed: an answer
# that is not the API's stream format; stream_error: an error event, a connection cut mid-stream
# or a stream without its terminator; empty: a complete stream without a single token;
# unsupported: the server says the model serves no chat or text completions (see UNSUPPORTED).
OUTCOMES = ("ok", "connect", "timeout", "stalled", "http_status", "malformed", "stream_error", "empty",
            "unsupported")
ERROR_TEXT_BYTES = 300  # of an error answer's body, quoted in the outcome's detail
_PATHS = {"openai": "/v1/chat/completions", "completions": "/v1/completions", "tgi": "/generate_stream",
          "ollama": "/api/chat"}
# How an OpenAI-compatible server says that the model serves no chat (or text) completions, as
# opposed to failing to serve them: older vLLM keeps the routes of a pooling model
# (embedding, rerank, classify) and answers HTTP 400 "The model does not support Chat Completions
# API" (or "... Completions API"); LiteLLM passes that message on inside its own.
UNSUPPORTED = re.compile(r"does not support (?:the )?(?:chat )?completions api", re.IGNORECASE)
# Newer vLLM registers the generate routes only when the model supports the "generate" task, so a
# pooling model's server has no /v1/chat/completions at all: HTTP 404 with FastAPI's own body.
# Only a caller that knows the server is up at that base URL (its /v1/models answered) may read
# that as "unsupported": behind a wrong base path every server answers the same.
ROUTE_MISSING = re.compile(r'\s*\{\s*"detail"\s*:\s*"Not Found"\s*\}\s*')


class Malformed(ValueError):
    """An event that is not what the API sends."""


@dataclass(frozen=True)
class Piece:
    """What one event says: ``tokens`` new tokens, or the final count, the end, an error."""

    tokens: int = 0  # tokens carried by this event
    total: int | None = None  # the server's own count of generated tokens (usage), when it gives one
    done: bool = False
    error: str = ""


@dataclass(frozen=True)
class Outcome:
    """One request as the client saw it; times in seconds, ``None`` where not reached."""

    outcome: str
    detail: str = ""
    status: int = 0
    ttft: float | None = None
    e2e: float | None = None
    tokens: int = 0
    tpot: float | None = None
    sent: float = 0.0  # clock reading when the request was sent

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


def request_body(api: str, model: str, prompt: str, max_tokens: int, *, exact: bool = False) -> tuple[str, dict]:
    """The path and JSON body of a streaming request. ``exact`` asks for exactly ``max_tokens``
    (vLLM's ignore_eos/min_tokens, TGI's and Ollama's equivalents) so a load test gets the
    output lengths it drew."""
    if api in ("openai", "completions"):
        body = {"model": model, "messages": [{"role": "user", "content": prompt}]} if api == "openai" \
            else {"model": model, "prompt": prompt}
        body |= {"max_tokens": max_tokens, "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
        if exact:
            body |= {"ignore_eos": True, "min_tokens": max_tokens}
    elif api == "tgi":
        body = {"inputs": prompt, "parameters": {"max_new_tokens": max_tokens, "details": True}}
        if exact:
            body["parameters"]["stop"] = []
    elif api == "ollama":
        body = {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": True,
                "options": {"num_predict": max_tokens, "temperature": 0}}
    else:
        raise ValueError(f"unknown API {api!r}; known: {', '.join(APIS)}")
    return _PATHS[api], body


def _object(data: str) -> dict:
    try:
        value = json.loads(data)
    except ValueError:
        raise Malformed(f"not JSON: {data[:80]!r}") from None
    if not isinstance(value, dict):
        raise Malformed(f"not a JSON object: {data[:80]!r}")
    return value


def _error_text(value) -> str:
    if isinstance(value, dict):
        return str(value.get("message") or value)[:200]
    return str(value)[:200] or "error"


def parse_openai(data: str) -> Piece:
    """One ``data:`` of an OpenAI chat (or completions) stream."""
    if data.strip() == "[DONE]":
        return Piece(done=True)
    event = _object(data)
    if event.get("error"):
        return Piece(error=_error_text(event["error"]))
    choices = event.get("choices")
    if not isinstance(choices, list):
        raise Malformed("event without a choices list")
    tokens = 0
    for choice in choices:
        if not isinstance(choice, dict):
            raise Malformed("a choice is not an object")
        delta = choice.get("delta") if "delta" in choice else {"content": choice.get("text")}
        if not isinstance(delta, dict):
            raise Malformed("a delta is not an object")
        # reasoning models stream their thinking first: it is generated text the user waits on
        if any(isinstance(delta.get(k), str) and delta[k] for k in ("content", "reasoning_content", "reasoning")):
            tokens += 1
    total = None
    usage = event.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
        total = usage["completion_tokens"]
    return Piece(tokens=tokens, total=total)


def parse_tgi(data: str) -> Piece:
    """One event of TGI's ``/generate_stream``: a token; the last one also has generated_text."""
    event = _object(data)
    if event.get("error"):
        return Piece(error=_error_text(event["error"]))
    if not isinstance(event.get("token"), dict):
        raise Malformed("event without a token object")
    done = event.get("generated_text") is not None
    details = event.get("details") if isinstance(event.get("details"), dict) else {}
    total = details.get("generated_tokens") if isinstance(details.get("generated_tokens"), int) else None
    return Piece(tokens=1, total=total, done=done)


def parse_ollama(line: str) -> Piece:
    """One line of Ollama's ``/api/chat`` stream; the last has done: true and eval_count."""
    event = _object(line)
    if event.get("error"):
        return Piece(error=_error_text(event["error"]))
    message = event.get("message")
    if not isinstance(message, dict):
        raise Malformed("line without a message object")
    text = message.get("content") or message.get("thinking")
    done = event.get("done") is True
    total = event.get("eval_count") if done and isinstance(event.get("eval_count"), int) else None
    return Piece(tokens=1 if isinstance(text, str) and text else 0, total=total, done=done)


PARSERS: dict[str, Callable[[str], Piece]] = {"openai": parse_openai, "completions": parse_openai, "tgi": parse_tgi,
                                               "ollama": parse_ollama}


def unsupported(status: int, text: str) -> bool:
    """Whether an error answer says the model serves no chat/completions (:data:`UNSUPPORTED`)."""
    return status in (400, 404) and UNSUPPORTED.search(text) is not None


def route_missing(outcome: "Outcome") -> bool:
    """Whether a failed request met a server without the route at all (:data:`ROUTE_MISSING`)."""
    return (outcome.outcome == "http_status" and outcome.status == 404
            and ROUTE_MISSING.fullmatch(outcome.detail.removeprefix("HTTP 404: ")) is not None)


async def _head(response: httpx.Response, size: int) -> bytes:
    """The first ``size`` bytes of the body: an error's body is only quoted, never read whole (it
    may be huge, or drip)."""
    head = b""
    async for chunk in response.aiter_bytes():
        head += chunk
        if len(head) >= size:
            break
    return head[:size]


async def _events(api: str, response: httpx.Response) -> AsyncIterator[str]:
    if api == "ollama":
        async for line in response.aiter_lines():
            if line.strip():
                yield line
        return
    async for sse in EventSource(response).aiter_sse():
        if sse.data:
            yield sse.data


class _Clock:
    """Timestamps of one request: sent, first token, last token, end."""

    def __init__(self, now: Callable[[], float]):
        self.now = now
        self.sent = now()
        self.first: float | None = None
        self.last: float | None = None
        self.tokens = 0
        self.total: int | None = None

    def add(self, piece: Piece) -> None:
        if piece.tokens:
            t = self.now()
            self.first = t if self.first is None else self.first
            self.last = t
            self.tokens += piece.tokens
        if piece.total is not None:
            self.total = piece.total

    def outcome(self, outcome: str, detail: str = "", status: int = 0, ended: float | None = None) -> Outcome:
        tokens = self.total if self.total is not None and self.total >= self.tokens else self.tokens
        ttft = None if self.first is None else self.first - self.sent
        tpot = None
        if self.first is not None and tokens > 1:
            tpot = (self.last - self.first) / (tokens - 1)
        e2e = None if ended is None else ended - self.sent
        return Outcome(outcome, detail, status, ttft, e2e, tokens, tpot, self.sent)


async def stream(client: httpx.AsyncClient, base_url: str, api: str, body: dict, *, headers: dict[str, str] | None = None,
                 timeout: float = 30.0, stall: float = 10.0, now: Callable[[], float] = time.perf_counter) -> Outcome:
    """POST ``body`` to the API's streaming path under ``base_url`` and time the answer.

    ``timeout`` bounds the whole request; ``stall`` bounds the wait for any next piece of the
    answer (the connection, the headers, each event). Never raises for what the server does.
    """
    parse = PARSERS[api]
    url = base_url.rstrip("/") + _PATHS[api]
    limits = httpx.Timeout(stall, connect=min(stall, timeout))
    clock = _Clock(now)
    status = 0
    seen = 0
    try:
        async with asyncio.timeout(timeout):
            async with client.stream("POST", url, json=body, headers=headers, timeout=limits) as response:
                status = response.status_code
                if status != 200:
                    text = (await _head(response, ERROR_TEXT_BYTES)).decode("utf-8", "replace")
                    reason = "unsupported" if unsupported(status, text) else "http_status"
                    return clock.outcome(reason, f"HTTP {status}: {text}", status)
                async with aclosing(_events(api, response)) as events:
                    async for data in events:
                        piece = parse(data)
                        seen += 1
                        if piece.error:
                            return clock.outcome("stream_error", f"error event: {piece.error}", status)
                        clock.add(piece)  # OpenAI's usage (the server's token count) comes before [DONE]
                        if piece.done:
                            break
                    else:
                        if not seen:
                            return clock.outcome("malformed", "no events in the answer", status)
                        return clock.outcome("stream_error", "the stream ended without its terminator", status)
                ended = now()
    except TimeoutError:
        return clock.outcome("timeout", f"no complete answer within {timeout:g}s", status)
    except (Malformed, SSEError) as e:
        return clock.outcome("malformed", str(e), status)
    except httpx.ReadTimeout:
        if clock.first is None:
            return clock.outcome("timeout", f"no first token within {stall:g}s", status)
        return clock.outcome("stalled", f"no data for {stall:g}s after {clock.tokens} tokens", status)
    except (httpx.ConnectError, httpx.ConnectTimeout) as e:
        return clock.outcome("connect", f"{type(e).__name__}: {e}", status)
    except httpx.HTTPError as e:
        reason = "stream_error" if status else "connect"
        return clock.outcome(reason, f"{type(e).__name__}: {e}" if str(e) else type(e).__name__, status)
    except OSError as e:
        return clock.outcome("connect" if not status else "stream_error", f"{type(e).__name__}: {e}", status)
    if clock.first is None:
        return clock.outcome("empty", "the stream ended without a token", status, ended)
    return clock.outcome("ok", "", status, ended)
