"""Ingest: the one pipeline every upload route stores a file through: begin, feed, finish.

Direct uploads, WebDAV PUT, the empty file a WebDAV LOCK creates and the completion of resumable
sessions (GCS-style and tus) differ only in how they read their protocol. Each admits its upload in
one database trip before the body (who, where, may they: Authenticator.admit_upload, DavStore.admit_put,
SessionStore.create), then:

- `begin` picks where the bytes go by the declared size: a small body (at most `inline_max`) is held in
  memory and stored inside the database with its row (inline.py); any other streams into a blob file;
- `feed` takes the body's chunks (refusing any byte past the declared length or the plan's limit);
- `finish` makes the bytes durable (the blob: fsync and rename; inline bytes: their digests), lets the
  route check them (OC-Checksum), passes the crash point between the two commits, records the file in
  one trip to the database thread (inline bytes with their row: that record shares its transaction and
  commit with the other inline records waiting at the time, groupcommit.py), undoes the bytes when that
  record fails (the blob is deleted, a session's bytes go back to its partial file), and queues the
  SHA-1/MD5 backfill.

A record failing is compensated here and nowhere else, so every route cleans up the same way; a record
that finds the upload already made (an Idempotency-Key retry, idempotency.py) raises Replayed, and its
bytes are undone the same way before the first answer is given again.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Callable, TypeVar, cast

from lockr_local.config import Settings
from lockr_local.errors import TooLarge
from lockr_local.server.backfill import DigestBackfill
from lockr_local.server.blobstore import BlobLocation, BlobStore, Digests
from lockr_local.server.bodybudget import BodyBudget
from lockr_local.server.db import Database
from lockr_local.server.faults import Faults
from lockr_local.server.groupcommit import GroupCommit
from lockr_local.server.inline import InlineSink, digests_of, stores_inline
from lockr_local.server.metrics import Metrics
from lockr_local.server.service import NewFile
from lockr_local.server.streaming import UploadSink

T = TypeVar("T")


class Replayed(Exception):
    """Raised by a record step on the database thread when the upload repeats one already recorded: its
    transaction rolls back, and `Ingest.finish` undoes the retry's bytes and returns `result`."""

    def __init__(self, result: Any) -> None:
        super().__init__("replayed")
        self.result = result


@dataclass(frozen=True)
class Committed:
    """An upload's bytes once `finish` has them: durable in a blob (`data` None), or held in memory to be
    stored with the row (`data`), with every digest computed on the way in."""

    location: BlobLocation
    size: int
    digests: Digests
    data: bytes | None = None

    def new_file(self, name: str, content_type: str, key_hash: str | None = None, *,
                 mtime: float | None = None) -> NewFile:
        digests = self.digests
        return NewFile(self.location.key, name, self.size, content_type, self.location.region, digests.sha256,
                       key_hash, mtime=mtime, sha1=digests.sha1, md5=digests.md5, check=digests.check)


class Sink(ABC):
    """Where one upload's bytes go until they are recorded."""

    location: BlobLocation
    # The crash point between committing the bytes and recording them (faults.py); None when nothing
    # is durable before the record (inline bytes commit with their row).
    crash_point: str | None = None

    @property
    def received(self) -> int:
        """Body bytes fed so far."""
        return 0

    @abstractmethod
    async def commit(self) -> Committed:
        """Makes the bytes ready to record: durable and visible (a blob), or hashed (inline)."""

    async def undo(self) -> None:
        """After commit, when the record failed: nothing of the upload may stay (the default: nothing to do)."""

    def abort(self) -> None:
        """Before commit: the upload is abandoned; never raises."""


class StreamedSink(Sink):
    """A sink a request body is fed into, chunk by chunk (a session's completion is a Sink that is not:
    its bytes arrived with its chunks)."""

    @abstractmethod
    async def feed(self, chunk: bytes) -> None:
        """Takes the next body chunk (counted in `received`)."""


class InlineBytes(StreamedSink):
    """A small body held in memory, stored inside the database with its row (inline.py)."""

    def __init__(self, location: BlobLocation, size: int, too_large: Callable[[int], TooLarge],
                 io: Executor, hashing: Executor | None = None) -> None:
        self.location = location
        self._buffer = InlineSink(size, too_large)
        self._io = io
        self._hashing = hashing

    @property
    def received(self) -> int:
        return self._buffer.received

    async def feed(self, chunk: bytes) -> None:
        await self._buffer.feed(chunk)

    async def commit(self) -> Committed:
        data = self._buffer.data()
        # Before the database trip and never on its thread, which every request waits for (inline.py).
        return Committed(self.location, len(data), await digests_of(data, self._io, self._hashing), data)

    def abort(self) -> None:
        self._buffer.abort()


class BlobBytes(StreamedSink):
    """A body streamed into a new blob by UploadSink (an I/O thread writes while the socket receives)."""

    crash_point = "after_blob_commit"

    def __init__(self, location: BlobLocation, sink: UploadSink, blobs: BlobStore, io: Executor) -> None:
        self.location = location
        self._sink = sink
        self._blobs = blobs
        self._io = io

    @property
    def received(self) -> int:
        return self._sink.received

    async def feed(self, chunk: bytes) -> None:
        await self._sink.feed(chunk)

    async def commit(self) -> Committed:
        await self._sink.commit()
        return Committed(self.location, self._sink.received, self._sink.writer.digests())

    async def undo(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._io, self._blobs.delete, self.location)

    def abort(self) -> None:
        self._sink.abort()


class Ingest:
    """The upload pipeline of one server (see the module docstring)."""

    def __init__(self, settings: Settings, db: Database, blobs: BlobStore, io: Executor, faults: Faults,
                 backfill: DigestBackfill, hashing: Executor | None = None, metrics: Metrics | None = None,
                 bodies: BodyBudget | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.db = db
        self.blobs = blobs
        self.io = io
        self.hashing = hashing  # side hashing of large inline bodies (StreamDigests)
        self.faults = faults
        self.backfill = backfill
        self.bodies = bodies  # bounds the writes a streamed body queues (UploadSink)
        # Inline uploads' records: their commit is their whole durable write, so concurrent ones share it.
        self.group = GroupCommit(db, faults, self.metrics)

    def stores_inline(self, size: int | None) -> bool:
        """Whether an upload that declared `size` bytes (None: a chunked body) is kept in the database."""
        return stores_inline(size, self.settings.inline_max)

    def begin(self, location: BlobLocation, size: int | None, limit: int, too_large: Callable[[int], TooLarge],
              rclone_digests: bool = True) -> StreamedSink:
        """The sink for an admitted upload of `size` declared bytes (None: chunked) that may not pass `limit`
        bytes; `too_large` says why a body ran past it. SHA-1/MD5 are left to the backfill unless
        `rclone_digests` (inline bodies always get every digest)."""
        if size is not None and self.stores_inline(size):
            return InlineBytes(location, size, too_large, self.io, self.hashing)
        writer = self.blobs.new_writer(location, rclone_digests)
        return BlobBytes(location, UploadSink(writer, self.io, limit, too_large, budget=self.bodies), self.blobs, self.io)

    async def finish(self, sink: Sink, record: Callable[[Committed], T],
                     check: Callable[[Digests], None] | None = None) -> T:
        """Commits the bytes, `check`s their digests (raise to refuse), then runs `record` on the database
        thread: the one trip that lists the file. Whatever fails after the commit undoes the bytes."""
        started = time.monotonic()
        try:
            committed = await sink.commit()
        except BaseException:
            sink.abort()
            raise
        try:
            if check is not None:
                check(committed.digests)
            if sink.crash_point is not None:
                self.faults.hit(sink.crash_point)
            if sink.crash_point is not None:  # blob bytes: flush, fsync, rename (inline bytes commit below)
                self.metrics.fsync_seconds.observe(time.monotonic() - started)
            recording = time.monotonic()
            if committed.data is not None:
                result = await self.group.run(record, committed)
            else:
                result = await self.db.run(record, committed)
            self.metrics.commit_seconds.observe(time.monotonic() - recording)
        except Replayed as replayed:
            await sink.undo()
            return cast(T, replayed.result)
        except Exception:
            # Not on cancellation: the record may have committed on the database thread regardless, and
            # bytes without a row (reaped at the next start) are better than a row without bytes.
            await sink.undo()
            raise
        self.faults.hit("after_db_commit")
        self.backfill.enqueue_if_missing(committed.location.key, committed.location.region, committed.digests)
        return result

