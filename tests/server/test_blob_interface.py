"""The blob-store seam: the server speaks only to BlobStore, and every backend keeps its contract."""

from __future__ import annotations

import ast
import hashlib
import io
import itertools
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, Callable

import pytest
import requests

from lockr_local.errors import InsufficientStorage, NotFound, StorageError, UnknownRegion
from lockr_local.server.blobstore import BlobLocation, BlobStore, FreeSpace, make_blob_store
from lockr_local.server.filestore import FileBlobStore, FileBlobWriter, FilePartial
from tests.conftest import make_settings
from tests.helpers import create_account, upload, wait_for

REPO = Path(__file__).resolve().parents[2]
# The interface and the one backend so far; only these may know which backend is in use.
BACKEND_MODULES = {REPO / "server" / "blobstore.py", REPO / "server" / "filestore.py", REPO / "server" / "s3store.py"}
BACKEND_NAMES = {"FileBlobStore", "FileBlobWriter", "FilePartial", "filestore", "S3BlobStore", "S3Partial",
                 "S3BlobWriter", "s3store"}


def s3_store(root: Path, request: pytest.FixtureRequest) -> BlobStore:
    """Two regions in two buckets of the moto server (a separate process); abandoned uploads count at once."""
    from lockr_local.config import parse_bucket_url
    from lockr_local.server.s3store import S3BlobStore

    s3 = request.getfixturevalue("s3_server")
    return S3BlobStore({name: parse_bucket_url(s3.region_url()) for name in ("r1", "r2")}, stale_after=0)


# Every backend the contract below runs against: the same assertions hold each to the same promises.
BACKENDS: dict[str, Callable[[Path, pytest.FixtureRequest], BlobStore]] = {
    "filesystem": lambda root, _request: FileBlobStore({"r1": root / "r1", "r2": root / "r2"}),
    "s3": s3_store,
}
INTERFACE = frozenset(BlobStore.__abstractmethods__)
# What callers may use: the interface, and what BlobStore itself gives every backend (use_threads).
DECLARED = INTERFACE | {name for name in vars(BlobStore) if not name.startswith("_")}


def server_modules() -> list[Path]:
    """The server package and the admin commands that open a store without a server."""
    return sorted({*(REPO / "server").rglob("*.py"), *(REPO / "lockr_local").rglob("*.py")} - BACKEND_MODULES)


def is_store(node: ast.expr) -> bool:
    """`blobs`, `self.blobs`, `self._blobs`, `ctx.blobs`, `self.ctx.blobs`: how the code names its store."""
    if isinstance(node, ast.Name):
        return node.id in ("blobs", "_blobs")
    return isinstance(node, ast.Attribute) and node.attr in ("blobs", "_blobs")


def seam_violations(path: Path, root: Path = REPO) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(root)}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Name) and node.id in BACKEND_NAMES:
            found.append(f"{where} names {node.id}")
        elif isinstance(node, ast.Attribute) and is_store(node.value) and node.attr not in DECLARED:
            found.append(f"{where} uses {node.attr}, which BlobStore does not declare")
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names = {alias.name for alias in node.names}
            if module.endswith("filestore") or names & BACKEND_NAMES:
                found.append(f"{where} imports the filesystem backend")
        elif isinstance(node, ast.Import) and any(a.name.endswith("filestore") for a in node.names):
            found.append(f"{where} imports the filesystem backend")
    return found


def test_only_the_blob_store_modules_know_the_filesystem_backend():
    modules = server_modules()
    assert REPO / "server" / "resumable.py" in modules and REPO / "server" / "fsck.py" in modules
    violations = [v for path in modules for v in seam_violations(path)]
    assert violations == []


# The seam over every stored file's bytes, blob or inline (server/filebytes.py): only it opens them.
BYTES_SEAM = REPO / "server" / "filebytes.py"


def bytes_seam_violations(path: Path, root: Path = REPO) -> list[str]:
    """Reading a file's bytes around FileBytes: a store's `open`, `inline_bytes`, or (in a handler) asking
    whether a file is inline."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    handler = "handlers" in path.relative_to(root).parts
    for node in ast.walk(tree):
        where = f"{path.relative_to(root)}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Attribute) and is_store(node.value) and node.attr == "open":
            found.append(f"{where} opens a blob around FileBytes")
        elif isinstance(node, ast.Name) and node.id == "inline_bytes":
            found.append(f"{where} reads inline bytes around FileBytes")
        elif handler and isinstance(node, ast.Attribute) and node.attr == "inline":
            found.append(f"{where} asks where a file's bytes live")
    return found


def test_every_reader_of_stored_bytes_goes_through_file_bytes():
    modules = [path for path in server_modules() if path != BYTES_SEAM]
    assert REPO / "server" / "handlers" / "downloads.py" in modules and REPO / "server" / "backfill.py" in modules
    assert [v for path in modules for v in bytes_seam_violations(path)] == []


def test_the_bytes_guard_catches_reads_around_the_seam(tmp_path):
    handlers = tmp_path / "handlers"
    handlers.mkdir()
    sample = handlers / "sample.py"
    sample.write_text("from lockr_local.server.inline import inline_bytes\n"
                      "async def get(self, info):\n"
                      "    run = self.call if info.inline else self.run_io\n"
                      "    return self.ctx.blobs.open(info.location) or inline_bytes(info.id)\n")
    assert len(bytes_seam_violations(sample, tmp_path)) == 3


@pytest.mark.parametrize("inline_max", ["64KiB", "0"], ids=["inline", "blob"])
def test_file_bytes_open_a_file_wherever_its_bytes_live(server_factory, inline_max):
    from lockr_local.server.filebytes import FileBytes

    srv = server_factory(inline_max=inline_max)
    stored = upload(srv.url, b"seam " * 100, "seam.txt", account=create_account(srv.url)).json()
    info = srv.ctx.db.run_sync(srv.ctx.service.file, stored["id"])
    assert info.inline == (inline_max != "0")
    assert read_all(srv.ctx.db.run_sync(FileBytes(srv.ctx.blobs).open, info.stored)) == b"seam " * 100


def test_the_guard_catches_filesystem_calls_and_backend_names(tmp_path):
    # The guard above passes only if it can fail: the shapes of the calls this seam replaced.
    sample = tmp_path / "sample.py"
    sample.write_text("from lockr_local.server.filestore import FileBlobStore\n"
                      "def f(self, blobs):\n"
                      "    blobs.partial_dir('r').iterdir()\n"
                      "    self.ctx.blobs.path(None)\n"
                      "    self.blobs.open_partial\n")
    violations = seam_violations(sample, tmp_path)
    assert len(violations) == 3, violations
    assert any("partial_dir" in v for v in violations) and any("uses path" in v for v in violations)


def test_the_server_is_built_on_the_store_the_settings_choose(tmp_path):
    settings = make_settings(tmp_path / "data")
    store = make_blob_store(settings)
    assert isinstance(store, BlobStore)
    assert store.regions() == list(settings.region_paths)


@pytest.mark.parametrize("backend_class", [FileBlobStore, FileBlobWriter, FilePartial])
def test_the_filesystem_backend_implements_every_abstract_method(backend_class):
    assert backend_class.__abstractmethods__ == frozenset()


@pytest.fixture(params=sorted(BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    return BACKENDS[request.param](tmp_path, request)


def commit_blob(store: BlobStore, location: BlobLocation, data: bytes) -> None:
    writer = store.new_writer(location)
    writer.write(data)
    writer.commit()


def read_all(handle: BinaryIO) -> bytes:
    with handle:
        return handle.read()


def test_a_blob_is_invisible_until_its_writer_commits(store):
    location = BlobLocation("r1", "ab" + "0" * 30)
    writer = store.new_writer(location)
    writer.write(b"hello ")
    writer.write(memoryview(b"world"))
    assert store.size(location) is None and list(store.iter_objects("r1")) == []
    writer.commit()
    assert writer.sha256() == hashlib.sha256(b"hello world").hexdigest()
    assert store.size(location) == 11
    assert read_all(store.open(location)) == b"hello world"
    assert list(store.iter_objects("r1")) == [location.key] and list(store.iter_objects("r2")) == []


def test_an_aborted_writer_leaves_nothing(store):
    location = BlobLocation("r1", "cd" + "1" * 30)
    writer = store.new_writer(location)
    writer.write(b"never stored")
    writer.abort()
    assert store.size(location) is None and store.temp_leftovers("r1") == 0


def test_clone_copies_and_delete_removes_only_its_key(store):
    source, target = BlobLocation("r2", "ef" + "2" * 30), BlobLocation("r2", "ef" + "3" * 30)
    commit_blob(store, source, b"bytes to share")
    store.clone(source, target)
    store.delete(source)
    store.delete(source)  # already gone is not an error
    assert store.size(source) is None
    assert read_all(store.open(target)) == b"bytes to share"
    with pytest.raises(NotFound):
        store.open(source)
    with pytest.raises(NotFound):
        store.clone(source, BlobLocation("r2", "ef" + "4" * 30))


def test_stored_at_tells_when_a_blob_was_stored_and_none_once_it_is_gone(store):
    location = BlobLocation("r1", "ab" + "7" * 30)
    assert store.stored_at(location) is None
    before = time.time()
    commit_blob(store, location, b"stored now")
    stored = store.stored_at(location)
    # An object store's clock and Last-Modified (whole seconds) may be a little off this machine's.
    assert stored is not None and before - 5 <= stored <= time.time() + 5, (before, stored)
    store.delete(location)
    assert store.stored_at(location) is None


def test_unknown_regions_are_refused_and_an_empty_upload_always_fits(store):
    with pytest.raises(UnknownRegion):
        store.check_region("nowhere")
    store.check_region("r1")
    store.check_space("r1", 0)


def test_writes_cut_off_by_a_crash_are_counted_and_cleared(store):
    location = BlobLocation("r1", "12" + "5" * 30)
    # Neither committed nor aborted; past an object store's first part, so that it has an upload to leave.
    store.new_writer(location).write(b"the server died here" * 500_000)
    assert store.temp_leftovers("r1") == 1 and store.temp_leftovers("r2") == 0
    assert store.clear_temp() == 1
    assert store.temp_leftovers("r1") == 0 and store.size(location) is None


def test_a_session_resumes_at_its_recorded_offset_and_completes_into_the_blob(store):
    location, session_id = BlobLocation("r1", "34" + "6" * 30), "a" * 32
    first = store.open_partial(location, session_id, 0, None, rclone_digests=True)
    first.write(b"ab")
    first.sync()  # durable: the offset 2 recorded below counts only synced bytes
    first.write(b"c")  # stored (a file), or buffered (an object store), but never synced nor acknowledged
    first.abort()
    assert list(store.partial_sessions("r1")) == [session_id] and list(store.partial_sessions("r2")) == []
    # After a restart: no running hash, and the byte past the recorded offset was never acknowledged.
    second = store.open_partial(location, session_id, 2, None, rclone_digests=True)
    second.write(b"XYZ")
    assert second.offset == 5
    digests = second.digests()
    assert digests.sha256 == hashlib.sha256(b"abXYZ").hexdigest()
    assert digests.md5 == hashlib.md5(b"abXYZ").hexdigest()
    second.commit()
    assert read_all(store.open(location)) == b"abXYZ"
    assert list(store.partial_sessions("r1")) == []
    # The row could not be written: the bytes become the session's again, and complete later.
    second.restore()
    assert store.size(location) is None
    third = store.open_partial(location, session_id, 5, None, rclone_digests=False)
    assert third.sha256() == hashlib.sha256(b"abXYZ").hexdigest()
    third.commit()
    assert read_all(store.open(location)) == b"abXYZ"


def test_a_session_taken_back_from_its_completed_blob_takes_the_rest_and_completes(store):
    """A crash between completing a session's blob and recording it (the kill harness's crash point
    after_session_blob_commit): the next start takes the blob back at the recorded offset, short of what it
    holds, and the client's next chunk completes the upload."""
    location, session_id = BlobLocation("r1", "78" + "8" * 30), "c" * 32
    first = store.open_partial(location, session_id, 0, None, rclone_digests=True)
    first.write(b"x" * 1000)
    first.sync()  # offset 1000 recorded
    first.write(b"y")  # the last chunk: completed into the blob, then the server died before the record
    first.commit()
    second = store.open_partial(location, session_id, 1000, None, rclone_digests=True)
    second.write(b"y")
    second.commit()
    assert second.sha256() == hashlib.sha256(b"x" * 1000 + b"y").hexdigest()
    assert read_all(store.open(location)) == b"x" * 1000 + b"y"
    assert list(store.partial_sessions("r1")) == []


def test_a_session_shorter_than_recorded_is_refused_and_deleting_it_is_idempotent(store):
    location, session_id = BlobLocation("r2", "56" + "7" * 30), "b" * 32
    partial = store.open_partial(location, session_id, 0, None, rclone_digests=False)
    partial.write(b"12")
    partial.sync()
    partial.abort()
    with pytest.raises(StorageError):
        store.open_partial(location, session_id, 10, None, rclone_digests=False)
    store.delete_partial("r2", session_id)
    store.delete_partial("r2", session_id)
    assert list(store.partial_sessions("r2")) == []


def test_the_filesystem_store_refuses_an_upload_larger_than_its_free_space(tmp_path):
    store = FileBlobStore({"r1": tmp_path})
    with pytest.raises(InsufficientStorage):
        store.check_space("r1", 2**62)


def test_a_stale_free_space_reading_is_answered_at_once_and_renewed_on_an_io_thread(monkeypatch):
    readings = itertools.chain([1000], itertools.repeat(10))
    measured_on: list[str] = []

    def measure(region: str) -> int:
        measured_on.append(threading.current_thread().name)
        return next(readings)

    free = FreeSpace(measure, ["r1"])
    with ThreadPoolExecutor(1, thread_name_prefix="test-io") as io:
        assert free.free("r1", io) == 1000  # fresh: no new reading
        assert len(measured_on) == 1
        monkeypatch.setattr(FreeSpace, "MAX_AGE", 0.0)
        assert free.free("r1", io) == 1000  # stale: the last reading, while a new one is taken elsewhere
        assert wait_for(lambda: free.free("r1", io) == 10, message="the new reading")
    assert measured_on[0] == threading.current_thread().name  # the first, when the store opens
    assert set(measured_on[1:]) == {"test-io_0"}


class NoDescriptorHandle(io.BytesIO):
    """What an object store's `open` returns: a readable, seekable stream with no OS descriptor."""


def test_downloads_stream_from_a_store_whose_handles_have_no_descriptor(server, monkeypatch):
    account = create_account(server.url)
    data = os.urandom(3 * 1024 * 1024 + 5)
    file = upload(server.url, data, "remote.bin", account=account).json()
    real_open = server.ctx.blobs.open

    def open_without_descriptor(location: BlobLocation) -> BinaryIO:
        return NoDescriptorHandle(read_all(real_open(location)))

    monkeypatch.setattr(server.ctx.blobs, "open", open_without_descriptor)
    whole = requests.get(file["downloadUrl"], headers=account.auth, timeout=30)
    ranged = requests.get(file["downloadUrl"], headers={**account.auth, "Range": "bytes=1000-"}, timeout=30)
    assert (whole.status_code, whole.content == data) == (200, True)
    assert (ranged.status_code, ranged.content == data[1000:]) == (206, True)
