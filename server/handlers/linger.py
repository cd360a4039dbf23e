"""Lingering close: answer a request whose body we refuse, then read and discard the rest before closing.

Closing a TCP socket while the peer's bytes sit unread in its receive queue makes the kernel send RST,
and a client still writing its body (Go's net/http, so rclone; Python's requests) then sees
"connection reset by peer" instead of our 413 or 403. nginx's answer is the lingering close, and this
is the same: after the answer is handed to the kernel, shut down our sending side (the client reads the
answer, then end-of-stream), keep reading and discarding for a bounded time and amount, then close.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from dataclasses import dataclass

log = logging.getLogger("lockr.server")


@dataclass(frozen=True)
class LingerLimits:
    """How long and how much a refused body is drained before the connection is closed anyway."""

    total_seconds: float = 30.0  # nginx's lingering_time
    idle_seconds: float = 5.0  # nginx's lingering_timeout: a silent peer is not waited for
    max_bytes: int = 256 * 1024 * 1024  # a few hundred ms of loopback; beyond that RST is the client's doing


LIMITS = LingerLimits()
_SCRATCH = bytearray(256 * 1024)  # the drained bytes are thrown away, so every drain may share one buffer


class LingeringClose:
    """Owns a duplicate of a connection's socket, so the TCP connection outlives Tornado's close."""

    def __init__(self, sock: socket.socket, limits: LingerLimits = LIMITS) -> None:
        self._sock = sock.dup()
        self._sock.setblocking(False)
        self._limits = limits
        self._drained = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadline = 0.0
        self._last_read = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    def start(self) -> None:
        """Called once the answer has been written: send FIN after it, then drain what keeps coming."""
        try:
            self._sock.shutdown(socket.SHUT_WR)
            self._loop = asyncio.get_running_loop()
            self._loop.add_reader(self._sock.fileno(), self._drain)
        except (OSError, RuntimeError):
            self.close()
            return
        self._deadline = self._last_read = time.monotonic()
        self._deadline += self._limits.total_seconds
        self._schedule_check()

    def _drain(self) -> None:
        while True:
            try:
                received = self._sock.recv_into(_SCRATCH)
            except (BlockingIOError, InterruptedError):
                self._last_read = time.monotonic()
                return
            except OSError:
                self.close()
                return
            if received == 0:  # the client read our answer and closed: the clean ending
                self.close()
                return
            self._drained += received
            if self._drained > self._limits.max_bytes:
                log.info("Closing a connection that kept sending %d bytes after its refusal", self._drained)
                self.close()
                return

    def _schedule_check(self) -> None:
        assert self._loop is not None
        self._timer = self._loop.call_later(min(self._limits.idle_seconds, 1.0), self._check_time)

    def _check_time(self) -> None:
        if self._closed:
            return
        now = time.monotonic()
        if now >= self._deadline or now - self._last_read >= self._limits.idle_seconds:
            self.close()
            return
        self._schedule_check()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self._loop is not None:
            try:
                self._loop.remove_reader(self._sock.fileno())
            except (ValueError, OSError):
                pass
        self._sock.close()
