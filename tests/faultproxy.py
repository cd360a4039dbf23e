"""A fault-injecting TCP proxy on loopback: cut a connection after N bytes, reset it, or stall it.

    with FaultProxy(server_port) as proxy:
        proxy.arm(after=300_000, action="close")   # the next 300 kB towards the server, then FIN both ways
        requests.put(proxy.url + path, ...)        # fails mid-body

Bytes are counted client -> server from the moment a fault is armed, across connections (so
keep-alive pools do not matter); a fault fires once and disarms itself.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass

from tests.loopback import LoopbackListener, end_socket

ACTIONS = ("close", "reset", "stall")


@dataclass
class Fault:
    after: int
    action: str
    stall_seconds: float = 0.0


class FaultProxy(LoopbackListener):
    """Forwards 127.0.0.1:<port> to the target; `arm()` schedules the next fault."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        super().__init__()
        self.target = (target_host, target_port)
        self._fault: Fault | None = None
        self._counted = 0
        self.fired: list[Fault] = []
        self._start_accepting("faultproxy")

    def arm(self, after: int, action: str = "close", stall_seconds: float = 0.0) -> None:
        """The connection that carries byte number `after` (counted from now, client -> server) is hit."""
        assert action in ACTIONS, action
        with self._lock:
            self._fault = Fault(after, action, stall_seconds)
            self._counted = 0

    @property
    def armed(self) -> bool:
        with self._lock:
            return self._fault is not None

    def _accepted(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            end_socket(client)
            return
        upstream.settimeout(None)
        link = _Link(client, upstream)
        self._track(client, upstream)
        threading.Thread(target=self._pump_up, args=(link,), daemon=True, name="faultproxy-up").start()
        threading.Thread(target=self._pump_down, args=(link,), daemon=True, name="faultproxy-down").start()

    def _take(self, size: int) -> tuple[int, Fault | None]:
        """How many of `size` bytes may pass before the armed fault fires (and the fault, if it does)."""
        with self._lock:
            fault = self._fault
            if fault is None:
                return size, None
            allowed = fault.after - self._counted
            if size < allowed:
                self._counted += size
                return size, None
            self._fault = None
            self.fired.append(fault)
            return max(0, allowed), fault

    def _pump_up(self, link: "_Link") -> None:
        assert link.upstream is not None
        try:
            while True:
                data = link.client.recv(65536)
                if not data:
                    break
                allowed, fault = self._take(len(data))
                if allowed:
                    link.upstream.sendall(data[:allowed])
                if fault is not None:
                    if fault.action == "stall":
                        # No more bytes reach the server for a while; then the link dies, as dead links do.
                        self._closed.wait(fault.stall_seconds)
                    link.end(reset=fault.action == "reset")
                    return
        except OSError:
            pass
        link.end()

    def _pump_down(self, link: "_Link") -> None:
        assert link.upstream is not None
        try:
            while True:
                data = link.upstream.recv(65536)
                if not data:
                    break
                link.client.sendall(data)
        except OSError:
            pass
        link.end()


class _Link:
    """Both sockets of one proxied connection; ended once, gracefully (FIN) or with RST."""

    def __init__(self, client: socket.socket, upstream: socket.socket | None) -> None:
        self.client = client
        self.upstream = upstream
        self._ended = False
        self._lock = threading.Lock()

    def end(self, reset: bool = False) -> None:
        with self._lock:
            if self._ended:
                return
            self._ended = True
        for sock in (self.client, self.upstream):
            if sock is not None:
                end_socket(sock, reset)
