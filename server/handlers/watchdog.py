"""BodyWatchdog: cuts off upload bodies that stall or trickle, so slow clients cannot pin resources."""

from __future__ import annotations

import logging
import time
from typing import Callable

from tornado.ioloop import PeriodicCallback

log = logging.getLogger("lockr.server")


class BodyWatchdog:
    """Every `window` seconds, checks that at least `min_rate * window` body bytes arrived in that
    window; otherwise calls `on_timeout` (which aborts the upload and closes the connection)."""

    def __init__(self, window: float, min_rate: int, on_timeout: Callable[[], None]) -> None:
        self._window = window
        self._min_bytes = min_rate * window
        self._on_timeout = on_timeout
        self._bytes_in_window = 0
        self._started = time.monotonic()
        self._timer = PeriodicCallback(self._check, window * 1000)

    def start(self) -> None:
        if self._window > 0:
            self._timer.start()

    def received(self, count: int) -> None:
        self._bytes_in_window += count

    def stop(self) -> None:
        self._timer.stop()

    def _check(self) -> None:
        if self._bytes_in_window < self._min_bytes:
            log.info("upload body too slow (%d bytes in %.0fs); closing the connection",
                     self._bytes_in_window, self._window)
            self.stop()
            self._on_timeout()
            return
        self._bytes_in_window = 0
