"""A fault-injecting TCP proxy on loopback: cut a connection after N bytes, reset it, or stall it.

    with FaultProxy(server_port) as proxy:
        proxy.arm(after=300_000, action="close")   # the next 300 kB towards the server, then FIN both ways
        requests.put(proxy.url + path, ...)        # fails mid-body

Bytes are counted client -> server from the moment a fault is armed, across connections (so
keep-alive pools do not matter); a fault fires once and disarms itself.
"""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass
from typing import Any

ACTIONS = ("close", "reset", "stall")


@dataclass
class Fault:
    after: int
    action: str
    stall_seconds: float = 0.0


class FaultProxy:
    """Forwards 127.0.0.1:<port> to the target; `arm()` schedules the next fault."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._fault: Fault | None = None
        self._counted = 0
        self.fired: list[Fault] = []
        self._sockets: set[socket.socket] = set()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="faultproxy", daemon=True)
        self._thread.start()

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

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _close_quietly(sock)

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                _close_quietly(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            threading.Thread(target=self._pump_up, args=(client, upstream), daemon=True,
                             name="faultproxy-up").start()
            threading.Thread(target=self._pump_down, args=(upstream, client), daemon=True,
                             name="faultproxy-down").start()

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

    def _pump_up(self, client: socket.socket, upstream: socket.socket) -> None:
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                allowed, fault = self._take(len(data))
                if allowed:
                    upstream.sendall(data[:allowed])
                if fault is not None:
                    self._strike(fault, client, upstream)
                    return
        except OSError:
            pass
        _close_quietly(upstream)
        _close_quietly(client)

    def _pump_down(self, upstream: socket.socket, client: socket.socket) -> None:
        try:
            while True:
                data = upstream.recv(65536)
                if not data:
                    break
                client.sendall(data)
        except OSError:
            pass
        _close_quietly(client)
        _close_quietly(upstream)

    def _strike(self, fault: Fault, client: socket.socket, upstream: socket.socket) -> None:
        if fault.action == "stall":
            # No more bytes reach the server for a while; then the connection dies, as a dead link does.
            self._closed.wait(fault.stall_seconds)
        if fault.action == "reset":
            # SO_LINGER 0 makes close() send RST instead of FIN, to both ends.
            for sock in (client, upstream):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    sock.close()
                except OSError:
                    pass
            return
        _close_quietly(client)
        _close_quietly(upstream)


def _close_quietly(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
