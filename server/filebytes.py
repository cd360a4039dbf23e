"""FileBytes: the one seam over both places a stored file's bytes live, a blob or inside the database.

Readers (downloads, WebDAV GET and COPY, fsck) ask it for a file's bytes by `StoredAt` and never ask
where they are: a blob comes from the BlobStore (blobstore.py), a small file's bytes from its
InlineBlob row (inline.py). It also knows which thread may fetch them: the database's own for inline
bytes (a query), an I/O thread for a blob (file or network I/O), never the IOLoop's.
"""

from __future__ import annotations

import asyncio
import io
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, TypeVar

from lockr_local.server.blobstore import BlobLocation, BlobStore
from lockr_local.server.inline import inline_bytes

if TYPE_CHECKING:
    from lockr_local.server.db import Database

T = TypeVar("T")


@dataclass(frozen=True)
class StoredAt:
    """Where one file's bytes are: the blob at `location`, or (`inline`) the database row of that file id."""

    location: BlobLocation
    inline: bool = False


class FileBytes:
    """Opens, copies and deletes any stored file's bytes (see the module docstring). `db` and `io` are
    needed only by the async methods (the server's); fsck and the CLI use `open` on their own thread."""

    def __init__(self, blobs: BlobStore, db: Database | None = None, io_threads: Executor | None = None) -> None:
        self.blobs = blobs
        self._db = db
        self._io = io_threads

    def open(self, at: StoredAt) -> BinaryIO:
        """A readable, seekable handle on the bytes, on the calling thread (for inline bytes: one that may
        query the database). NotFound when they are gone. A handle without `fileno()` (inline bytes, an
        object store) is streamed by downloads instead of sent with sendfile."""
        if at.inline:
            return io.BytesIO(inline_bytes(at.location.key))
        return self.blobs.open(at.location)

    async def open_async(self, at: StoredAt) -> BinaryIO:
        """`open`, on the thread that suits where the bytes are."""
        assert self._db is not None
        if at.inline:
            return await self._db.run(self.open, at)
        return await self._run_io(self.open, at)

    async def clone(self, source: StoredAt, key: str) -> StoredAt:
        """Bytes for a copy of `source` under file id `key`, durable before the copy's row is recorded. A blob
        is cloned now (BlobStore.clone); inline bytes are copied by the transaction that records the copy
        (DavStore.commit_copy), so there is nothing to do here."""
        target = StoredAt(BlobLocation(source.location.region, key), source.inline)
        if not source.inline:
            await self._run_io(self.blobs.clone, source.location, target.location)
        return target

    async def download_url(self, at: StoredAt, disposition: str, content_type: str) -> str | None:
        """A short-lived URL where the store serves the bytes itself (BlobStore.download_url); None when the
        server streams them (inline bytes, folders, buckets without presigned downloads)."""
        if at.inline:
            return None
        return await self._run_io(self.blobs.download_url, at.location, disposition, content_type)

    async def delete(self, at: StoredAt) -> None:
        """Deletes the bytes of a file whose row is gone (inline bytes went with their row: nothing to do)."""
        if not at.inline:
            await self._run_io(self.blobs.delete, at.location)

    async def _run_io(self, fn: Callable[..., T], *args: Any) -> T:
        assert self._io is not None
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)
