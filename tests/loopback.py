"""What the test proxies (cutproxy, errorproxy, faultproxy) share: a loopback listener with its accept
thread, the sockets handed out through it, and ending a socket gracefully (FIN) or abruptly (RST)."""

from __future__ import annotations

import socket
import struct
import threading
from abc import ABC, abstractmethod
from typing import Any


def end_socket(sock: socket.socket, reset: bool = False) -> None:
    """Closes `sock`, never raising. With `reset`, the close sends RST instead of FIN (SO_LINGER 0), as a
    dropped Wi-Fi or a dead NAT entry would look; SHUT_RD sends nothing but wakes a thread blocked in
    recv() on it, so the close is not held back by that thread."""
    try:
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.shutdown(socket.SHUT_RD)
        else:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class LoopbackListener(ABC):
    """Listens on 127.0.0.1 (`port`, `url`); each accepted client goes to `_accepted` on the accept thread.
    `close()` stops listening and ends every socket registered with `_track` (with RST when
    `RESET_ON_CLOSE`). Subclasses set up their own state, then call `_start_accepting`."""

    RESET_ON_CLOSE = False

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._closed = threading.Event()

    def _start_accepting(self, name: str) -> None:
        threading.Thread(target=self._accept_loop, name=name, daemon=True).start()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._accepted(client)

    @abstractmethod
    def _accepted(self, client: socket.socket) -> None:
        """Serves one accepted connection (start threads here; this runs on the accept thread)."""

    def _track(self, *sockets: socket.socket) -> None:
        with self._lock:
            self._sockets.update(sockets)

    def _untrack(self, *sockets: socket.socket) -> None:
        with self._lock:
            self._sockets.difference_update(sockets)

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            end_socket(sock, reset=self.RESET_ON_CLOSE)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()
