"""BlobStore: the interface to where object bytes live, whatever the backend; and the digests they carry.

The rest of the server speaks only to `BlobStore`, `BlobWriter` and `PartialBlob`; `make_blob_store` is
the one place that picks a backend. The filesystem backend is server/filestore.py (temp file, hash,
fsync, os.replace, fsync the folder). An object-store backend (S3 and compatible) implements the same
abstract methods; each says below what such a store would do.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import struct
import threading
import time
from abc import ABC, abstractmethod
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterable, Iterator

from lockr_local.errors import InsufficientStorage, StorageError, UnknownRegion
from lockr_local.server.checks import RunningCrc, StoredCheck
from lockr_local.server.hashstate import SavableHash

if TYPE_CHECKING:
    from lockr_local.config import Settings

_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}

log = logging.getLogger("lockr.server")

# Large buffers are hashed on side threads (HelperThreads.hashing), one stage behind the write (hashlib
# releases the GIL): SHA-256 (and MD5 when it is computed) of buffer N overlaps buffer N's CRC-32C and
# disk write on the writer's I/O thread and the receiving of buffer N+1.
_SIDE_HASH_MIN = 256 * 1024

# SHA-1 and MD5 are only what rclone compares over WebDAV, and together they cost about 2.3 CPU-seconds
# per GiB here, more than everything else an upload does. WebDAV PUTs (rclone's path) and files up to
# this size compute them while they stream in; larger files uploaded through the API get them from the
# background DigestBackfill after they are acknowledged (server/backfill.py).
INLINE_RCLONE_DIGESTS_UPTO = 16 * 1024 * 1024


def rclone_digests_inline(size: int | None) -> bool:
    """Whether an API upload of `size` bytes (None: not declared) computes SHA-1/MD5 as it streams."""
    return size is not None and size <= INLINE_RCLONE_DIGESTS_UPTO


@contextmanager
def storage_errors(action: str) -> Iterator[None]:
    """Translates OSError into domain errors at the storage boundary (disk full -> 507)."""
    try:
        yield
    except OSError as exc:
        if exc.errno in _NO_SPACE:
            raise InsufficientStorage() from exc
        raise StorageError(f"The server could not {action}; nothing was changed.") from exc


@dataclass(frozen=True)
class HelperThreads:
    """The thread pools a store's writers hand short jobs to, owned by the server (app.Server makes them
    and shuts them down): `hashing` for side hashing (StreamDigests), `flushing` for background flushes
    (writeback.BackgroundFlush), `io` for free-space readings (FreeSpace), `uploads` for an object
    store's part uploads, one behind the part that fills (s3store.py). Without them (a store opened
    outside a server: the CLI, fsck, unit tests) that work runs on the calling thread."""

    hashing: Executor | None = None
    flushing: Executor | None = None
    io: Executor | None = None
    uploads: Executor | None = None

    def shutdown(self) -> None:
        """Waits for the jobs in flight and ends the threads: the I/O threads first, since their writers
        hand work to the others."""
        for pool in (self.io, self.uploads, self.hashing, self.flushing):
            if pool is not None:
                pool.shutdown(wait=True)


@dataclass(frozen=True)
class Digests:
    """The hex digests of a blob, computed while it streamed in; sha1/md5 are "" when left to the backfill."""

    sha256: str
    sha1: str
    md5: str
    check: StoredCheck = StoredCheck()


_HASHLIB = {"sha256": hashlib.sha256, "sha1": hashlib.sha1, "md5": hashlib.md5}


class StreamDigests:
    """SHA-256 (the file's identity), the CRC that downloads check (checks.py) and, when
    `rclone_digests`, SHA-1 and MD5 (what rclone's ownCloud mode compares), updated as bytes stream in
    so that nothing is ever re-read.

    For large immutable buffers SHA-256 (and MD5) run one stage behind on the `side` threads (none: on the
    caller's), so the writer's own thread is left with the disk write and the CRC; the next update (or
    the result) waits for them.
    """

    def __init__(self, rclone_digests: bool = True, side: Executor | None = None, *, savable: bool = False) -> None:
        self._side = side
        # `savable`: OpenSSL contexts whose state `save` can write out and `load` read back (hashstate.py),
        # for session bytes that live where they cannot be re-read (an object store's unfinished upload).
        new: Any = SavableHash if savable else (lambda name: _HASHLIB[name]())
        self._sha256 = new("sha256")
        self._sha1 = new("sha1") if rclone_digests else None
        self._md5 = new("md5") if rclone_digests else None
        self._crc = RunningCrc()
        self._pending: list[Future[None]] = []

    def save(self) -> bytes:
        """The running state (a savable instance's only): CRC kind and value, then each context's bytes."""
        self.settle()
        hashers = [h for h in (self._sha256, self._sha1, self._md5) if h is not None]
        if not all(isinstance(h, SavableHash) for h in hashers):
            raise TypeError("only StreamDigests(savable=True) can save its state")
        crc = self._crc.stored()
        header = struct.pack(">BBI", 1 if crc.crc32c is not None else 0, len(hashers),
                             crc.crc32c if crc.crc32c is not None else crc.crc32 or 0)
        return header + b"".join(h.state() for h in hashers)

    @classmethod
    def load(cls, saved: bytes) -> "StreamDigests":
        """A savable StreamDigests at the state `save` wrote."""
        use_crc32c, count, crc = struct.unpack(">BBI", saved[:6])
        digests = cls(rclone_digests=count == 3, savable=True)
        digests._crc = RunningCrc(bool(use_crc32c), crc)
        position = 6
        for attribute, name, size in (("_sha256", "sha256", 112), ("_sha1", "sha1", 96), ("_md5", "md5", 92))[:count]:
            setattr(digests, attribute, SavableHash.from_state(name, saved[position:position + size]))
            position += size
        if position != len(saved):
            raise ValueError("a saved digest state has the wrong length")
        return digests

    @property
    def rclone_digests(self) -> bool:
        return self._md5 is not None

    def update(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        self.settle()
        side: list[Any] = [self._sha256] if self._md5 is None else [self._sha256, self._md5]
        inline: list[Any] = [self._crc] if self._sha1 is None else [self._crc, self._sha1]
        pool = self._side
        if pool is None or len(view) < _SIDE_HASH_MIN:
            inline, side = inline + side, []
        self._pending = [pool.submit(hasher.update, view) for hasher in side] if pool is not None else []
        try:
            for hasher in inline:
                hasher.update(view)
        finally:
            # The side threads hold on to the buffer: only immutable bytes may outlive this call.
            if not isinstance(view.obj, bytes):
                self.settle()

    def settle(self) -> None:
        """Waits for the side threads' digests of the last buffer. Writers call it on their I/O thread
        before answering, so that digests() and copy() on the IOLoop thread never wait."""
        if self._pending:
            pending, self._pending = self._pending, []
            for future in pending:
                future.result()

    def hexdigest(self) -> str:
        self.settle()
        return self._sha256.hexdigest()

    def digests(self) -> Digests:
        self.settle()
        return Digests(self._sha256.hexdigest(), self._sha1.hexdigest() if self._sha1 else "",
                       self._md5.hexdigest() if self._md5 else "", self._crc.stored())

    def copy(self) -> "StreamDigests":
        self.settle()
        twin = StreamDigests(self.rclone_digests, self._side)  # the copies below keep the hashers' kind
        twin._sha256 = self._sha256.copy()
        if self._sha1 is not None and self._md5 is not None:
            twin._sha1, twin._md5 = self._sha1.copy(), self._md5.copy()
        twin._crc = self._crc.copy()
        return twin


class BlobWriter(ABC):
    """A blob being written: bytes go in, are hashed on the way, and become visible only on commit."""

    bytes_written: int

    @abstractmethod
    def write(self, data: bytes | memoryview) -> None: ...

    @abstractmethod
    def sha256(self) -> str: ...

    @abstractmethod
    def digests(self) -> Digests: ...

    @abstractmethod
    def commit(self) -> None:
        """Makes the bytes durable and visible under the final key, atomically."""

    @abstractmethod
    def abort(self) -> None:
        """Discards everything written; never raises."""


class PartialBlob(BlobWriter):
    """The stored bytes of one resumable upload session, opened for appending at its recorded offset.

    The session's offset is recorded (and acknowledged with a 308 or 204) only after `sync` returns, so
    the recorded offset never counts a byte a crash could lose. The filesystem backend appends to a
    file in the region's `partial/` folder through a descriptor. An object-store backend keeps the
    session as a multipart upload: `sync` uploads the bytes written since the last sync as parts
    (holding back a tail shorter than the store's minimum part size in a small staging object, and
    counting it as durable only once that is stored), `commit` completes the multipart upload.
    """

    offset: int
    hasher: StreamDigests

    @abstractmethod
    def sync(self) -> None:
        """Makes every byte written so far durable; the offset may be recorded after this returns."""

    @abstractmethod
    def commit(self) -> None:
        """Makes the whole upload the blob at the session's final location, durably and atomically."""

    @abstractmethod
    def restore(self) -> None:
        """Undoes `commit` when the file could not be recorded: the bytes are the session's stored bytes
        again, so the next `open_partial` (or the same chunk again) can complete the upload."""

    @abstractmethod
    def abort(self) -> None:
        """Lets go of the session without discarding anything durable (only the recorded offset counts;
        the next `open_partial` cuts off what lies past it); never raises."""


class FreeSpace:
    """The free bytes of each region as last measured, for check_space on the database thread, which every
    request waits for and which must make no filesystem call. A reading older than MAX_AGE seconds is
    answered still, and a new one is taken on an I/O thread (without one, on the calling thread). The
    first readings are taken when the store opens. A reading late by a moment only moves the refusal to
    the write itself: a disk that fills up mid-upload fails it with 507 too (ENOSPC, storage_errors)."""

    MAX_AGE = 0.5

    def __init__(self, measure: Callable[[str], int], regions: Iterable[str]) -> None:
        self._measure = measure
        self._lock = threading.Lock()
        self._readings: dict[str, tuple[int, float]] = {}  # region -> (free bytes, time.monotonic())
        self._refreshing: set[str] = set()
        for region in regions:
            self._take(region)

    def free(self, region: str, io: Executor | None) -> int:
        """The last reading for `region` (a configured one), refreshed in the background once stale."""
        free, taken = self._readings[region]
        if time.monotonic() - taken > self.MAX_AGE:
            if io is None:
                return self._take(region)
            with self._lock:
                if region in self._refreshing:
                    return free
                self._refreshing.add(region)
            try:
                io.submit(self._refresh, region)
            except RuntimeError:  # the server is shutting its threads down
                with self._lock:
                    self._refreshing.discard(region)
        return free

    def _take(self, region: str) -> int:
        with storage_errors("check the free disk space"):
            free = self._measure(region)
        with self._lock:
            self._readings[region] = (free, time.monotonic())
        return free

    def _refresh(self, region: str) -> None:
        try:
            self._take(region)
        except StorageError as exc:  # the last reading stands; the next check tries again
            log.warning("could not read the free space of region %s: %s", region, exc.__cause__ or exc)
        finally:
            with self._lock:
                self._refreshing.discard(region)


@dataclass(frozen=True)
class BlobLocation:
    region: str
    key: str


class BlobStore(ABC):
    """Where blobs live: the interface every backend implements (the filesystem store now, an
    S3-compatible object store later). Callers never assume files: everything the server does with
    bytes goes through these methods, and translated errors (storage_errors) come out of them."""

    # The server's helper threads (use_threads); none until a server hands them over.
    threads = HelperThreads()

    def free_bytes(self, region: str) -> int | None:
        """Bytes free for `region` now, measured (blocking: call it off the IOLoop), for /healthz and
        /metrics; None where the store cannot tell (an object store has no free space to report)."""
        return None

    def use_threads(self, threads: HelperThreads) -> None:
        """Hands the store the helper threads of the server that owns it, before any writer is made. The
        server shuts them down after the store's last use."""
        self.threads = threads

    @abstractmethod
    def regions(self) -> list[str]:
        """The configured region names (an object store: one bucket, or prefix, per region)."""

    @abstractmethod
    def check_region(self, region: str) -> None:
        """Raises UnknownRegion (listing the valid ones) for a region that is not configured."""

    @abstractmethod
    def check_space(self, region: str, size: int) -> None:
        """Refuses up front (InsufficientStorage, 507) an upload of `size` bytes that cannot fit. Called on
        the database thread: it answers from a recent reading (FreeSpace), never from a filesystem call.
        A store that cannot tell its free space (an object store) returns: unknown counts as enough."""

    @abstractmethod
    def new_writer(self, location: BlobLocation, rclone_digests: bool = True) -> BlobWriter:
        """A writer for a new blob; SHA-1/MD5 are left out (for the backfill) unless `rclone_digests`.
        Nothing is visible under `location` before commit (an object store: a multipart upload, or a
        staging key, completed on commit)."""

    @abstractmethod
    def open(self, location: BlobLocation) -> BinaryIO:
        """A readable, seekable handle on a committed blob (NotFound when it is gone). A handle with a
        real `fileno()` lets downloads use sendfile; an object store returns a file-like object over
        ranged GETs without one, and downloads then stream it in chunks (handlers/downloads.py)."""

    @abstractmethod
    def size(self, location: BlobLocation) -> int | None:
        """The committed blob's size in bytes; None when it does not exist (an object store: HEAD)."""

    @abstractmethod
    def stored_at(self, location: BlobLocation) -> float | None:
        """When the committed blob was stored (seconds since the epoch); None when it does not exist. The
        filesystem: its modification time (the rename keeps the writer's last write); an object store: its
        Last-Modified, which for a multipart upload may be when the upload began (AWS S3 says so)."""

    @abstractmethod
    def delete(self, location: BlobLocation) -> None:
        """Removes a committed blob; a blob that is already gone is not an error."""

    @abstractmethod
    def clone(self, source: BlobLocation, target: BlobLocation) -> None:
        """A durable copy of a committed blob under a new key, without the bytes passing through the
        server where the store allows it (the filesystem: a hard link; an object store: a server-side
        copy). NotFound when the source is gone."""

    @abstractmethod
    def iter_objects(self, region: str) -> Iterator[str]:
        """Every committed key in a region (fsck and the start-up orphan reaper; an object store: a
        paginated listing of the region's prefix)."""

    @abstractmethod
    def temp_leftovers(self, region: str) -> int:
        """How many writes a crash cut off in a region (the filesystem: files in `tmp/`; an object store:
        multipart uploads of new blobs that were never completed)."""

    @abstractmethod
    def clear_temp(self) -> int:
        """Removes what `temp_leftovers` counts, in every region; returns how many were removed. Called
        before serving, when no write is in flight."""

    @abstractmethod
    def open_partial(self, location: BlobLocation, session_id: str, offset: int, hasher: StreamDigests | None,
                     rclone_digests: bool) -> PartialBlob:
        """Opens (creating) session `session_id`'s stored bytes for appending at `offset`, the recorded
        offset: bytes stored past it were never acknowledged and are dropped. `location` is where the
        finished blob will go. Without a running `hasher` the durable prefix is re-hashed, once (with
        SHA-1/MD5 when `rclone_digests`). StorageError when fewer than `offset` bytes are stored."""

    @abstractmethod
    def partial_sessions(self, region: str) -> Iterator[str]:
        """The ids of the sessions that have stored bytes in a region (an object store: its unfinished
        multipart uploads), so that those no session row owns any more can be deleted."""

    @abstractmethod
    def delete_partial(self, region: str, session_id: str) -> None:
        """Deletes a session's stored bytes (an object store: aborts its multipart upload); already
        gone is not an error."""

    @abstractmethod
    def download_url(self, location: BlobLocation, disposition: str, content_type: str) -> str | None:
        """A short-lived URL at which a client authorised for the blob fetches it directly, served with
        `disposition` and `content_type` (an object store with presigned downloads on: a presigned GET);
        None when the server must stream the bytes itself (the filesystem, always)."""

    @abstractmethod
    def reap_abandoned(self) -> int:
        """While serving: removes writes abandoned long ago (an object store: multipart uploads no session
        owns, older than the session lifetime, which a node that died mid-upload left behind); returns
        how many. The filesystem has none: one process owns its folders and clears `tmp/` at start."""


class RegionStores(BlobStore):
    """Regions kept by different backends, mixed freely (some folders, some buckets): each call goes to
    the store that keeps its region."""

    def __init__(self, stores: dict[str, BlobStore]) -> None:
        self._stores = stores
        self._backends = list({id(store): store for store in stores.values()}.values())

    def use_threads(self, threads: HelperThreads) -> None:
        self.threads = threads
        for store in self._stores.values():
            store.use_threads(threads)

    def free_bytes(self, region: str) -> int | None:
        return self._store(region).free_bytes(region)

    def _store(self, region: str) -> BlobStore:
        self.check_region(region)
        return self._stores[region]

    def regions(self) -> list[str]:
        return list(self._stores)

    def check_region(self, region: str) -> None:
        if region not in self._stores:
            valid = sorted(self._stores)
            raise UnknownRegion(f"Unknown region {region!r}; valid regions: {', '.join(valid)}.", validRegions=valid)

    def check_space(self, region: str, size: int) -> None:
        self._store(region).check_space(region, size)

    def new_writer(self, location: BlobLocation, rclone_digests: bool = True) -> BlobWriter:
        return self._store(location.region).new_writer(location, rclone_digests)

    def open(self, location: BlobLocation) -> BinaryIO:
        return self._store(location.region).open(location)

    def size(self, location: BlobLocation) -> int | None:
        return self._store(location.region).size(location)

    def stored_at(self, location: BlobLocation) -> float | None:
        return self._store(location.region).stored_at(location)

    def delete(self, location: BlobLocation) -> None:
        self._store(location.region).delete(location)

    def clone(self, source: BlobLocation, target: BlobLocation) -> None:
        self._store(source.region).clone(source, target)

    def iter_objects(self, region: str) -> Iterator[str]:
        return self._store(region).iter_objects(region)

    def temp_leftovers(self, region: str) -> int:
        return self._store(region).temp_leftovers(region)

    def clear_temp(self) -> int:
        return sum(store.clear_temp() for store in self._backends)

    def open_partial(self, location: BlobLocation, session_id: str, offset: int, hasher: StreamDigests | None,
                     rclone_digests: bool) -> PartialBlob:
        return self._store(location.region).open_partial(location, session_id, offset, hasher, rclone_digests)

    def partial_sessions(self, region: str) -> Iterator[str]:
        return self._store(region).partial_sessions(region)

    def delete_partial(self, region: str, session_id: str) -> None:
        self._store(region).delete_partial(region, session_id)

    def download_url(self, location: BlobLocation, disposition: str, content_type: str) -> str | None:
        return self._store(location.region).download_url(location, disposition, content_type)

    def reap_abandoned(self) -> int:
        return sum(store.reap_abandoned() for store in self._backends)


def make_blob_store(settings: Settings) -> BlobStore:
    """The blob store the settings describe: the one place that constructs a backend. Folder regions are
    the filesystem store, bucket regions (s3://) the object store (s3store.py); both kinds together are
    a RegionStores. Backend modules are imported here, so boto3 loads only when a bucket is configured."""
    from lockr_local.server.filestore import FileBlobStore

    folders, buckets = settings.region_paths, settings.bucket_regions
    if not buckets:
        return FileBlobStore(folders)
    try:
        from lockr_local.server.s3store import S3BlobStore
    except ImportError as exc:
        from lockr_local.config import SettingsError

        raise SettingsError(f"regions {', '.join(buckets)} are buckets, which need boto3: install "
                            f"lockr-local[s3] ({exc})") from exc
    objects = S3BlobStore(buckets, presigned_downloads=settings.presigned_downloads,
                          stale_after=settings.session_expiry)
    if not folders:
        return objects
    files = FileBlobStore(folders)
    return RegionStores({name: files if name in folders else objects for name, _where in settings.regions})
