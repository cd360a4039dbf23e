"""Durability promises: crash points, fsck, corruption detection, disk full and fsync failures."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import requests

from lockr_local.server import writeback
from lockr_local.server.blobstore import FreeSpace
from lockr_local.server.writeback import FLUSH_EVERY
from tests.helpers import REPO, ServerProcess, clean_env, create_account, upload, wait_for


def fsck(data_dir: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lockr_local", "fsck", "--data-dir", str(data_dir), *flags],
                          capture_output=True, text=True, env=clean_env(), cwd=REPO, timeout=120)


def object_path(data_dir: Path, file_id: str) -> Path:
    return data_dir / "blobs" / "objects" / file_id[:2] / file_id


def stored_files(data_dir: Path) -> int:
    """How many files' bytes the store holds: blob files plus small files' bytes kept in the database."""
    on_disk = sum(1 for path in (data_dir / "blobs" / "objects").rglob("*") if path.is_file())
    with sqlite3.connect(data_dir / "lockr.db") as database:
        return on_disk + database.execute("SELECT COUNT(*) FROM inlineblob").fetchone()[0]


# inline_max "0" sends the 9000-byte upload to a blob file, "64KiB" keeps it in the database (server/inline.py).
@pytest.mark.parametrize("crash_point,inline_max,listed_after_restart", [
    ("after_blob_commit", "0", False),
    ("after_db_commit", "0", True),
    ("before_inline_commit", "64KiB", False),
    ("after_db_commit", "64KiB", True),
])
def test_crash_between_commit_steps_leaves_a_consistent_store(tmp_path, crash_point, inline_max,
                                                              listed_after_restart):
    data = tmp_path / "data"
    server = ServerProcess(data, env={"LOCKR_INLINE_MAX": inline_max}).start()
    account = create_account(server.url)
    kept = upload(server.url, b"acknowledged before the crash", "kept.txt", account=account).json()
    server.stop()

    crashing = ServerProcess(data, env={"LOCKR_CRASH_POINT": crash_point, "LOCKR_INLINE_MAX": inline_max}).start()
    with pytest.raises(requests.ConnectionError):
        upload(crashing.url, b"in flight" * 1000, "inflight.bin", account=account)
    assert crashing.proc is not None and crashing.proc.wait(timeout=10) == -9
    crashing.proc = None

    restarted = ServerProcess(data).start()
    try:
        names = [f["name"] for f in requests.get(f"{restarted.url}/api/v1/files", headers=account.auth).json()["files"]]
        assert names == (["kept.txt", "inflight.bin"] if listed_after_restart else ["kept.txt"])
        assert requests.get(kept["downloadUrl"].replace(server.url, restarted.url),
                            headers=account.auth).content == b"acknowledged before the crash"
        used = requests.get(f"{restarted.url}/api/v1/account", headers=account.auth).json()["used"]
        assert used == len(b"acknowledged before the crash") + (9000 if listed_after_restart else 0)
    finally:
        restarted.stop()
    assert stored_files(data) == (2 if listed_after_restart else 1)  # no bytes without a row survive
    report = fsck(data, "--verify")
    assert report.returncode == 0, report.stdout
    assert report.stdout.strip().endswith("clean")


def test_fsck_reports_missing_orphan_and_corrupt_bytes_and_repairs_leftovers(tmp_path):
    data = tmp_path / "data"
    server = ServerProcess(data, env={"LOCKR_INLINE_MAX": "0"}).start()  # blob files, which this test damages
    account = create_account(server.url)
    files = [upload(server.url, f"file {i}".encode() * 100, f"f{i}.txt", account=account).json() for i in range(3)]
    server.stop()
    assert fsck(data).returncode == 0

    object_path(data, files[0]["id"]).unlink()
    corrupt = object_path(data, files[1]["id"])
    raw = bytearray(corrupt.read_bytes())
    raw[10] ^= 0x01
    corrupt.write_bytes(bytes(raw))
    orphan = object_path(data, "ab" + "0" * 30)
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"nobody's")

    quick = fsck(data)
    assert quick.returncode == 1
    assert f"MISSING bytes of file {files[0]['id']}" in quick.stdout
    assert "ORPHAN bytes ab" in quick.stdout
    assert "CORRUPT" not in quick.stdout  # only --verify reads every byte

    verified = fsck(data, "--verify")
    assert f"CORRUPT file {files[1]['id']}" in verified.stdout

    repaired = fsck(data, "--repair")
    assert "removed orphan bytes" in repaired.stdout
    assert not orphan.exists()
    assert object_path(data, files[2]["id"]).exists()


def test_flipped_byte_is_never_served_as_good(server):
    account = create_account(server.url)
    data = os.urandom(3 * 1024 * 1024 + 17)
    file = upload(server.url, data, "photo.raw", account=account).json()
    path = server.ctx.blobs.root("local") / "objects" / file["id"][:2] / file["id"]
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x40
    path.write_bytes(bytes(raw))
    try:
        response = requests.get(file["downloadUrl"], headers=account.auth)
        body = response.content
    except requests.exceptions.ChunkedEncodingError:
        body = None
    assert body != bytes(raw), "corrupted bytes were served in full as if they were good"
    # A range request reads only part of the file and is served (it cannot be checked cheaply).
    part = requests.get(file["downloadUrl"], headers={**account.auth, "Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == data[:100]


def test_disk_full_gives_507_and_keeps_existing_files(server_factory, small_disk):
    srv = server_factory(regions=f"local={small_disk}")
    account = create_account(srv.url)
    first = upload(srv.url, b"k" * 1_000_000, "keep.bin", account=account)
    assert first.status_code == 201
    response = upload(srv.url, os.urandom(4_000_000), "too-big-for-disk.bin", account=account)
    assert response.status_code == 507
    assert response.json()["error"]["code"] == "insufficient_storage"
    assert list((small_disk / "tmp").iterdir()) == []
    files = requests.get(f"{srv.url}/api/v1/files", headers=account.auth).json()["files"]
    assert [f["name"] for f in files] == ["keep.bin"]
    assert requests.get(files[0]["downloadUrl"], headers=account.auth).content == b"k" * 1_000_000
    assert requests.get(f"{srv.url}/api/v1/account", headers=account.auth).json()["used"] == 1_000_000
    assert upload(srv.url, b"small", "fits.txt", account=account).status_code == 201


def test_the_database_thread_never_reads_the_free_disk_space(server_factory, monkeypatch):
    """Every upload's admission checks the free space on the database thread, which every request waits
    for: it answers from a reading taken elsewhere (blobstore.FreeSpace), here renewed at every check."""
    measured_on: list[str] = []
    real = shutil.disk_usage

    def recording(path: Any) -> Any:
        measured_on.append(threading.current_thread().name)
        return real(path)

    monkeypatch.setattr(shutil, "disk_usage", recording)
    monkeypatch.setattr(FreeSpace, "MAX_AGE", 0.0)
    srv = server_factory()
    account = create_account(srv.url)
    opened = len(measured_on)
    for name, size in (("small.txt", 100), ("big.bin", 300_000)):
        assert upload(srv.url, os.urandom(size), name, account=account).status_code == 201
    assert requests.post(f"{srv.url}/api/v1/upload/session", json={"name": "later.bin", "size": 10},
                         headers=account.auth).status_code in (200, 201)
    assert wait_for(lambda: len(measured_on) > opened, message="a new reading")
    assert not [name for name in measured_on if name.startswith("lockr-db")], measured_on


def test_disk_filling_up_mid_stream_stores_nothing_and_keeps_serving(server_factory, small_disk):
    srv = server_factory(regions=f"local={small_disk}")
    account = create_account(srv.url)
    assert upload(srv.url, b"k" * 500_000, "keep.bin", account=account).status_code == 201

    def body():
        for _ in range(80):
            yield os.urandom(65536)

    try:
        response = requests.post(f"{srv.url}/api/v1/upload", data=body(),
                                 headers={"x-file-name": "chunked.bin", **account.auth})
        assert response.status_code == 507
    except requests.ConnectionError:
        pass  # the server answered 507 and closed while the client was still sending
    assert wait_for(lambda: list((small_disk / "tmp").iterdir()) == [], message="temp file removed")
    files = requests.get(f"{srv.url}/api/v1/files", headers=account.auth).json()["files"]
    assert [f["name"] for f in files] == ["keep.bin"]
    assert requests.get(files[0]["downloadUrl"], headers=account.auth).content == b"k" * 500_000


def test_fsync_failure_is_never_acknowledged(server_factory, monkeypatch):
    server = server_factory(inline_max=0)  # blob files: inline files are made durable by SQLite's own fsync
    account = create_account(server.url)
    real_fsync = os.fsync
    temp_dir = server.ctx.blobs.temp_dir("local")

    def failing_fsync(fd: int) -> None:
        # EIO from the disk while syncing an upload's temp file: the write must count as failed.
        if any(entry.is_file() for entry in temp_dir.iterdir()):
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    response = upload(server.url, b"unsynced" * 100, "eio.bin", account=account)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "storage_error"
    assert "Traceback" not in response.text
    assert requests.get(f"{server.url}/api/v1/files", headers=account.auth).json()["files"] == []
    assert list(temp_dir.iterdir()) == []
    assert upload(server.url, b"fine", "ok.txt", account=account).status_code == 201


def fail_background_writeback(monkeypatch: Any, mechanism: str) -> list[int]:
    """Makes the background push of written bytes fail with EIO, through `mechanism`: "sync_file_range"
    (Linux) or the "fdatasync" thread used elsewhere. Returns the descriptors it was called with."""
    failures: list[int] = []

    def failing(fd: int) -> None:
        failures.append(fd)
        raise OSError(errno.EIO, "Input/output error")

    if mechanism == "sync_file_range":
        if writeback._sync_file_range is None:
            pytest.skip("sync_file_range exists on Linux only")
        monkeypatch.setattr(writeback, "start_writeback", failing)
    else:
        monkeypatch.setattr(writeback, "_sync_file_range", None)
        monkeypatch.setattr(os, "fdatasync", failing)
    return failures


@pytest.mark.parametrize("mechanism", ["sync_file_range", "fdatasync"])
def test_failed_background_writeback_is_never_acknowledged(server, monkeypatch, mechanism):
    """Big uploads are pushed to the disk in the background while they stream; an EIO there fails the
    upload (with fdatasync, the final fsync on the writer's own descriptor would no longer report it)."""
    account = create_account(server.url)
    failures = fail_background_writeback(monkeypatch, mechanism)
    response = upload(server.url, os.urandom(3 * FLUSH_EVERY + 1), "writeback.bin", account=account)
    monkeypatch.undo()
    assert failures, "the upload was never flushed in the background"
    assert response.status_code == 500, response.text
    assert response.json()["error"]["code"] == "storage_error"
    assert requests.get(f"{server.url}/api/v1/files", headers=account.auth).json()["files"] == []
    assert wait_for(lambda: list(server.ctx.blobs.temp_dir("local").iterdir()) == [], message="temp file removed")


@pytest.mark.parametrize("mechanism", ["sync_file_range", "fdatasync"])
def test_failed_background_writeback_of_a_session_chunk_is_never_acknowledged(server, monkeypatch, mechanism):
    from tests.server.session_tools import open_session, put_chunk, status, stored_offset

    account = create_account(server.url)
    total = 4 * FLUSH_EVERY
    data = os.urandom(total)
    session = open_session(server.url, total, account=account)
    first = put_chunk(session["uploadUrl"], data[:FLUSH_EVERY], 0, total)
    assert first.status_code == 308 and stored_offset(first) == FLUSH_EVERY
    failures = fail_background_writeback(monkeypatch, mechanism)
    failed = put_chunk(session["uploadUrl"], data[FLUSH_EVERY:3 * FLUSH_EVERY], FLUSH_EVERY, total)
    monkeypatch.undo()
    assert failures, "the chunk was never flushed in the background"
    assert failed.status_code == 500 and failed.json()["error"]["code"] == "storage_error"
    # Only the chunk acknowledged before the failure counts; the client resumes from there.
    assert stored_offset(status(session["uploadUrl"], total)) == FLUSH_EVERY
    done = put_chunk(session["uploadUrl"], data[FLUSH_EVERY:], FLUSH_EVERY, total)
    assert done.status_code in (200, 201) and done.json()["sha256"] == hashlib.sha256(data).hexdigest()


def test_uploads_push_their_bytes_to_the_disk_as_they_stream(server, monkeypatch):
    """On Linux the push is sync_file_range, started every FLUSH_EVERY bytes on the writer's thread."""
    if writeback._sync_file_range is None:
        pytest.skip("sync_file_range exists on Linux only")
    calls: list[int] = []
    real = writeback.start_writeback
    monkeypatch.setattr(writeback, "start_writeback", lambda fd: (calls.append(fd), real(fd)))
    account = create_account(server.url)
    data = os.urandom(4 * FLUSH_EVERY)
    answer = upload(server.url, data, "pushed.bin", account=account)
    assert answer.status_code == 201
    assert len(calls) >= 3
    assert requests.get(answer.json()["downloadUrl"], headers=account.auth).content == data


def test_a_filesystem_without_sync_file_range_falls_back_to_fdatasync(server, monkeypatch):
    """EINVAL (a filesystem that cannot do it) is not an upload failure: the fdatasync thread takes over."""
    if writeback._sync_file_range is None:
        pytest.skip("sync_file_range exists on Linux only")
    monkeypatch.setattr(writeback, "_sync_file_range", writeback._sync_file_range)  # restored after the test
    monkeypatch.setattr(writeback, "start_writeback",
                        lambda fd: (_ for _ in ()).throw(OSError(errno.EINVAL, "Invalid argument")))
    flushed: list[int] = []
    real_fdatasync = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (flushed.append(fd), real_fdatasync(fd))[1])
    account = create_account(server.url)
    data = os.urandom(4 * FLUSH_EVERY)
    answer = upload(server.url, data, "fallback.bin", account=account)
    assert answer.status_code == 201, answer.text
    assert requests.get(answer.json()["downloadUrl"], headers=account.auth).content == data
    assert writeback._sync_file_range is None
    assert flushed, "the upload was never flushed in the background"
