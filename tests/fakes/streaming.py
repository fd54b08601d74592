"""A server that streams a scripted answer: the ways an LLM endpoint goes wrong, on loopback.

A script is a list of steps: ``bytes`` are written as one chunk; a number sleeps that many
seconds; :data:`CUT` drops the connection without ending the body. ``status`` and
``content_type`` set the answer's head. The time each chunk was written is recorded, so tests
compare what a client measured with what the server did.
"""

from __future__ import annotations

import json
import threading
import time

from llmwatch.simulation.server import CutStream, FakeServer

CUT = object()


def openai_events(tokens: int, *, gap: float = 0.0, usage: bool = True, done: bool = True) -> list:
    """A well-formed chat stream of ``tokens`` tokens, ``gap`` seconds apart."""
    def chunk(delta: dict, reason=None) -> bytes:
        return b"data: " + json.dumps({"id": "x", "object": "chat.completion.chunk", "model": "m",
                                       "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]}).encode() + b"\n\n"
    script: list = [chunk({"role": "assistant", "content": ""})]
    for k in range(tokens):
        if k and gap:
            script.append(gap)
        script.append(chunk({"content": f" t{k}"}))
    script.append(chunk({}, "length"))
    if usage:
        script.append(b'data: {"id": "x", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": %d}}\n\n' % tokens)
    if done:
        script.append(b"data: [DONE]\n\n")
    return script


class ScriptedStreamServer(FakeServer):
    def __init__(self, script: list, *, status: int = 200, content_type: str = "text/event-stream",
                 models: list[str] | None = None, modes: dict[str, str | None] | None = None):
        """``models``: what /v1/models lists; ``modes``: model group -> LiteLLM mode, served as
        LiteLLM's /model/info (one deployment per group)."""
        super().__init__()
        self.script, self.status, self.content_type, self.models = script, status, content_type, models
        self.modes = modes
        self.writes: list[float] = []  # perf_counter when each bytes step was handed to the socket
        self.bodies: list[dict] = []
        self.paths: list[str] = []  # of the POSTs, in order
        self.active = self.max_active = 0  # requests being answered now, and the most at once
        self._lock = threading.Lock()

    def answer(self, path, headers):
        if path == "/v1/models" and self.models is not None:
            return 200, "application/json", json.dumps({"object": "list", "data": [
                {"id": m, "object": "model", "parent": None} for m in self.models]}).encode()
        if path == "/model/info" and self.modes is not None:
            return 200, "application/json", json.dumps({"data": [
                {"model_name": group, "litellm_params": {"model": f"hosted_vllm/{group}"},
                 "model_info": {"id": f"d-{group}", "mode": mode}} for group, mode in self.modes.items()]}).encode()
        return 404, "application/json", b"{}"

    def answer_post(self, path, headers, body):
        self.paths.append(path)
        self.bodies.append(json.loads(body or b"{}"))
        return self.status, self.content_type, self._play()

    def _play(self):
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            for step in self.script:
                if step is CUT:
                    raise CutStream()
                if isinstance(step, (int, float)):
                    time.sleep(step)
                    continue
                self.writes.append(time.perf_counter())
                yield step
        finally:
            with self._lock:
                self.active -= 1
