"""Small files kept inside the database: the body buffer, their digests, and reading their bytes back.

A file whose declared Content-Length is at most the `inline_max` setting is not written to a blob file.
Its body is held in memory (never more than `inline_max` bytes) and its row and bytes are inserted in one
transaction (service.record_file, davstore.commit_put), so the one WAL fsync of that commit makes both
durable together, and a crash leaves both or neither. Writing a blob file durably costs an fsync of the
file and of its folder besides the WAL's: for 10 KiB files that was three quarters of an upload's time.

Every reader of stored bytes goes through FileBytes (filebytes.py), which knows the two places bytes live.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from typing import Callable

import peewee

from lockr_local.errors import NotFound, TooLarge
from lockr_local.server.activity import TRANSFERS
from lockr_local.server.blobstore import Digests, StreamDigests
from lockr_local.server.models import InlineBlob
from lockr_local.server.prepared import Prepared

# The bytes are passed as a plain Value, so they reach the driver as bytes (SQLite BLOB, PostgreSQL bytea).
_INSERT_INLINE = Prepared(lambda file_id, data: InlineBlob.insert(file=file_id, data=peewee.Value(data)), str, str)


def stores_inline(size: int | None, inline_max: int) -> bool:
    """Whether an upload that declared `size` bytes (None: a chunked body) is kept in the database."""
    return size is not None and 0 < inline_max and size <= inline_max


class InlineSink:
    """Collects a small body in memory, refusing any byte past its declared length; the same `feed`,
    `received` and `abort` as UploadSink, so handlers treat both alike until the body has arrived."""

    def __init__(self, limit: int, too_large: Callable[[int], TooLarge]) -> None:
        self.received = 0
        self._limit = limit
        self._too_large = too_large
        self._chunks: list[bytes] = []

    async def feed(self, chunk: bytes) -> None:
        TRANSFERS.mark()
        self.received += len(chunk)
        if self.received > self._limit:
            raise self._too_large(self.received)
        self._chunks.append(chunk)

    def data(self) -> bytes:
        return self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)

    def abort(self) -> None:
        """Nothing was stored: the buffer is simply dropped."""
        self._chunks = []


def inline_digests(data: bytes, side: Executor | None = None) -> Digests:
    """Every digest a blob file would get as it streamed in, SHA-1/MD5 included (inline files are never
    more than 16 MiB, and the backfill never reads them); SHA-256 and MD5 of a large body on `side`."""
    digests = StreamDigests(rclone_digests=True, side=side)
    digests.update(data)
    return digests.digests()


# Bodies up to this size are hashed on the IOLoop (tens of microseconds); larger ones (inline_max may be
# set up to 16 MiB) on an I/O thread. Never on the database thread, which every request waits for.
HASH_ON_LOOP_MAX = 128 * 1024


async def digests_of(data: bytes, io_threads: Executor, side: Executor | None = None) -> Digests:
    """inline_digests(data), computed where it costs least (see HASH_ON_LOOP_MAX)."""
    if len(data) <= HASH_ON_LOOP_MAX:
        return inline_digests(data)
    return await asyncio.get_running_loop().run_in_executor(io_threads, inline_digests, data, side)


def insert_inline(database: peewee.Database, file_id: str, data: bytes) -> None:
    """Stores a file's bytes; on the database thread, inside the transaction that inserts its row."""
    _INSERT_INLINE.execute(database, file_id, data)


def inline_bytes(file_id: str) -> bytes:
    """The bytes of an inline file (on the database thread); NotFound when the file is gone."""
    data = InlineBlob.select(InlineBlob.data).where(InlineBlob.file == file_id).scalar()
    if data is None:
        raise NotFound("No file has that id; it may have been deleted.")
    return bytes(data)


def copy_inline(source_id: str, target_id: str) -> bool:
    """Copies an inline file's bytes to a new id (WebDAV COPY), inside the caller's transaction; False when
    the source's bytes are gone."""
    data = InlineBlob.select(InlineBlob.data).where(InlineBlob.file == source_id).scalar()
    if data is None:
        return False
    insert_inline(InlineBlob._meta.database, target_id, bytes(data))
    return True
