"""The shared HTTP read path: a body over the cap is refused and its read stopped, memory given back."""

from __future__ import annotations

import asyncio
import socket
import threading

from llmwatch.core import memory
from llmwatch.core.fetch import Fetcher

BODY_BYTES = 64 << 20
CHUNK = b"x" * (64 << 10)


class HugeBodyServer:
    """Answers one GET with a 64 MiB body, sent until the client stops reading; records how far it got."""

    def __init__(self):
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/metrics"
        self.sent = 0
        self.error: OSError | None = None
        self.done = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        conn, _ = self._listener.accept()
        try:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                         b"Content-Length: %d\r\n\r\n" % BODY_BYTES)
            while self.sent < BODY_BYTES:
                conn.sendall(CHUNK)
                self.sent += len(CHUNK)
        except OSError as e:  # the client closed the connection
            self.error = e
        finally:
            conn.close()
            self._listener.close()
            self.done.set()


def test_a_body_over_the_cap_is_refused_and_the_connection_closed_early():
    server = HugeBodyServer()
    fetcher = Fetcher("test", {}, max_body_bytes=256 << 10)
    try:
        [reply] = fetcher.get_all([server.url], timeout=10)
    finally:
        fetcher.close()
    assert reply.error == "too_large" and "262144" in reply.detail
    assert reply.body == b""
    assert server.done.wait(10)
    assert isinstance(server.error, (BrokenPipeError, ConnectionResetError))
    assert server.sent < BODY_BYTES // 4  # the cap plus what socket buffers held, not the body


def test_memory_is_given_back_once_after_a_large_body():
    memory.give_back()  # whatever earlier tests left pending
    memory.note_body(memory.TRIM_AFTER_BYTES - 1)
    assert memory.give_back() is False
    memory.note_body(memory.TRIM_AFTER_BYTES)
    assert memory.give_back() is (memory._malloc_trim is not None)
    assert memory.give_back() is False


def test_a_scrape_that_read_a_large_body_gives_memory_back_after_it():
    from llmwatch.core.scrape import ExporterCollector

    memory.give_back()

    def scrape(errors):
        memory.note_body(2 << 20)  # as Fetcher does after buffering a 2 MiB body
        return []

    list(ExporterCollector("test", scrape).collect())
    assert memory.give_back() is False  # the collector already trimmed


def test_a_scrape_running_into_close_gets_error_replies_not_an_exception():
    server = HugeBodyServer()  # never asked: the client is closed first
    fetcher = Fetcher("test", {}, max_body_bytes=1024)
    asyncio.run_coroutine_threadsafe(fetcher._client.aclose(), fetcher._loop).result(timeout=5)  # close() midway
    assert [r.error for r in fetcher.get_all([server.url], timeout=5)] == ["connect"]
    fetcher.close()
    [reply] = fetcher.get_all([server.url], timeout=5)
    assert (reply.error, reply.detail) == ("connect", "the exporter is stopping")
