"""Deleting for good what was kept for a while: guest uploads past `guest_retention`, the trash past
`trash_retention`, and the trash emptied by its owner.

Rows go first, a batch per transaction on the database thread, then their bytes on an I/O thread: a
crash in between leaves unlisted bytes, which the start-up orphan reaper and fsck remove, never a listed
file without its bytes. Inline bytes (InlineBlob) go with their row.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Executor
from typing import Callable, Iterable, Protocol, Sequence

from lockr_local.errors import LockrError
from lockr_local.server.blobstore import BlobStore
from lockr_local.server.db import Database
from lockr_local.server.filebytes import StoredAt

log = logging.getLogger("lockr.server")
# Rows removed per transaction: bounded transactions, with the batch's bytes deleted between them.
BATCH = 1000


class Removed(Protocol):
    """A file whose row is gone: where its bytes are, for the caller to delete next."""

    @property
    def place(self) -> StoredAt: ...


def delete_bytes(blobs: BlobStore, removed: Iterable[Removed]) -> None:
    """Deletes the blobs of files whose rows are gone; a failure is left for fsck and the start-up orphan
    reaper (the rows being gone, nothing lists those bytes any more)."""
    for place in (item.place for item in removed):
        if not place.inline:
            try:
                blobs.delete(place.location)
            except LockrError as exc:
                log.warning("could not delete the bytes of file %s: %s", place.location.key[:8], exc.message)


class RetentionSweep:
    """Deletes for good, a batch at a time, what `take_expired(cutoff, batch)` removes from the database
    (rows older than `retention` seconds); run by the background reaper and once at start-up.

    `retention` 0 means "keep forever" when `zero_keeps` (guest uploads), else "keep nothing" (the trash
    turned off: everything in it goes at the next sweep)."""

    def __init__(self, db: Database, blobs: BlobStore, io: Executor, retention: int, *,
                 take_expired: Callable[[float, int], Sequence[Removed]], described: str,
                 zero_keeps: bool) -> None:
        self.db = db
        self.blobs = blobs
        self.io = io
        self.retention = max(0, retention)
        self.take_expired = take_expired
        self.described = described
        self.off = zero_keeps and self.retention == 0

    async def reap(self, now: float | None = None) -> int:
        if self.off:
            return 0
        cutoff = (time.time() if now is None else now) - self.retention
        total = 0
        while True:
            expired = await self.db.run(self.take_expired, cutoff, BATCH)
            if expired:
                await asyncio.get_running_loop().run_in_executor(self.io, delete_bytes, self.blobs, expired)
            total += len(expired)
            if len(expired) < BATCH:
                break
        if total:
            log.info("deleted %d %s", total, self.described)
        return total

    def reap_at_startup(self) -> int:
        """Before serving (no loop yet): the same sweep, on the calling thread."""
        if self.off:
            return 0
        total = 0
        while True:
            expired = self.db.run_sync(self.take_expired, time.time() - self.retention, BATCH)
            delete_bytes(self.blobs, expired)
            total += len(expired)
            if len(expired) < BATCH:
                return total
