"""Body watchdogs: cut off upload bodies that stall or trickle, so slow clients cannot pin resources."""

from __future__ import annotations

import logging
import time
from typing import Callable

from tornado.ioloop import PeriodicCallback

log = logging.getLogger("lockr.server")

# How often the shared timer looks at the bodies in flight, at most: a body is cut off at most this much
# later than its window ends.
MAX_TICK = 1.0


class BodyWatchdog:
    """One body's guard: every `window` seconds since it started, at least `min_rate * window` body
    bytes must have arrived in that window; otherwise `on_timeout` is called (it aborts the upload and
    closes the connection)."""

    def __init__(self, group: "BodyWatchdogs", on_timeout: Callable[[], None], now: float) -> None:
        self._group = group
        self._on_timeout = on_timeout
        self._bytes_in_window = 0
        self.window_started = now

    def received(self, count: int) -> None:
        self._bytes_in_window += count

    def stop(self) -> None:
        self._group.forget(self)

    def check(self, now: float, window: float, min_bytes: float) -> None:
        """Called by the group once this body's window has ended."""
        if self._bytes_in_window < min_bytes:
            log.info("upload body too slow (%d bytes in %.0fs); closing the connection",
                     self._bytes_in_window, window)
            self.stop()
            self._on_timeout()
            return
        self._bytes_in_window = 0
        self.window_started = now


class BodyWatchdogs:
    """Every body being received, watched by one timer on the IOLoop.

    Starting and stopping a body's watchdog is a set insert and removal: a timer per request cost a
    twentieth of a small upload's time (each one a heap entry on the loop, left behind when cancelled).
    The timer runs only while some body is watched. A window of 0 turns watching off.
    """

    def __init__(self, window: float, min_rate: int) -> None:
        self._window = window
        self._min_bytes = min_rate * window
        self._tick = min(MAX_TICK, window / 4)
        self._active: set[BodyWatchdog] = set()
        self._timer: PeriodicCallback | None = None

    def watch(self, on_timeout: Callable[[], None]) -> BodyWatchdog:
        """A new body's watchdog, counting from now; call its stop() when the body has arrived."""
        dog = BodyWatchdog(self, on_timeout, time.monotonic())
        if self._window > 0:
            self._active.add(dog)
            if self._timer is None:
                self._timer = PeriodicCallback(self._check_all, self._tick * 1000)
                self._timer.start()
        return dog

    def forget(self, dog: BodyWatchdog) -> None:
        self._active.discard(dog)

    def __len__(self) -> int:
        return len(self._active)

    def _check_all(self) -> None:
        if not self._active:
            assert self._timer is not None
            self._timer.stop()
            self._timer = None
            return
        now = time.monotonic()
        for dog in [d for d in self._active if now - d.window_started >= self._window]:
            dog.check(now, self._window, self._min_bytes)
