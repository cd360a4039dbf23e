"""The bytes of resumable uploads: one writer per session, running sha256, completion.

Shared by the GCS-style `PUT uploadUrl` and the tus `PATCH`; no Tornado here. An offset is recorded
only after the bytes below it are durable (PartialBlob.sync), so the recorded offset never counts a byte a crash could
lose. The sha256 runs incrementally across chunks in memory; after a server restart the durable
prefix is re-hashed once, by the first request that appends to the session (the hash state itself
is not persisted).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Sequence

from lockr_local.errors import (
    TusChecksumMismatch, ChunkTooLarge, InvalidContentRange, LockrError, SessionBusy, SessionOffsetMismatch,
    StorageError,
)
from lockr_local.server.blobstore import BlobLocation, BlobStore, PartialBlob, rclone_digests_inline
from lockr_local.server.cluster import try_lock_session, unlock_session
from lockr_local.server.db import Database
from lockr_local.server.models import is_postgresql
from lockr_local.server.ingest import Committed, Ingest, Sink
from lockr_local.server.service import FileInfo, Principal, Service
from lockr_local.server.sessions import SessionInfo, SessionRequest, SessionStore
from lockr_local.server.streaming import UploadSink

log = logging.getLogger("lockr.sessions")

# How long a status query waits for a request that is still writing the session (typically one whose
# connection was just cut and is being recorded) before answering with the offset stored so far.
STATUS_WAIT = 3.0
# How long a chunk waits for the session's current writer to let go before 409 session_busy. A client's
# retry after a cut (Google's library retries at once) often arrives before the server has seen the cut
# and recorded what it left; a writer that is really still sending holds on for longer than this.
CLAIM_WAIT = 2.0
# How often a chunk looks again whether a writer on another node has let go (cluster.py).
CLAIM_POLL = 0.05
# A chunk's body is handed to the I/O thread in writes of this size (see ChunkWrite).
CHUNK_WRITE_BUFFER = 256 * 1024


def stored_range_headers(offset: int) -> dict[str, str]:
    """What both protocols say about the stored prefix: GCS `Range` (absent when empty), tus `Upload-Offset`."""
    headers = {"Upload-Offset": str(offset)}
    if offset > 0:
        headers["Range"] = f"bytes=0-{offset - 1}"
    return headers


@dataclass
class LiveSession:
    """In-memory state of a session: whether a request is writing it, and its running sha256."""

    busy: bool = False
    hasher: Any = None
    hashed_upto: int = -1
    waiters: list[asyncio.Future[None]] = field(default_factory=list)

    def hasher_at(self, offset: int) -> Any | None:
        """A copy of the running hash if it covers exactly `offset` bytes (else the prefix is re-hashed)."""
        if self.hasher is not None and self.hashed_upto == offset:
            return self.hasher.copy()
        return None

    def adopt(self, hasher: Any, offset: int) -> None:
        self.hasher, self.hashed_upto = hasher, offset


class LiveSessions:
    """One writer per session at a time on this node; nodes sharing a PostgreSQL database also take the
    session's advisory lock (ResumableUploads.claim_when_idle)."""

    def __init__(self) -> None:
        self._sessions: dict[str, LiveSession] = {}
        self._lock = threading.Lock()
        self.releases = 0  # how many claims ended (tests wait on it to know a cut request was recorded)

    def claim(self, session_id: str) -> LiveSession:
        with self._lock:
            live = self._sessions.setdefault(session_id, LiveSession())
            if live.busy:
                raise SessionBusy()
            live.busy = True
            return live

    def release(self, session_id: str) -> None:
        waiters: list[asyncio.Future[None]] = []
        with self._lock:
            self.releases += 1
            live = self._sessions.get(session_id)
            if live is not None:
                live.busy = False
                waiters, live.waiters = live.waiters, []
        for waiter in waiters:
            waiter.get_loop().call_soon_threadsafe(_wake, waiter)

    def idle_future(self, session_id: str) -> asyncio.Future[None] | None:
        """A future that resolves when the session's current writer lets go; None when nobody writes it."""
        with self._lock:
            live = self._sessions.get(session_id)
            if live is None or not live.busy:
                return None
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            live.waiters.append(waiter)
            return waiter

    def state(self, session_id: str) -> LiveSession:
        with self._lock:
            return self._sessions.setdefault(session_id, LiveSession())

    def forget(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def busy(self) -> set[str]:
        with self._lock:
            return {session_id for session_id, live in self._sessions.items() if live.busy}


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


@dataclass
class Checksum:
    """tus checksum extension: the algorithm's running hash of the request body and the expected digest."""

    algorithm: str
    hasher: Any
    expected: bytes


class ChunkWrite:
    """One request's body appended to a session: overlapping bytes skipped, the rest written pipelined;
    `finish` persists (or completes), `interrupted` keeps the durable prefix of a cut body."""

    def __init__(self, uploads: "ResumableUploads", session: SessionInfo, partial: PartialBlob, first: int,
                 length: int | None, checksum: Checksum | None) -> None:
        self._uploads = uploads
        self.session = session
        self._partial = partial
        self._skip = session.offset - first
        self._length = length
        self._checksum = checksum
        # One queued write of a quarter MiB, not two of 1 MiB: whatever is still queued when the chunk's last
        # byte arrives delays its 308, and that wait recurs with every chunk (8 MiB chunks, measured: two
        # 1 MiB writes 16 ms, one 11 ms; one of 1 MiB 2.4-2.6 ms of waiting for the tail, 256 KiB 1.1-1.5 ms).
        self._sink = UploadSink(partial, uploads.io, None, _unused_too_large, queued_writes=1,
                                write_buffer=CHUNK_WRITE_BUFFER, budget=uploads.ingest.bodies)
        self._file_closed = False
        self._lock = asyncio.Lock()
        self._done = False
        self.received = 0
        self.appended = 0

    async def feed(self, chunk: bytes) -> None:
        async with self._lock:
            if self._done:
                return
            self.received += len(chunk)
            if self._length is not None and self.received > self._length:
                raise InvalidContentRange("The body is longer than its Content-Range or Content-Length says.")
            if self._checksum is not None:
                self._checksum.hasher.update(chunk)
            if self._skip > 0:
                dropped = min(self._skip, len(chunk))
                chunk, self._skip = chunk[dropped:], self._skip - dropped
            if not chunk:
                return
            if self.appended + len(chunk) > self.session.remaining:
                raise ChunkTooLarge(f"The chunk reaches past the {self.session.size} bytes declared for this "
                                    f"upload; nothing from it was stored.", size=self.session.size)
            self.appended += len(chunk)
            await self._sink.feed(chunk)

    async def finish(self) -> FileInfo | int:
        """The body arrived whole: makes it durable, then records the new offset (returned) or completes."""
        async with self._lock:
            if self._done:
                raise StorageError("This request's upload was already closed.")
            self._done = True
            try:
                if self._checksum is not None:
                    digest = self._checksum.hasher.digest()
                    if digest != self._checksum.expected:
                        raise TusChecksumMismatch(algorithm=self._checksum.algorithm)
                await self._sink.drain()
                if self._partial.offset == self.session.size:
                    return await self._complete()
                return await self._persist()
            finally:
                await self._close()

    async def interrupted(self) -> None:
        """The client went away mid-body: record what was durably written, unless a checksum had to vouch."""
        async with self._lock:
            if self._done:
                return
            self._done = True
            try:
                if self._checksum is None and self.appended:
                    await self._sink.drain()
                    await self._persist()
            except LockrError as exc:
                log.warning("could not keep the cut chunk of session %s: %s", self.session.session_id[:8],
                            exc.message)
            finally:
                await self._close()

    async def discard(self) -> None:
        """The request failed: nothing of its body counts (the file is cut back on the next open)."""
        async with self._lock:
            if not self._done:
                self._done = True
                await self._close()

    async def _persist(self) -> int:
        uploads, partial = self._uploads, self._partial
        await uploads.run_io(self._sync_and_close)
        await uploads.db.run(uploads.store.record_offset, self.session.session_id, partial.offset)
        uploads.live.state(self.session.session_id).adopt(partial.hasher, partial.offset)
        return partial.offset

    def _sync_and_close(self) -> None:
        """On an I/O thread: the chunk's bytes made durable, and the file closed in the same trip (nothing
        more is written to it by this request; the file itself stays)."""
        self._partial.sync()
        self._partial.abort()
        self._file_closed = True

    async def _complete(self) -> FileInfo:
        """The last byte is in: the session's bytes become the file, through the ingest pipeline."""
        uploads, session_id = self._uploads, self.session.session_id
        info = await uploads.ingest.finish(CompletedSession(uploads, self.session, self._partial),
                                           lambda committed: uploads.store.complete(session_id, committed.digests))
        uploads.live.forget(session_id)
        return info

    async def _close(self) -> None:
        try:
            # A write may still be in flight on an I/O thread: let it land before the descriptor closes.
            try:
                await self._sink.drain()
            except LockrError:
                pass
            if not self._file_closed:
                await self._uploads.run_io(self._partial.abort)
        finally:
            await self._uploads.let_go(self.session.session_id)


class CompletedSession(Sink):
    """A session whose every byte is durable in its partial blob: the ingest sink of its completion."""

    crash_point = "after_session_blob_commit"

    def __init__(self, uploads: "ResumableUploads", session: SessionInfo, partial: PartialBlob) -> None:
        self.location = BlobLocation(session.region, session.file_id)
        self._uploads = uploads
        self._session = session
        self._partial = partial

    @property
    def received(self) -> int:
        return self._session.size

    async def commit(self) -> Committed:
        digests = self._partial.digests()
        await self._uploads.run_io(self._partial.commit)
        return Committed(self.location, self._session.size, digests)

    async def undo(self) -> None:
        """Nothing recorded the file: the bytes go back to partial/ and count as stored, so a status query
        (or the same chunk again) completes the upload once the cause is gone."""
        uploads, partial, session = self._uploads, self._partial, self._session
        await uploads.run_io(partial.restore)
        await uploads.db.run(uploads.store.record_offset, session.session_id, session.size)
        uploads.live.state(session.session_id).adopt(partial.hasher, session.size)


def _unused_too_large(_received: int) -> Any:
    raise AssertionError("ChunkWrite enforces its own limits")


class ResumableUploads:
    """The server's entry point to sessions: create, look up, append, terminate, reap."""

    def __init__(self, db: Database, service: Service, blobs: BlobStore, io: Executor, ingest: Ingest) -> None:
        self.db = db
        self.ingest = ingest
        self.store = SessionStore(service)
        self.blobs = blobs
        self.io = io
        self.live = LiveSessions()
        # Other nodes may write the same sessions (one PostgreSQL database): claims also lock across nodes.
        self.shared = is_postgresql(db.database_url)

    async def run_io(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.io, fn, *args)

    async def create(self, principal: Principal, request: SessionRequest) -> SessionInfo:
        return await self.db.run(self.store.create, principal, request)

    async def session(self, session_id: str) -> SessionInfo:
        return await self.db.run(self.store.get, session_id)

    async def settled_session(self, session_id: str, wait: float = STATUS_WAIT) -> SessionInfo:
        """The session once no request is writing it (waiting at most `wait` seconds): a status query
        right after a cut then counts the bytes the cut request left, instead of an older offset."""
        waiter = self.live.idle_future(session_id)
        if waiter is not None:
            try:
                await asyncio.wait_for(waiter, wait)
            except asyncio.TimeoutError:
                pass
        return await self.session(session_id)

    async def settle(self, timeout: float) -> None:
        """Waits (at most `timeout` seconds) until no request is writing any session."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            waiters = [w for w in (self.live.idle_future(sid) for sid in self.live.busy()) if w is not None]
            remaining = deadline - asyncio.get_running_loop().time()
            if not waiters or remaining <= 0:
                return
            await asyncio.wait(waiters, timeout=remaining)

    async def claim_when_idle(self, session_id: str, wait: float) -> LiveSession:
        """Claims the session, waiting at most `wait` seconds for its current writer to let go: first on
        this node (LiveSessions), then among the nodes sharing a PostgreSQL database (the session's
        advisory lock, cluster.py), polled since another node's release sends no signal here."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            live = await self._claim_here(session_id, deadline)
            if not self.shared or await self.db.run(try_lock_session, session_id):
                return live
            self.live.release(session_id)
            if loop.time() >= deadline:
                raise SessionBusy()
            await asyncio.sleep(min(CLAIM_POLL, max(0.0, deadline - loop.time())))

    async def let_go(self, session_id: str, forget: bool = False) -> None:
        """Ends a claim: on the other nodes (the advisory lock), then on this one."""
        try:
            if self.shared:
                await self.db.run(unlock_session, session_id)
        except RuntimeError:  # the database thread has shut down: its connection, and the lock, are gone
            pass
        if forget:
            self.live.forget(session_id)
        else:
            self.live.release(session_id)

    async def _claim_here(self, session_id: str, deadline: float) -> LiveSession:
        while True:
            try:
                return self.live.claim(session_id)
            except SessionBusy:
                waiter = self.live.idle_future(session_id)
                remaining = deadline - asyncio.get_running_loop().time()
                if waiter is None:
                    continue  # let go between the two calls: claim again
                if remaining <= 0:
                    raise
                try:
                    await asyncio.wait_for(waiter, remaining)
                except asyncio.TimeoutError:
                    raise SessionBusy() from None

    async def completed_file(self, session: SessionInfo) -> FileInfo:
        return await self.db.run(self.store.completed_file, session)

    async def begin(self, session_id: str, first: int, length: int | None, *, exact: bool = False,
                    checksum: Checksum | None = None) -> ChunkWrite:
        """Claims the session for one request (409 session_busy if another holds it) and opens its file.

        The chunk must start at or before the stored offset (exactly at it when `exact`, as tus
        requires); otherwise 409 with the stored range, and nothing changes.
        """
        live = await self.claim_when_idle(session_id, CLAIM_WAIT)
        try:
            # Read again under the claim: another writer may have moved the offset since the caller looked.
            session = await self.session(session_id)
            if session.completed:
                raise SessionOffsetMismatch("This upload is already complete.", headers=stored_range_headers(
                    session.size), offset=session.size)
            if first > session.offset or (exact and first != session.offset):
                raise SessionOffsetMismatch(
                    f"The chunk starts at byte {first} but {session.offset} bytes are stored; "
                    f"resume from byte {session.offset}.", headers=stored_range_headers(session.offset),
                    offset=session.offset)
            running = live.hasher_at(session.offset)
            partial = await self.run_io(self.blobs.open_partial, BlobLocation(session.region, session.file_id),
                                        session.session_id, session.offset, running,
                                        rclone_digests_inline(session.size))
            if running is None:
                # Keep the re-hashed prefix even if this request brings no byte (cut before its body).
                live.adopt(partial.hasher.copy(), session.offset)
        except BaseException:
            await self.let_go(session_id)
            raise
        return ChunkWrite(self, session, partial, first, length, checksum)

    async def terminate(self, session_id: str) -> None:
        """Cancels an unfinished session: row and reservation first, then the partial bytes."""
        self.live.claim(session_id)
        if self.shared and not await self.db.run(try_lock_session, session_id):
            self.live.release(session_id)
            raise SessionBusy()  # a request on another node is writing it
        try:
            session = await self.db.run(self.store.terminate, session_id)
            if not session.completed:
                await self.run_io(self.blobs.delete_partial, session.region, session.session_id)
        finally:
            await self.let_go(session_id, forget=True)

    async def reap(self) -> int:
        """Deletes expired sessions, their partial bytes and reservations; returns how many went."""
        reaped = await self.db.run(self.store.reap_expired, self.live.busy())
        for session in reaped:
            self.live.forget(session.session_id)
            try:
                await self.run_io(self.blobs.delete_partial, session.region, session.session_id)
            except LockrError as exc:
                log.warning("could not delete the partial bytes of session %s: %s", session.session_id[:8],
                            exc.message)
        if reaped:
            log.info("reaped %d expired upload sessions", len(reaped))
        try:
            abandoned = await self.run_io(self.blobs.reap_abandoned)
        except LockrError as exc:
            log.warning("could not reap abandoned uploads: %s", exc.message)
        else:
            if abandoned:
                log.info("aborted %d uploads abandoned by a crash", abandoned)
        return len(reaped)

    def reap_at_startup(self) -> int:
        """Before serving: reaps expired sessions and deletes partial files no session owns any more
        (a crash between deleting a row and its bytes). The partial files are listed before the sessions
        are read: a session's row is committed before its first bytes are stored, so a session another
        node opens meanwhile is either not listed yet or already read."""
        reaped = self.db.run_sync(self.store.reap_expired, set())
        for session in reaped:
            self.blobs.delete_partial(session.region, session.session_id)
        listed = {region: list(self.blobs.partial_sessions(region)) for region in self.blobs.regions()}
        owned = self.db.run_sync(self.store.unfinished_session_ids)
        orphans = 0
        for region, session_ids in listed.items():
            for session_id in session_ids:
                if session_id not in owned:
                    self.blobs.delete_partial(region, session_id)
                    orphans += 1
        if reaped or orphans:
            log.info("reaped %d expired upload sessions and %d orphaned partial files", len(reaped), orphans)
        return len(reaped) + orphans


async def reap_sessions_forever(sweeps: Sequence[Callable[[], Awaitable[int]]], interval: float) -> None:
    """The periodic reaper: every `interval` seconds until cancelled, each sweep in turn (ResumableUploads.reap
    of expired sessions, then of whatever else expires: guest uploads past guest_retention)."""
    while True:
        await asyncio.sleep(max(0.05, interval))
        for sweep in sweeps:
            try:
                await sweep()
            except LockrError as exc:
                log.error("the reaper's sweep failed: %s", exc.message)
