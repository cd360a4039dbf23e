"""The executor that runs every database query off the IOLoop thread, on one named writer thread."""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

import peewee

from lockr_local.server.models import open_database

T = TypeVar("T")


class Database:
    """Owns the connection and the `lockr-db` thread; `await db.run(fn, ...)` runs fn on that thread.

    One thread serialises writes (SQLite allows one writer) and keeps peewee's per-thread
    connection state in one place; the IOLoop never blocks on the database. On PostgreSQL the same
    holds: one connection per server, its queries one at a time (what must hold against other servers
    sharing the database is locked in the queries themselves: models.for_update, lock_account).
    """

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lockr-db")
        self.peewee: peewee.Database = self._executor.submit(open_database, database_url).result()

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def start(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """Queues fn on that thread now and returns its future, for a caller that answers in a callback."""
        return asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def run_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """For callers outside the IOLoop (CLI, tests, start-up): runs fn on the db thread and waits."""
        return self._executor.submit(fn, *args, **kwargs).result()

    def close(self) -> None:
        self._executor.submit(self.peewee.close).result()
        self._executor.shutdown(wait=True)
