"""The filesystem blob store: blobs as plain files, written to a temp file while hashed, then fsynced,
moved into place with os.replace and made durable by fsyncing the folder; session partials appended
through a descriptor. The only BlobStore backend so far (the interface: server/blobstore.py)."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from concurrent.futures import Executor
from pathlib import Path
from typing import BinaryIO, Iterator

from lockr_local.errors import InsufficientStorage, NotFound, StorageError, UnknownRegion
from lockr_local.server.blobstore import (
    BlobLocation, BlobStore, BlobWriter, Digests, FreeSpace, HelperThreads, PartialBlob, StreamDigests,
    storage_errors,
)
from lockr_local.server.durable import durable_mkdir, fsync_directory
from lockr_local.server.private import make_private_dir
from lockr_local.server.writeback import SESSION_FLUSH_EVERY, BackgroundFlush

log = logging.getLogger("lockr.sessions")

REHASH_BLOCK = 1024 * 1024


def publish(source: Path, final: Path) -> None:
    """Moves fsynced bytes into their object path and makes the rename durable (a new shard folder too).
    Callers translate OSError with storage_errors()."""
    created_parent = not final.parent.exists()
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, final)
    fsync_directory(final.parent)
    if created_parent:
        fsync_directory(final.parent.parent)


class FileBlobWriter(BlobWriter):
    """Streams into `tmp/`, hashing as it goes; commit = fsync, os.replace, fsync the directory."""

    def __init__(self, temp_path: Path, final_path: Path, rclone_digests: bool = True,
                 threads: HelperThreads = HelperThreads()) -> None:
        self._temp_path = temp_path
        self._final_path = final_path
        self._hasher = StreamDigests(rclone_digests, threads.hashing)
        self.bytes_written = 0
        self._fd: int | None = None
        self._done = False
        self._background = BackgroundFlush(flushing=threads.flushing)

    def _open(self) -> int:
        """The temp file is created on first use, on the I/O thread that writes it."""
        assert not self._done, "write after commit or abort"
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
                self._done = True
                publish(self._temp_path, self._final_path)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        self._done = True
        _close_quietly(self._fd)
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
            make_private_dir(root)  # its listing names every file id, and ids are download capabilities
            for sub in ("objects", "tmp", "partial"):
                durable_mkdir(root / sub)
        self._free = FreeSpace(lambda region: shutil.disk_usage(self._roots[region]).free, self._roots)

    def free_bytes(self, region: str) -> int | None:
        try:
            return shutil.disk_usage(self._roots[region]).free
        except OSError:
            return 0  # a region whose disk is gone can store nothing

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
        """Refuses up front (507) an upload that cannot fit on the region's disk (as last measured)."""
        self.check_region(region)
        free = self._free.free(region, self.threads.io)
        if size > free:
            raise InsufficientStorage(f"The server's disk has {free} bytes free, too few for this "
                                      f"{size}-byte upload; nothing was stored.")

    def new_writer(self, location: BlobLocation, rclone_digests: bool = True) -> FileBlobWriter:
        temp = self.temp_dir(location.region) / f"{location.key}.{secrets.token_hex(8)}"
        return FileBlobWriter(temp, self.path(location), rclone_digests, self.threads)

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

    def stored_at(self, location: BlobLocation) -> float | None:
        try:
            return self.path(location).stat().st_mtime
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

    def open_partial(self, location: BlobLocation, session_id: str, offset: int, hasher: StreamDigests | None,
                     rclone_digests: bool) -> FilePartial:
        return FilePartial.open(self.partial_path(location.region, session_id), self.path(location), session_id,
                                offset, hasher, rclone_digests, self.threads)

    def partial_sessions(self, region: str) -> Iterator[str]:
        for entry in sorted(self.partial_dir(region).iterdir()):
            yield entry.name

    def delete_partial(self, region: str, session_id: str) -> None:
        with storage_errors("delete a partial upload"):
            try:
                os.unlink(self.partial_path(region, session_id))
            except FileNotFoundError:
                pass

    def download_url(self, location: BlobLocation, disposition: str, content_type: str) -> str | None:
        return None  # a folder cannot sign URLs: the server streams (sendfile)

    def reap_abandoned(self) -> int:
        return 0  # tmp/ is cleared at start, when no write is in flight (one process owns the folder)

    def iter_objects(self, region: str) -> Iterator[str]:
        for shard in sorted((self.root(region) / "objects").iterdir()):
            if shard.is_dir():
                for entry in sorted(shard.iterdir()):
                    yield entry.name

    def temp_leftovers(self, region: str) -> int:
        return sum(1 for _ in self.temp_dir(region).iterdir())

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


class FilePartial(PartialBlob):
    """A session's bytes in the region's `partial/` folder, opened at the recorded offset for appending."""

    def __init__(self, fd: int, path: Path, final_path: Path, offset: int, hasher: StreamDigests,
                 flushing: Executor | None = None) -> None:
        self._fd: int | None = fd
        self.path = path
        self.final_path = final_path
        self.offset = offset
        self.hasher = hasher
        self.bytes_written = 0
        self._background = BackgroundFlush(SESSION_FLUSH_EVERY, flushing)

    @classmethod
    def open(cls, path: Path, final: Path, session_id: str, offset: int, hasher: StreamDigests | None,
             rclone_digests: bool, threads: HelperThreads = HelperThreads()) -> "FilePartial":
        """Opens (creating) the partial file at `offset`; bytes past it were never acknowledged and are
        cut off. Without a running `hasher` the durable prefix is re-hashed here, once."""
        with storage_errors("open the stored part of the upload"):
            if not path.exists() and final.exists():
                # A crash between moving the finished bytes into place and recording the file: the
                # object has no row, so take it back and let the completion run again.
                os.replace(final, path)
                fsync_directory(path.parent)
            created = not path.exists()
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                if created:
                    fsync_directory(path.parent)
                size = os.fstat(fd).st_size
                if size < offset:
                    raise StorageError("The stored part of this upload is shorter than recorded; "
                                       "start a new session.")
                if size > offset:
                    os.ftruncate(fd, offset)
                if hasher is None:
                    hasher = _rehash(fd, offset, StreamDigests(rclone_digests, threads.hashing))
                    if offset:
                        log.info("re-hashed %d stored bytes of session %s", offset, session_id[:8])
                os.lseek(fd, offset, os.SEEK_SET)
            except BaseException:
                os.close(fd)
                raise
        return cls(fd, path, final, offset, hasher, threads.flushing)

    def write(self, data: bytes | memoryview) -> None:
        assert self._fd is not None, "write after close"
        view = memoryview(data)
        self.hasher.update(view)
        with storage_errors("write the upload to disk"):
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
                self.offset += written
                self.bytes_written += written
            self._background.written(self._fd, self.bytes_written)

    def sha256(self) -> str:
        return self.hasher.hexdigest()

    def digests(self) -> Digests:
        return self.hasher.digests()

    def sync(self) -> None:
        assert self._fd is not None, "sync after close"
        with storage_errors("make the upload durable"):
            self.hasher.settle()
            self._background.wait()
            os.fsync(self._fd)

    def commit(self) -> None:
        """fsync, then os.replace into the object path, then fsync both folders."""
        self.sync()
        with storage_errors("make the upload durable"):
            self.abort()
            publish(self.path, self.final_path)
            fsync_directory(self.path.parent)

    def restore(self) -> None:
        """The bytes go back from the object path to `partial/`."""
        with storage_errors("put the upload back"):
            os.replace(self.final_path, self.path)
            fsync_directory(self.path.parent)

    def abort(self) -> None:
        """Closes the file; it stays in `partial/`."""
        _close_quietly(self._fd)
        self._fd = None


def _close_quietly(fd: int | None) -> None:
    """Closes `fd` if open; an abort must never raise."""
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass


def _rehash(fd: int, length: int, hasher: StreamDigests) -> StreamDigests:
    position = 0
    with storage_errors("read the stored part of the upload"):
        while position < length:
            block = os.pread(fd, min(REHASH_BLOCK, length - position), position)
            if not block:
                raise StorageError("The stored part of this upload is shorter than recorded.")
            hasher.update(block)
            position += len(block)
    return hasher
