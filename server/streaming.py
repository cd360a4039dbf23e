"""UploadSink: feeds request-body chunks to a BlobWriter on an I/O thread, pipelined with receiving."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from typing import Callable

from lockr_local.errors import TooLarge
from lockr_local.server.blobstore import BlobWriter

WRITE_BUFFER = 1024 * 1024


class UploadSink:
    """Collects chunks into ~1 MiB writes; while one write (hash + disk) runs on an I/O thread the
    next buffer fills from the socket. At most two buffers per upload, so memory stays flat."""

    def __init__(self, writer: BlobWriter, executor: Executor, limit: int | None,
                 too_large: Callable[[int], TooLarge]) -> None:
        self.writer = writer
        self.received = 0
        self._executor = executor
        self._limit = limit
        self._too_large = too_large
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._pending: asyncio.Future[None] | None = None
        self._closed = False

    async def feed(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self._limit is not None and self.received > self._limit:
            raise self._too_large(self.received)
        self._chunks.append(chunk)
        self._buffered += len(chunk)
        if self._buffered >= WRITE_BUFFER:
            await self._submit()

    async def _submit(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            await pending
        if not self._buffered:
            return
        data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks, self._buffered = [], 0
        loop = asyncio.get_running_loop()
        self._pending = loop.run_in_executor(self._executor, self.writer.write, data)

    async def drain(self) -> None:
        """Writes out everything received so far (not yet durable)."""
        await self._submit()
        if self._pending is not None:
            pending, self._pending = self._pending, None
            await pending

    async def commit(self) -> str:
        """Writes what is left, then makes the blob durable and visible; returns its sha256.

        The last buffer and the commit share one trip to the I/O pool: for a small file that is
        the only trip, and a round trip costs about as much as writing 10 KiB.
        """
        if self._pending is not None:
            pending, self._pending = self._pending, None
            await pending
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
        """Discards the blob once any write in flight has finished; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        self._chunks = []
        pending = self._pending
        if pending is not None and not pending.done():
            pending.add_done_callback(lambda _f: self._executor.submit(self.writer.abort))
            return
        self._executor.submit(self.writer.abort)
