"""UploadSink: feeds request-body chunks to a BlobWriter on an I/O thread, pipelined with receiving."""

from __future__ import annotations

import asyncio
import collections
from concurrent.futures import Executor, Future
from typing import Callable

from lockr_local.errors import TooLarge
from lockr_local.server.activity import TRANSFERS
from lockr_local.server.blobstore import BlobWriter
from lockr_local.server.bodybudget import BodyBudget

WRITE_BUFFER = 1024 * 1024
QUEUED_WRITES = 2


class UploadSink:
    """Collects chunks into ~1 MiB writes that an I/O thread hashes and writes, in order, while the next
    buffers fill from the socket. Up to QUEUED_WRITES buffers wait for the disk, so a slow moment there
    does not stop the socket at once; memory stays flat at a few MiB per upload. With a `budget`, writes are
    no larger than its share (the size of the body's socket reads): many uploads at once hold that
    budget's worth of buffers between them, not a few MiB each."""

    def __init__(self, writer: BlobWriter, executor: Executor, limit: int | None,
                 too_large: Callable[[int], TooLarge], queued_writes: int = QUEUED_WRITES,
                 write_buffer: int = WRITE_BUFFER, budget: BodyBudget | None = None) -> None:
        self.writer = writer
        self._queued_writes = queued_writes
        self._write_buffer = write_buffer
        self._budget = budget
        self.received = 0
        self._executor = executor
        self._limit = limit
        self._too_large = too_large
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._queued: collections.deque[Future[None]] = collections.deque()
        self._closed = False

    async def feed(self, chunk: bytes) -> None:
        TRANSFERS.mark()
        self.received += len(chunk)
        if self._limit is not None and self.received > self._limit:
            raise self._too_large(self.received)
        self._chunks.append(chunk)
        self._buffered += len(chunk)
        write_buffer = self._write_buffer if self._budget is None else min(self._write_buffer, self._budget.share())
        if self._buffered >= write_buffer:
            await self._submit()

    async def _submit(self) -> None:
        while len(self._queued) >= self._queued_writes:
            await asyncio.wrap_future(self._queued.popleft())
        if not self._buffered:
            return
        data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks, self._buffered = [], 0
        previous = self._queued[-1] if self._queued else None
        self._queued.append(self._executor.submit(self._write_after, previous, data))

    def _write_after(self, previous: Future[None] | None, data: bytes) -> None:
        """On an I/O thread: the writes of one upload run in the order they were queued (the pool starts
        tasks first come, first served, so `previous` is running or done), and a failed write fails
        every one after it."""
        if previous is not None:
            previous.result()
        self.writer.write(data)

    async def _wait_queued(self) -> None:
        while self._queued:
            await asyncio.wrap_future(self._queued.popleft())

    async def drain(self) -> None:
        """Writes out everything received so far (not yet durable)."""
        await self._submit()
        await self._wait_queued()

    async def commit(self) -> str:
        """Writes what is left, then makes the blob durable and visible; returns its sha256.

        The last buffer and the commit share one trip to the I/O pool: for a small file that is
        the only trip, and a round trip costs about as much as writing 10 KiB.
        """
        await self._wait_queued()
        tail = b"".join(self._chunks)
        self._chunks, self._buffered = [], 0
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._write_and_commit, tail)
        self._closed = True
        return self.writer.sha256()

    def _write_and_commit(self, tail: bytes) -> None:
        if tail:
            self.writer.write(tail)
        self.writer.commit()

    def abort(self) -> None:
        """Discards the blob once the writes in flight have finished; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        self._chunks = []
        last = self._queued[-1] if self._queued else None
        self._queued.clear()
        if last is not None and not last.done():
            last.add_done_callback(lambda _f: self._executor.submit(self.writer.abort))
            return
        self._executor.submit(self.writer.abort)
