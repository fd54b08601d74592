"""A TCP proxy on loopback that can stop forwarding: a database (or any server) that stalls.

Every connection to :attr:`port` is forwarded to ``(host, port)``. :meth:`stall` keeps every
connection open but holds what either side sends, as a server that hangs mid-query does (the
kernel still acknowledges the bytes, so no TCP timeout fires); :meth:`resume` forwards again.
``close()`` drops every connection.
"""

from __future__ import annotations

import socket
import threading


class StallingProxy:
    def __init__(self, host: str, port: int):
        self.upstream = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = False
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def port(self) -> int:
        return self._listener.getsockname()[1]

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets |= {client, server}
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                self._flowing.wait()
                if self._closed:
                    break
                target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def start(self) -> "StallingProxy":
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed = True
        self._flowing.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def __enter__(self) -> "StallingProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
