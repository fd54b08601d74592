"""A server that answers every request and then drips its body, one byte per ``gap`` seconds, forever.

Each byte arrives well within any per-read timeout, so only an overall deadline ends a read of
it: the slowloris upstream of the hardening soak. ``close()`` ends the drips.
"""

from __future__ import annotations

import threading

from llmwatch.simulation.server import FakeServer


class DrippingServer(FakeServer):
    def __init__(self, gap: float = 0.05):
        super().__init__()
        self.gap = gap
        self._closed = threading.Event()

    def answer(self, path, headers):
        return 200, "application/json", self._drip()

    def answer_post(self, path, headers, body):
        return self.answer(path, headers)

    def _drip(self):
        yield b"{"
        while not self._closed.wait(self.gap):
            yield b" "

    def close(self) -> None:
        self._closed.set()
        super().close()
