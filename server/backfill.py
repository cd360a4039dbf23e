"""DigestBackfill: the SHA-1 and MD5 that rclone compares, computed after a big API upload is acknowledged.

WebDAV PUTs and small uploads compute every digest while they stream in (blobstore.StreamDigests).
For a large file uploaded through the API or a session, SHA-1 and MD5 would cost about 2.3
CPU-seconds per GiB on the way in, for a checksum only rclone reads; so the upload is acknowledged
with SHA-256 and its CRC, and this worker reads the stored bytes once more, at low CPU priority, and
records the other two. Until then the file's PROPFIND simply has no `oc:checksums` (rclone then
compares size and modification time). While clients' transfers are moving bytes it reads slowly
(one block per TRICKLE_PAUSE), so it never competes with them for long. New uploads are queued in
memory; at start-up the rows still without an MD5 are worked through in batches, so a restart loses
nothing and a large backlog costs no memory.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Iterable, cast

from lockr_local.errors import LockrError
from lockr_local.server.activity import TRANSFERS
from lockr_local.server.blobstore import BlobLocation, BlobStore, Digests, storage_errors
from lockr_local.server.checks import RunningCheck, StoredCheck
from lockr_local.server.cluster import try_lock_job, unlock_job
from lockr_local.server.db import Database
from lockr_local.server.filebytes import FileBytes, StoredAt
from lockr_local.server.models import StoredFile

log = logging.getLogger("lockr.backfill")

READ_BLOCK = 1024 * 1024
# Between blocks the worker checks that the blob still has a name: a file deleted while it is being
# hashed stops costing CPU at once.
STILL_THERE_EVERY = 64
IDLE_WAIT = 600.0
SCAN_BATCH = 200
TRICKLE_PAUSE = 0.05


# Inline files (inline.py) get every digest as they are stored and have no blob to open: never read here.
_BLOB_FILE = StoredFile.inline == False  # noqa: E712 (SQL, not a Python comparison)


@dataclass(frozen=True)
class PendingDigests:
    """A stored file whose SHA-1/MD5 are still unknown: where its bytes are and what they must match."""

    file_id: str
    region: str
    sha256: str
    stored: StoredCheck


@dataclass(frozen=True)
class RcloneDigests:
    sha1: str
    md5: str


def files_missing_rclone_digests(after_seq: int, limit: int) -> list[tuple[int, PendingDigests]]:
    """The next `limit` stored files without an MD5 after row `after_seq`, oldest first, with their row
    numbers (the start-up scan; runs on the database thread)."""
    query = (StoredFile.select(StoredFile.seq, StoredFile.file_id, StoredFile.region, StoredFile.sha256,
                               StoredFile.crc32c, StoredFile.crc32)
             .where((StoredFile.seq > after_seq) & (StoredFile.md5 == "") & _BLOB_FILE).order_by(StoredFile.seq)
             .limit(limit)
             .tuples())
    rows = cast("Iterable[tuple[int, str, str, str, int | None, int | None]]", query)  # stubs: rows are models
    return [(seq, PendingDigests(file_id, region, sha256, StoredCheck(crc32c, crc32)))
            for seq, file_id, region, sha256, crc32c, crc32 in rows]


def still_missing(file_id: str) -> bool:
    """Whether the file still exists without an MD5 (a file deleted or filled meanwhile is not read)."""
    return StoredFile.select().where((StoredFile.file_id == file_id) & (StoredFile.md5 == "") & _BLOB_FILE).exists()


def record_rclone_digests(file_id: str, sha256: str, sha1: str, md5: str) -> None:
    """Stores the digests unless the file was deleted or its id now names other bytes."""
    (StoredFile.update(sha1=sha1, md5=md5)
     .where((StoredFile.file_id == file_id) & (StoredFile.sha256 == sha256) & (StoredFile.md5 == "")).execute())


def _lower_priority() -> None:
    """The backfill thread yields the CPU to uploads and downloads (Linux: per-thread nice)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


def hash_stored_blob(blobs: BlobStore, item: PendingDigests,
                     stop: threading.Event | None = None) -> RcloneDigests | None:
    """SHA-1 and MD5 of a stored blob; None when it vanished meanwhile, its bytes fail their check, or
    `stop` was set (the server is stopping)."""
    sha1, md5, check = hashlib.sha1(), hashlib.md5(), RunningCheck(item.sha256, item.stored)
    try:
        with FileBytes(blobs).open(StoredAt(BlobLocation(item.region, item.file_id))) as handle:
            blocks = 0
            with storage_errors("read a stored file"):
                while block := handle.read(READ_BLOCK):
                    if stop is not None and stop.is_set():
                        return None
                    if TRANSFERS.busy():
                        time.sleep(TRICKLE_PAUSE)
                    sha1.update(block)
                    md5.update(block)
                    check.update(block)
                    blocks += 1
                    if blocks % STILL_THERE_EVERY == 0 and os.fstat(handle.fileno()).st_nlink == 0:
                        return None
    except LockrError:
        return None
    if not check.ok():
        log.error("the stored bytes of file %s do not match their checksum; run `lockr-local fsck --verify`",
                  item.file_id)
        return None
    return RcloneDigests(sha1.hexdigest(), md5.hexdigest())


class DigestBackfill:
    """One low-priority worker thread, fed by `enqueue()` after uploads and by a scan when it starts.

    A plain thread rather than an IOLoop task: it blocks on files and waits for the database thread
    (`Database.run_sync`), and it must not outlive or depend on the loop that happened to start it.
    """

    def __init__(self, db: Database, blobs: BlobStore) -> None:
        self._db = db
        self._blobs = blobs
        self._queue: collections.deque[PendingDigests] = collections.deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.filled = 0

    def start(self) -> None:
        """Starts the worker once (the server at start-up, or the first enqueue); never after close()."""
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="lockr-backfill", daemon=True)
                self._thread.start()

    def enqueue_if_missing(self, file_id: str, region: str, digests: Digests) -> None:
        """After an upload was recorded: queues it when it was acknowledged without SHA-1/MD5."""
        if not digests.md5:
            self.enqueue(PendingDigests(file_id, region, digests.sha256, digests.check))

    def enqueue(self, item: PendingDigests) -> None:
        self._queue.append(item)
        self.start()
        self._wake.set()

    def close(self) -> None:
        """Stops the worker (a file being read stops at its next block); what is still queued is found
        again by the next start-up scan."""
        self._stop.set()
        self._wake.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout=10)

    def _run(self) -> None:
        """The start-up scan in batches, new uploads first between batches; then each queued file as it
        comes, until closed."""
        _lower_priority()
        try:
            # Nodes sharing a PostgreSQL database: one scans at a time, the others skip (cluster.py).
            if self._db.run_sync(try_lock_job, "backfill-scan"):
                try:
                    self._scan()
                finally:
                    self._db.run_sync(unlock_job, "backfill-scan")
            while not self._stop.is_set():
                self._wake.clear()
                self._fill_queued()
                self._wake.wait(IDLE_WAIT)
        except RuntimeError:  # the database thread shut down first: the server is stopping
            pass

    def _scan(self) -> None:
        after_seq = 0
        while not self._stop.is_set():
            self._fill_queued()
            batch = self._db.run_sync(files_missing_rclone_digests, after_seq, SCAN_BATCH)
            for after_seq, item in batch:
                self._fill(item, recheck=False)  # just read as missing, in this thread
            if len(batch) < SCAN_BATCH:
                break

    def _fill_queued(self) -> None:
        while self._queue and not self._stop.is_set():
            self._fill(self._queue.popleft())

    def _fill(self, item: PendingDigests, recheck: bool = True) -> None:
        """Hashes one file and records its digests; a queued file is first checked to still need them
        (the start-up scan may have reached it first, or it was deleted meanwhile)."""
        if self._stop.is_set() or (recheck and not self._db.run_sync(still_missing, item.file_id)):
            return
        digests = hash_stored_blob(self._blobs, item, self._stop)
        if digests is not None and not self._stop.is_set():
            self._db.run_sync(record_rclone_digests, item.file_id, item.sha256, digests.sha1, digests.md5)
            self.filled += 1
