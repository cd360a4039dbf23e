"""A loopback reverse proxy that answers HTTP errors for a while, as nginx does while its upstream restarts.

    proxy = ErrorProxy(server.port)
    proxy.fail_next(6)                # the next 6 requests get "503 Service Temporarily Unavailable"
    client = LockrClient(proxy.url)   # then every request is passed through, byte for byte
    proxy.fail_next(2, method="PUT", after=1)  # let one PUT through, fail the next two PUTs

Requests are told apart on kept-alive connections by their Content-Length (a chunked request body
turns the rest of its connection into a plain pipe). A failed request is read whole, answered with
nginx's HTML error page and `Connection: close`, and its connection (to the server too) closed.
`failed` records when each error was answered and for which request line; `requests` every request
line with its Content-Range header, if any.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

from tests.loopback import LoopbackListener, end_socket

_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Temporarily Unavailable"}


@dataclass(frozen=True)
class Failure:
    at: float  # time.monotonic() when the error was sent
    request_line: str


class ErrorProxy(LoopbackListener):
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1", status: int = 503) -> None:
        super().__init__()
        self.upstream = (upstream_host, upstream_port)
        self.status = status
        self._to_fail = 0
        self._method: str | None = None
        self._pass_first = 0
        self.failed: list[Failure] = []
        self.requests: list[tuple[str, str]] = []
        self.passed_connections = 0
        self._start_accepting("errorproxy")

    def fail_next(self, count: int, method: str | None = None, after: int = 0) -> None:
        """The next `count` requests (of `method`, if given) fail, once `after` of them have passed."""
        with self._lock:
            self._to_fail, self._method, self._pass_first = count, method, after

    def _accepted(self, client: socket.socket) -> None:
        self._track(client)
        threading.Thread(target=self._serve, args=(client,), name="errorproxy-conn", daemon=True).start()

    def _take_failure(self, request_line: str, content_range: str) -> bool:
        with self._lock:
            self.requests.append((request_line, content_range))
            if self._to_fail <= 0 or (self._method and not request_line.startswith(self._method + " ")):
                return False
            if self._pass_first > 0:
                self._pass_first -= 1
                return False
            self._to_fail -= 1
            return True

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            buffered = _read_head(client)
            while buffered is not None:
                head, _, rest = buffered.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {name.strip().lower(): value.strip()
                           for name, _, value in (line.partition(":") for line in lines[1:])}
                if self._take_failure(lines[0], headers.get("content-range", "")):
                    self._answer_error(client, lines[0], int(headers.get("content-length", "0")), rest)
                    break
                if upstream is None:
                    upstream = socket.create_connection(self.upstream, timeout=10)
                    upstream.settimeout(None)
                    self._track(upstream)
                    with self._lock:
                        self.passed_connections += 1
                    threading.Thread(target=_pump, args=(upstream, client), name="errorproxy-down",
                                     daemon=True).start()
                upstream.sendall(head + b"\r\n\r\n")
                if "chunked" in headers.get("transfer-encoding", ""):
                    upstream.sendall(rest)
                    _pump(client, upstream)  # no more request boundaries to find: a plain pipe from here
                    return
                length = int(headers.get("content-length", "0"))
                upstream.sendall(rest[:length])
                remaining = length - len(rest[:length])
                while remaining > 0:
                    data = client.recv(min(65536, remaining))
                    if not data:
                        raise OSError("the client went away mid-body")
                    upstream.sendall(data)
                    remaining -= len(data)
                # The client sends its next request only after reading this one's answer (no pipelining).
                buffered = _read_head(client, rest[length:])
        except OSError:
            pass
        for sock in (client, upstream):
            if sock is not None:
                end_socket(sock)

    def _answer_error(self, client: socket.socket, request_line: str, length: int, body_start: bytes) -> None:
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
            self.failed.append(Failure(time.monotonic(), request_line))


def _read_head(sock: socket.socket, data: bytes = b"") -> bytes | None:
    """Bytes up to and including the end of a request's headers (plus whatever followed); None at EOF."""
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
        end_socket(sock)
