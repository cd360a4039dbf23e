"""BlobStore: where object bytes live. The filesystem store writes temp, hashes, fsyncs and replaces."""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import shutil
from abc import ABC, abstractmethod
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from lockr_local.errors import InsufficientStorage, NotFound, StorageError, UnknownRegion
from lockr_local.server.checks import RunningCrc, StoredCheck

_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}

# Large buffers are hashed on side threads, one stage behind the write (hashlib releases the GIL):
# SHA-256 (and MD5 when it is computed) of buffer N overlaps buffer N's CRC-32C and disk write on the
# writer's I/O thread and the receiving of buffer N+1.
_SIDE_HASHING = ThreadPoolExecutor(max_workers=2, thread_name_prefix="lockr-hash")
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
class Digests:
    """The hex digests of a blob, computed while it streamed in; sha1/md5 are "" when left to the backfill."""

    sha256: str
    sha1: str
    md5: str
    check: StoredCheck = StoredCheck()


class StreamDigests:
    """SHA-256 (the file's identity), the CRC that downloads check (checks.py) and, when
    `rclone_digests`, SHA-1 and MD5 (what rclone's ownCloud mode compares), updated as bytes stream in
    so that nothing is ever re-read.

    For large immutable buffers SHA-256 (and MD5) run one stage behind on side threads, so the writer's
    own thread is left with the disk write and the CRC; the next update (or the result) waits for them.
    """

    def __init__(self, rclone_digests: bool = True) -> None:
        self._sha256 = hashlib.sha256()
        self._sha1 = hashlib.sha1() if rclone_digests else None
        self._md5 = hashlib.md5() if rclone_digests else None
        self._crc = RunningCrc()
        self._pending: list[Future[None]] = []

    @property
    def rclone_digests(self) -> bool:
        return self._md5 is not None

    def update(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        self.settle()
        side: list[Any] = [self._sha256] if self._md5 is None else [self._sha256, self._md5]
        inline: list[Any] = [self._crc] if self._sha1 is None else [self._crc, self._sha1]
        if len(view) < _SIDE_HASH_MIN:
            inline, side = inline + side, []
        self._pending = [_SIDE_HASHING.submit(hasher.update, view) for hasher in side]
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
        twin = StreamDigests(self.rclone_digests)
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


@dataclass(frozen=True)
class BlobLocation:
    region: str
    key: str


class BlobStore(ABC):
    """The interface an object store backend would implement too."""

    @abstractmethod
    def regions(self) -> list[str]: ...

    @abstractmethod
    def check_region(self, region: str) -> None: ...

    @abstractmethod
    def new_writer(self, location: BlobLocation, rclone_digests: bool = True) -> BlobWriter:
        """A writer for a new blob; SHA-1/MD5 are left out (for the backfill) unless `rclone_digests`."""

    @abstractmethod
    def open(self, location: BlobLocation) -> BinaryIO: ...

    @abstractmethod
    def delete(self, location: BlobLocation) -> None: ...

    @abstractmethod
    def size(self, location: BlobLocation) -> int | None: ...


def fsync_directory(path: Path) -> None:
    """Makes a rename or a new entry in `path` durable."""
    if os.name == "nt":  # Windows cannot open a folder to fsync it; NTFS journals the rename itself
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(source: Path, final: Path) -> None:
    """Moves fsynced bytes into their object path and makes the rename durable (a new shard folder too).
    Callers translate OSError with storage_errors()."""
    created_parent = not final.parent.exists()
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, final)
    fsync_directory(final.parent)
    if created_parent:
        fsync_directory(final.parent.parent)


# Written bytes are pushed to the disk in the background every FLUSH_EVERY bytes, so the fsync that
# must precede the answer (the 201, or a session chunk's 308) finds little left to do instead of a
# whole file's or chunk's worth of dirty pages.
FLUSH_EVERY = 4 * 1024 * 1024
_FLUSHING = ThreadPoolExecutor(max_workers=2, thread_name_prefix="lockr-flush")


def _flush_duplicate(fd: int) -> None:
    """fdatasync on a duplicate descriptor (the writer may close its own meanwhile), then close it.

    An error raised here is the writer's error: a duplicate shares the open file description, so the
    kernel reports a failed writeback only once, here, and the final fsync would not see it again.
    """
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


class BackgroundFlush:
    """One writer's background fdatasync every `every` bytes: at most one in flight; its error is the
    writer's error."""

    def __init__(self, every: int = FLUSH_EVERY) -> None:
        self._every = every
        self._flush: Future[None] | None = None
        self._flushed_upto = 0

    def written(self, fd: int, total: int) -> None:
        """Called after each write with the bytes written so far; starts a flush every FLUSH_EVERY."""
        if total - self._flushed_upto < self._every:
            return
        if self._flush is not None:
            if not self._flush.done():
                return
            self._flush.result()  # a failed background writeback fails this upload, here
        self._flushed_upto = total
        self._flush = _FLUSHING.submit(_flush_duplicate, os.dup(fd))

    def wait(self) -> None:
        """Before the fsync that acknowledges: the flush in flight has ended, and did not fail."""
        if self._flush is not None:
            flush, self._flush = self._flush, None
            flush.result()


class FileBlobWriter(BlobWriter):
    """Streams into `tmp/`, hashing as it goes; commit = fsync, os.replace, fsync the directory."""

    def __init__(self, temp_path: Path, final_path: Path, rclone_digests: bool = True) -> None:
        self._temp_path = temp_path
        self._final_path = final_path
        self._hasher = StreamDigests(rclone_digests)
        self.bytes_written = 0
        self._fd: int | None = None
        self._finished = False
        self._background = BackgroundFlush()

    def _open(self) -> int:
        """The temp file is created on first use, on the I/O thread that writes it."""
        assert not self._finished, "write after commit or abort"
        if self._fd is None:
            with storage_errors("create a temporary file"):
                self._fd = os.open(self._temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        return self._fd

    def write(self, data: bytes | memoryview) -> None:
        fd = self._open()
        view = memoryview(data)
        self._hasher.update(view)
        with storage_errors("write the upload to disk"):
            while view:
                written = os.write(fd, view)
                view = view[written:]
                self.bytes_written += written
            self._background.written(fd, self.bytes_written)

    def sha256(self) -> str:
        return self._hasher.hexdigest()

    def digests(self) -> Digests:
        return self._hasher.digests()

    def commit(self) -> None:
        fd = self._open()
        try:
            with storage_errors("make the upload durable"):
                self._hasher.settle()
                self._background.wait()
                os.fsync(fd)
                os.close(fd)
                self._fd = None
                self._finished = True
                publish(self._temp_path, self._final_path)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        self._finished = True
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None
        try:
            os.unlink(self._temp_path)
        except OSError:
            pass


class FileBlobStore(BlobStore):
    """Blobs as plain files: REGION_ROOT/objects/ab/<key>, temp files in REGION_ROOT/tmp/."""

    def __init__(self, region_roots: dict[str, Path]) -> None:
        self._roots = {name: Path(root) for name, root in region_roots.items()}
        for root in self._roots.values():
            for sub in ("objects", "tmp", "partial"):
                (root / sub).mkdir(parents=True, exist_ok=True)

    def regions(self) -> list[str]:
        return list(self._roots)

    def check_region(self, region: str) -> None:
        if region not in self._roots:
            valid = ", ".join(sorted(self._roots))
            raise UnknownRegion(f"Unknown region {region!r}; valid regions: {valid}.", validRegions=sorted(self._roots))

    def root(self, region: str) -> Path:
        self.check_region(region)
        return self._roots[region]

    def path(self, location: BlobLocation) -> Path:
        return self.root(location.region) / "objects" / location.key[:2] / location.key

    def temp_dir(self, region: str) -> Path:
        return self.root(region) / "tmp"

    def partial_dir(self, region: str) -> Path:
        return self.root(region) / "partial"

    def check_space(self, region: str, size: int) -> None:
        """Refuses up front (507) an upload that cannot fit on the region's disk."""
        with storage_errors("check the free disk space"):
            free = shutil.disk_usage(self.root(region)).free
        if size > free:
            raise InsufficientStorage(f"The server's disk has {free} bytes free, too few for this "
                                      f"{size}-byte upload; nothing was stored.")

    def new_writer(self, location: BlobLocation, rclone_digests: bool = True) -> FileBlobWriter:
        temp = self.temp_dir(location.region) / f"{location.key}.{secrets.token_hex(8)}"
        return FileBlobWriter(temp, self.path(location), rclone_digests)

    def open(self, location: BlobLocation) -> BinaryIO:
        try:
            return open(self.path(location), "rb")
        except FileNotFoundError as exc:
            raise NotFound("The file's bytes are missing from the store.") from exc
        except OSError as exc:
            with storage_errors("read the file"):
                raise exc

    def delete(self, location: BlobLocation) -> None:
        with storage_errors("delete the file"):
            try:
                os.unlink(self.path(location))
            except FileNotFoundError:
                pass

    def size(self, location: BlobLocation) -> int | None:
        try:
            return self.path(location).stat().st_size
        except FileNotFoundError:
            return None

    def clone(self, source: BlobLocation, target: BlobLocation) -> None:
        """A durable copy of a committed blob under a new key: a hard link (no bytes copied; blobs are
        never rewritten in place), or a real copy where links are not possible."""
        target_path = self.path(target)
        with storage_errors("copy the file"):
            target_path.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(self.path(source), target_path)
            except FileNotFoundError as exc:
                raise NotFound("The file's bytes are missing from the store.") from exc
            except OSError:
                writer = self.new_writer(target)
                try:
                    with open(self.path(source), "rb") as handle:
                        while chunk := handle.read(1024 * 1024):
                            writer.write(chunk)
                except BaseException:
                    writer.abort()
                    raise
                writer.commit()
                return
            fsync_directory(target_path.parent)

    def partial_path(self, region: str, session_id: str) -> Path:
        return self.partial_dir(region) / session_id

    def delete_partial(self, region: str, session_id: str) -> None:
        with storage_errors("delete a partial upload"):
            try:
                os.unlink(self.partial_path(region, session_id))
            except FileNotFoundError:
                pass

    def iter_objects(self, region: str) -> Iterator[str]:
        """Every committed key in a region (for fsck)."""
        for shard in sorted((self.root(region) / "objects").iterdir()):
            if shard.is_dir():
                for entry in sorted(shard.iterdir()):
                    yield entry.name

    def clear_temp(self) -> int:
        """Removes leftovers of uploads cut off by a crash; returns how many were removed."""
        removed = 0
        for region in self._roots:
            for entry in self.temp_dir(region).iterdir():
                try:
                    entry.unlink()
                    removed += 1
                except OSError:
                    pass
        return removed
