"""Concurrent HTTP GETs under one deadline: the I/O source of the exporters that read HTTP upstreams.

One asyncio loop runs in a daemon thread with one httpx client (connections are kept alive
between scrapes). A scrape hands over every request it needs and gets back, by the deadline, a
:class:`Reply` for each: a body, or the reason it has none. A request still running at the
deadline is cancelled, so a hanging upstream costs one budget, never a stuck thread. Replies are
handed over as they arrive, so the caller parses fast upstreams while slow ones still answer.

Bodies are streamed and the read stops at the exporter's cap (``too_large``): the connection is
closed there, so an upstream sending a huge body costs at most the cap per request, and the
memory it cost is given back to the system after the scrape (:mod:`llmwatch.core.memory`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import httpx

from llmwatch.core import memory


# connect: refused, reset or unreachable; http: not a valid HTTP answer; http_status: not 200.
ERRORS = ("connect", "timeout", "http", "http_status", "too_large")


@dataclass(frozen=True)
class Reply:
    """``error`` is empty on success; else one of :data:`ERRORS`."""

    status: int = 0
    body: bytes = b""
    error: str = ""
    detail: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.error


STOPPING = Reply(error="connect", detail="the exporter is stopping")


class Fetcher:
    """``headers`` go with every request (Accept, Authorization); ``name`` names the loop's thread;
    ``max_body_bytes`` is the largest body accepted, each exporter's own (a bigger one is ``too_large``)."""

    def __init__(self, name: str, headers: dict[str, str], max_body_bytes: int):
        self.max_body_bytes = max_body_bytes
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"{name}-fetch", daemon=True)
        self._thread.start()
        headers = {"Accept-Encoding": "identity", "User-Agent": f"llmwatch-{name}-exporter", **headers}
        self._client = asyncio.run_coroutine_threadsafe(self._make_client(headers), self._loop).result()

    async def _make_client(self, headers: dict[str, str]) -> httpx.AsyncClient:
        return httpx.AsyncClient(headers=headers,
                                 limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
                                 follow_redirects=False)

    def as_completed(self, urls: Sequence[str], timeout: float) -> Iterator[tuple[int, Reply]]:
        """GET every URL concurrently; yield ``(index, reply)`` as each completes, all within ``timeout``.

        The caller can work on the first replies while slow upstreams are still answering. After
        ``close()`` (SIGTERM while a scrape runs) every reply is a ``connect`` error, not an exception.
        """
        if self._loop.is_closed():
            yield from ((i, STOPPING) for i in range(len(urls)))
            return
        futures = {asyncio.run_coroutine_threadsafe(self._bounded(url, timeout), self._loop): i
                   for i, url in enumerate(urls)}
        # Each request ends by its own deadline; the margin only guards against a dead loop.
        for future in concurrent.futures.as_completed(futures, timeout=timeout + 10):
            yield futures[future], future.result()

    def get_all(self, urls: Sequence[str], timeout: float) -> list[Reply]:
        replies: list[Reply] = [Reply()] * len(urls)
        for index, reply in self.as_completed(urls, timeout):
            replies[index] = reply
        return replies

    async def _bounded(self, url: str, timeout: float) -> Reply:
        try:
            return await asyncio.wait_for(self._get(url, timeout), timeout)
        except asyncio.TimeoutError:
            return Reply(error="timeout", detail=f"no complete answer within {timeout:.1f}s", seconds=timeout)

    async def _get(self, url: str, timeout: float) -> Reply:
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            async with self._client.stream("GET", url, timeout=timeout) as response:
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_body_bytes:
                        memory.note_body(size)
                        return Reply(response.status_code, error="too_large", seconds=loop.time() - start,
                                     detail=f"body larger than {self.max_body_bytes} bytes")
                    chunks.append(chunk)
                body = b"".join(chunks)
                memory.note_body(size)
                if response.status_code != 200:
                    return Reply(response.status_code, body, error="http_status", seconds=loop.time() - start,
                                 detail=f"HTTP {response.status_code}")
                return Reply(200, body, seconds=loop.time() - start)
        except httpx.TimeoutException:
            return Reply(error="timeout", detail=f"timed out after {timeout:.1f}s", seconds=loop.time() - start)
        except httpx.ProtocolError as e:
            return Reply(error="http", detail=f"not a valid HTTP answer: {e}", seconds=loop.time() - start)
        except (httpx.ConnectError, httpx.ReadError, httpx.WriteError, OSError) as e:
            return Reply(error="connect", detail=f"{type(e).__name__}: {e}" if str(e) else type(e).__name__,
                         seconds=loop.time() - start)
        except httpx.HTTPError as e:
            return Reply(error="http", detail=f"{type(e).__name__}: {e}", seconds=loop.time() - start)
        except RuntimeError:
            if self._client.is_closed:  # closed by close() while this scrape ran
                return STOPPING
            raise

    def close(self) -> None:
        if self._loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self._client.aclose(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()
