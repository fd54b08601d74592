"""A TCP proxy that puts one upstream's failures on demand between an exporter and that upstream.

The soak test (``scripts/soak``) and tests place a :class:`FaultProxy` in front of a simulated
upstream and switch it at runtime between the ways a real upstream fails:

    ok            bytes pass through both ways
    down          nothing listens: connections are refused
    hang          connections are accepted and the request read; no answer ever comes
    drip          the upstream's real answer, one byte per ``drip_seconds`` (slowloris)
    huge          a valid-looking HTTP answer whose body is ``huge_bytes`` (120 MB) of comment lines
    garbage       random bytes, then the connection closes
    truncate      the upstream's answer cut in the middle of its body
    reset         the request is read, then the connection is reset (TCP RST)
    status:CODE   an HTTP error answer with this status (500, 401, 429, ...)
    flap          ok and down in turn, ``flap_seconds`` each

Switching mode cuts every open connection, kept-alive ones included, so a client never keeps
talking through the previous mode. The proxy runs its own asyncio loop in a thread; its methods
are called from any other thread.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import struct
import threading
from urllib.parse import urlsplit

MiB = 1024 * 1024
FIXED_MODES = ("ok", "down", "hang", "drip", "huge", "garbage", "truncate", "reset", "flap")
STATUS_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
                  429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
                  503: "Service Unavailable", 504: "Gateway Timeout"}
# what "huge" repeats: comment lines, so the body is a valid (empty) Prometheus exposition
FILLER = b"# soak filler: a valid-looking exposition line that carries no sample at all\n" * 800


def parse_mode(mode: str) -> str:
    """The mode itself when it is one :class:`FaultProxy` knows; ValueError naming it otherwise."""
    if mode in FIXED_MODES:
        return mode
    if mode.startswith("status:"):
        code = mode.removeprefix("status:")
        if code.isdigit() and 100 <= int(code) <= 599:
            return mode
    raise ValueError(f"unknown fault mode {mode!r}: one of {', '.join(FIXED_MODES)} or status:CODE (100-599)")


def parse_address(upstream: str) -> tuple[str, int]:
    """``http://host:port`` or ``host:port`` -> (host, port)."""
    parts = urlsplit(upstream if "//" in upstream else f"//{upstream}")
    if not parts.hostname or not parts.port:
        raise ValueError(f"upstream must be http://host:port or host:port, got {upstream!r}")
    return parts.hostname, parts.port


class FaultProxy:
    def __init__(self, upstream: str, *, host: str = "127.0.0.1", port: int = 0, drip_seconds: float = 1.0,
                 huge_bytes: int = 120 * 1000 * 1000, flap_seconds: float = 2.0, seed: int = 0):
        self.upstream = parse_address(upstream)
        self.host, self._port = host, port
        self.drip_seconds, self.huge_bytes, self.flap_seconds = drip_seconds, huge_bytes, flap_seconds
        self._random = random.Random(seed)
        self._mode = "ok"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._flapping: asyncio.Task | None = None
        self._connections: dict[asyncio.Task, asyncio.StreamWriter] = {}
        self.accepted = 0  # connections accepted, for tests and the soak's report

    # -- control, from any thread ----------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self._mode

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}"

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def start(self) -> "FaultProxy":
        self._thread.start()
        self._call(self._listen())
        return self

    def set_mode(self, mode: str) -> None:
        """Switch to ``mode`` (see the module's docstring); returns once it is in force."""
        self._call(self._switch(parse_mode(mode)))

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._switch("down"))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    # -- inside the loop -------------------------------------------------------------------------
    async def _listen(self) -> None:
        if self._server is None:
            # the same port again after "down", so clients keep their URL
            self._server = await asyncio.start_server(self._accept, self.host, self._port, reuse_address=True)
            self._port = self._server.sockets[0].getsockname()[1]

    def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()  # closes the listening socket now: new connections are refused
            self._server = None

    def _cut(self) -> None:
        for task, writer in list(self._connections.items()):
            writer.transport.abort()
            task.cancel()
        self._connections.clear()

    async def _switch(self, mode: str) -> None:
        if self._flapping is not None:
            self._flapping.cancel()
            self._flapping = None
        self._mode = mode
        self._cut()
        if mode == "down":
            self._stop_listening()
            return
        await self._listen()
        if mode == "flap":
            self._flapping = asyncio.ensure_future(self._flap())

    async def _flap(self) -> None:
        while True:
            await asyncio.sleep(self.flap_seconds)
            self._cut()
            self._stop_listening()
            await asyncio.sleep(self.flap_seconds)
            await self._listen()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._connections[task] = writer
        self.accepted += 1
        mode = "ok" if self._mode == "flap" else self._mode
        try:
            await self._serve(mode, reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client or the upstream went away: what a failing link does
        except asyncio.CancelledError:
            pass  # cut by a switch; ending normally spares Python 3.11's stream callback a traceback
        finally:
            self._connections.pop(task, None)
            writer.transport.abort()

    async def _serve(self, mode: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if mode == "ok":
            await self._pipe(reader, writer)
        elif mode == "hang":
            while await reader.read(65536):
                pass
        elif mode == "garbage":
            await read_request(reader)
            writer.write(self._random.randbytes(4096))
            await writer.drain()
        elif mode == "reset":
            await read_request(reader)
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                                       struct.pack("ii", 1, 0))
        elif mode == "huge":
            while await read_request(reader):
                await self._huge(writer)
        elif mode.startswith("status:"):
            while await read_request(reader):
                writer.write(error_answer(int(mode.removeprefix("status:"))))
                await writer.drain()
        elif mode in ("drip", "truncate"):
            request = await read_request(reader)
            if request:
                await (self._drip if mode == "drip" else self._truncate)(request, writer)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        try:
            await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))
        finally:
            up_writer.transport.abort()

    async def _huge(self, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                     b"Content-Length: %d\r\n\r\n" % self.huge_bytes)
        left = self.huge_bytes
        while left > 0:
            piece = FILLER[:left]
            writer.write(piece)
            left -= len(piece)
            await writer.drain()

    async def _drip(self, request: bytes, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        try:
            up_writer.write(request)
            await up_writer.drain()
            while data := await up_reader.read(65536):
                for i in range(len(data)):
                    writer.write(data[i:i + 1])
                    await writer.drain()
                    await asyncio.sleep(self.drip_seconds)
        finally:
            up_writer.transport.abort()

    async def _truncate(self, request: bytes, writer: asyncio.StreamWriter) -> None:
        """The upstream's headers and about half of its body, then the connection closes."""
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        try:
            up_writer.write(request)
            await up_writer.drain()
            head = await up_reader.readuntil(b"\r\n\r\n")
            length = content_length(head)
            if length is None:  # chunked or until close: half of what arrives first
                body = await up_reader.read(65536)
                cut = body[:max(1, len(body) // 2)]
            else:
                cut = await up_reader.readexactly(length // 2)
            writer.write(head + cut)
            await writer.drain()
        finally:
            up_writer.transport.abort()


async def copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One HTTP request (head and Content-Length body) as sent; b"" when the client closed first."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return b""
    return head + await reader.readexactly(content_length(head) or 0)


def content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return int(value.strip())
    return None


def error_answer(status: int) -> bytes:
    reason = STATUS_REASONS.get(status, "Error")
    body = json.dumps({"error": {"message": f"simulated fault: {status} {reason}", "code": status}}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n").encode()
    if status == 429:
        head += b"Retry-After: 1\r\n"
    return head + b"\r\n" + body
