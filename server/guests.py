"""Guest uploads (files no account owns): listing and removal for the admin, and expiry after `guest_retention`.

The row goes first, in one transaction, then the bytes: a crash in between leaves unlisted bytes that
the start-up orphan reaper and fsck remove, never a listed file without bytes. Inline bytes (InlineBlob)
go with their row. Row functions run on the database thread; `delete_bytes` on an I/O thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Iterable

import peewee

from lockr_local.errors import BadRequest, LockrError, NotFound
from lockr_local.server.blobstore import BlobLocation, BlobStore
from lockr_local.server.db import Database
from lockr_local.server.models import InlineBlob, StoredFile

log = logging.getLogger("lockr.server")
# The access log shows ids cut to 8 characters (logsafe.py): that much of an id picks a guest file.
MIN_PREFIX = 8


@dataclass(frozen=True)
class GuestFile:
    file_id: str
    name: str
    size: int
    region: str
    created_at: float
    inline: bool

    @staticmethod
    def of(row: StoredFile) -> "GuestFile":
        return GuestFile(row.file_id, row.name, row.size, row.region, row.created_at, bool(row.inline))


def _guest() -> peewee.Expression:
    return StoredFile.owner.is_null()


def list_guest_files() -> list[GuestFile]:
    """Every guest upload, oldest first."""
    return [GuestFile.of(row) for row in StoredFile.select().where(_guest()).order_by(StoredFile.seq)]


def find_guest_file(id_or_prefix: str) -> GuestFile:
    """The guest upload with this id, or the only one whose id starts with it (at least 8 characters)."""
    text = id_or_prefix.strip().lower()
    if len(text) < MIN_PREFIX or not all(c in "0123456789abcdef" for c in text):
        raise BadRequest(f"{id_or_prefix!r} is not a file id (32 hex characters, or the first {MIN_PREFIX} or "
                         "more of one, as 'lockr-local guest list' and the access log show).")
    rows = list(StoredFile.select().where(_guest() & StoredFile.file_id.startswith(text)).limit(2))
    if not rows:
        raise NotFound(f"No guest upload has the id {id_or_prefix}; 'lockr-local guest list' shows them.")
    if len(rows) > 1:
        raise BadRequest(f"More than one guest upload has an id starting with {id_or_prefix}; give more of it.")
    return GuestFile.of(rows[0])


def remove_rows(files: Iterable[GuestFile]) -> list[GuestFile]:
    """Deletes the rows (and inline bytes) of those of `files` that are still guest uploads; returns them.
    A file registered into an account in the meantime is left alone."""
    db = StoredFile._meta.database
    removed = []
    with db.atomic():
        for file in files:
            query = StoredFile.delete().where((StoredFile.file_id == file.file_id) & _guest())
            if query.execute():
                InlineBlob.delete().where(InlineBlob.file == file.file_id).execute()
                removed.append(file)
    return removed


def take_expired(cutoff: float, batch: int = 1000) -> list[GuestFile]:
    """Deletes the rows of guest uploads made before `cutoff` (up to `batch` per call); returns them."""
    rows = StoredFile.select().where(_guest() & (StoredFile.created_at < cutoff)).order_by(StoredFile.seq)
    return remove_rows([GuestFile.of(row) for row in rows.limit(batch)])


def delete_bytes(blobs: BlobStore, files: Iterable[GuestFile]) -> None:
    """Deletes the blob files of removed guest uploads (after their rows are gone)."""
    for file in files:
        if not file.inline:
            try:
                blobs.delete(BlobLocation(file.region, file.file_id))
            except LockrError as exc:  # left for fsck and the start-up orphan reaper
                log.warning("could not delete the bytes of guest upload %s: %s", file.file_id[:8], exc.message)


class GuestExpiry:
    """Deletes guest uploads older than `retention` seconds (0: never); run by the background reaper."""

    def __init__(self, db: Database, blobs: BlobStore, io: Executor, retention: int) -> None:
        self.db = db
        self.blobs = blobs
        self.io = io
        self.retention = retention

    async def reap(self, now: float | None = None) -> int:
        if self.retention <= 0:
            return 0
        cutoff = (time.time() if now is None else now) - self.retention
        total = 0
        while True:
            expired = await self.db.run(take_expired, cutoff)
            if expired:
                await asyncio.get_running_loop().run_in_executor(self.io, delete_bytes, self.blobs, expired)
            total += len(expired)
            if len(expired) < 1000:
                break
        if total:
            log.info("deleted %d guest uploads older than guest_retention", total)
        return total

    def reap_at_startup(self) -> int:
        """Before serving (no loop yet): the same sweep, on the calling thread."""
        if self.retention <= 0:
            return 0
        expired = self.db.run_sync(take_expired, time.time() - self.retention)
        delete_bytes(self.blobs, expired)
        return len(expired)
