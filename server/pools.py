"""SharedPool: a helper thread pool for the whole process, created on first use, never at import.

The side-hashing threads (blobstore.StreamDigests) and the flush threads (writeback.BackgroundFlush)
run short, stateless jobs for whatever writer calls them; every server in the process shares them, so
no server owns them. The pools each server owns (its database thread, I/O and KDF threads) are made
and shut down by its `Server` (app.py).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable


class SharedPool:
    """`submit` as ThreadPoolExecutor's; the pool (and its threads) appear on the first call."""

    def __init__(self, max_workers: int, thread_name_prefix: str) -> None:
        self._max_workers = max_workers
        self._prefix = thread_name_prefix
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        pool = self._pool
        if pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self._max_workers, thread_name_prefix=self._prefix)
                pool = self._pool
        return pool.submit(fn, *args)

    @property
    def started(self) -> bool:
        return self._pool is not None
