"""A loopback reverse proxy that answers HTTP errors for a while, as nginx does while its upstream restarts.

    proxy = ErrorProxy(server.port)
    proxy.fail_next(6)                # the next 6 requests get "503 Service Temporarily Unavailable"
    client = LockrClient(proxy.url)   # then every request is passed through, byte for byte

A failed request is read whole (head and Content-Length body), answered with nginx's HTML error page
and `Connection: close`, so the client's next request opens a new connection; that is where the next
failure, if any, is decided. Other connections are piped to the server untouched. `failed` records
when each error was answered and for which request line.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Temporarily Unavailable"}


@dataclass(frozen=True)
class Failure:
    at: float  # time.monotonic() when the error was sent
    request_line: str


class ErrorProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1", status: int = 503) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.status = status
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._to_fail = 0
        self.failed: list[Failure] = []
        self.passed_connections = 0
        self._sockets: set[socket.socket] = set()
        self._closed = threading.Event()
        threading.Thread(target=self._accept_loop, name="errorproxy", daemon=True).start()

    def fail_next(self, count: int) -> None:
        with self._lock:
            self._to_fail = count

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _close(sock)

    def __enter__(self) -> "ErrorProxy":
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._sockets.add(client)
            threading.Thread(target=self._serve, args=(client,), name="errorproxy-conn", daemon=True).start()

    def _take_failure(self) -> bool:
        with self._lock:
            if self._to_fail <= 0:
                return False
            self._to_fail -= 1
            return True

    def _serve(self, client: socket.socket) -> None:
        try:
            head = _read_head(client)
            if head is None:
                _close(client)
                return
            if self._take_failure():
                self._answer_error(client, head)
                return
            upstream = socket.create_connection(self.upstream, timeout=10)
            upstream.settimeout(None)
            with self._lock:
                self._sockets.add(upstream)
                self.passed_connections += 1
            upstream.sendall(head)
            threading.Thread(target=_pump, args=(upstream, client), name="errorproxy-down", daemon=True).start()
            _pump(client, upstream)
        except OSError:
            _close(client)

    def _answer_error(self, client: socket.socket, head: bytes) -> None:
        header_block, _, body_start = head.partition(b"\r\n\r\n")
        lines = header_block.decode("latin-1").split("\r\n")
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        remaining = length - len(body_start)
        while remaining > 0:  # the whole body, so the client reads our answer instead of a reset
            data = client.recv(min(65536, remaining))
            if not data:
                break
            remaining -= len(data)
        reason = _REASONS.get(self.status, "Error")
        page = (f"<html>\r\n<head><title>{self.status} {reason}</title></head>\r\n<body>\r\n<center><h1>{self.status} "
                f"{reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n").encode()
        client.sendall(f"HTTP/1.1 {self.status} {reason}\r\nServer: nginx\r\nContent-Type: text/html\r\n"
                       f"Content-Length: {len(page)}\r\nConnection: close\r\n\r\n".encode() + page)
        with self._lock:
            self.failed.append(Failure(time.monotonic(), lines[0]))
        _close(client)


def _read_head(sock: socket.socket) -> bytes | None:
    """Bytes up to and including the end of the first request's headers (plus whatever followed)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
        if len(data) > 1024 * 1024:
            raise OSError("request head too large")
    return data


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    for sock in (source, target):
        _close(sock)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
