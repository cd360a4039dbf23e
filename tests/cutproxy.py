"""A fault-injecting TCP proxy on loopback for client tests: cuts connections after N uploaded bytes.

Unlike tests/faultproxy.py (one armed fault at a time, counted from arming), this one counts every
byte sent upstream since it started, fires several pre-set cut points, and can throttle uploads,
which is what measuring the bytes a resumed upload re-sends needs.

Every byte the client sends upstream is counted (`sent_upstream`), so a test can tell how much a
resumed upload re-sent. `cut_at(...)` arms one-shot cut points on that running count: when the count
reaches one, the proxy resets both sides of that connection (SO_LINGER 0), as a dropped Wi-Fi or a
dead NAT entry would look to the client.

`hide_response_header(name)` renames a header in every answer (to a same-length X-Hidden-... name, so the
byte counts stay true), as a server or proxy that never sends it would look.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Iterable

from tests.loopback import LoopbackListener, end_socket


class CutProxy(LoopbackListener):
    RESET_ON_CLOSE = True

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        super().__init__()
        self.upstream = (upstream_host, upstream_port)
        self.sent_upstream = 0
        self.sent_downstream = 0
        self.cuts_done = 0
        self.connection_heads: list[bytes] = []  # the first bytes each connection sent upstream
        self.upload_rate: float | None = None  # bytes per second client->server, None = as fast as possible
        self._cut_points: list[int] = []
        self._hold_after: int | None = None
        self._flowing = threading.Event()
        self._flowing.set()
        self._down_cut_points: list[int] = []
        self._hidden: list[tuple[bytes, bytes]] = []
        self._start_accepting("cutproxy-accept")

    def hide_response_header(self, name: str) -> None:
        """Answers reach the client without the header `name` (renamed X-Hidden-...; heads are sent whole,
        so a name is never split across two reads here)."""
        stand_in = ("X-Hidden-" + "x" * len(name))[:len(name)]
        with self._lock:
            self._hidden.append((f"\r\n{name}:".encode(), f"\r\n{stand_in}:".encode()))

    def cut_at(self, points: Iterable[int]) -> None:
        """Arms cuts at these running totals of upstream bytes (each fires once)."""
        with self._lock:
            self._cut_points = sorted(set(self._cut_points) | set(points))

    def cut_downstream_at(self, points: Iterable[int]) -> None:
        """Arms cuts at these running totals of bytes sent back to the client (downloads)."""
        with self._lock:
            self._down_cut_points = sorted(set(self._down_cut_points) | set(points))

    def hold_uploads_after(self, total: int) -> None:
        """Upstream bytes stop flowing once `total` have been sent, until `release_uploads()`: a state
        that only lasts while a transfer runs (a tray's "syncing") then lasts as long as a test needs."""
        with self._lock:
            self._hold_after = total

    def release_uploads(self) -> None:
        with self._lock:
            self._hold_after = None
        self._flowing.set()

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._sockets) // 2

    def close(self) -> None:
        self._flowing.set()
        super().close()

    def _accepted(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.upstream)
        except OSError:
            end_socket(client, reset=True)
            return
        self._track(client, server)
        pair = (client, server)
        threading.Thread(target=self._pump, args=(client, server, True, pair), daemon=True).start()
        threading.Thread(target=self._pump, args=(server, client, False, pair), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, upstream: bool,
              pair: tuple[socket.socket, socket.socket]) -> None:
        first = upstream
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            if first:
                self.connection_heads.append(data[:4096])
                first = False
            data, cut = self._count(data, upstream)
            if not upstream:
                for name, stand_in in self._hidden:
                    data = data.replace(name, stand_in)
            try:
                if data:
                    dst.sendall(data)
            except OSError:
                break
            if cut:
                break
            if upstream and self.upload_rate:
                time.sleep(len(data) / self.upload_rate)
            if upstream:
                self._flowing.wait()
        for sock in pair:
            end_socket(sock, reset=True)
        self._untrack(*pair)

    def _count(self, data: bytes, upstream: bool) -> tuple[bytes, bool]:
        """Forwards up to the next cut point; True when the connection must be cut after this piece."""
        with self._lock:
            points = self._cut_points if upstream else self._down_cut_points
            start = self.sent_upstream if upstream else self.sent_downstream
            cut = False
            if points and start + len(data) >= points[0]:
                point = points.pop(0)
                # Points already passed (two in one recv) collapse into this cut.
                while points and points[0] <= point:
                    points.pop(0)
                data = data[:max(0, point - start)]
                self.cuts_done += 1
                cut = True
            if upstream:
                self.sent_upstream += len(data)
                if self._hold_after is not None and self.sent_upstream >= self._hold_after:
                    self._flowing.clear()
            else:
                self.sent_downstream += len(data)
            return data, cut

