"""SHA-1/MD5 for big API uploads arrive after the answer (DigestBackfill); small ones and WebDAV have them at once."""

from __future__ import annotations

import hashlib
import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

from lockr_local.config import Settings
from lockr_local.server.backfill import PendingDigests, hash_stored_blob
from lockr_local.server.blobstore import INLINE_RCLONE_DIGESTS_UPTO
from lockr_local.server.checks import StoredCheck
from lockr_local.server.models import StoredFile
from tests.conftest import make_settings
from tests.helpers import Account, ThreadedServer, create_account, upload, wait_for
from tests.server.session_tools import open_session, put_chunk
from tests.server.test_webdav import OC, propfind

BIG = INLINE_RCLONE_DIGESTS_UPTO + 1


def rclone_checksums(data: bytes) -> str:
    return f"SHA1:{hashlib.sha1(data).hexdigest()} MD5:{hashlib.md5(data).hexdigest()}"


def dav_checksums(server: Any, account: Account, name: str) -> str | None:
    """What rclone reads: the file's oc:checksums in a Depth 0 PROPFIND, None when there are none."""
    entry = propfind(server, account, f"{account.username}/{name}", depth="0")[0]
    element = entry["props"].get(f"{OC}checksums")
    return None if element is None else element.findtext(f"{OC}checksum")


@contextmanager
def served_again(settings: Settings) -> Iterator[ThreadedServer]:
    """The same store served by a new server, its backfill started as `serve` starts it."""
    server = ThreadedServer(settings).start()
    try:
        server.ctx.backfill.start()
        yield server
    finally:
        server.stop()


def pending_for(server: ThreadedServer, file_id: str) -> PendingDigests:
    """What the backfill would be given for a stored file."""
    row = server.ctx.db.run_sync(StoredFile.get, StoredFile.file_id == file_id)
    return PendingDigests(file_id, row.region, row.sha256, StoredCheck(row.crc32c, row.crc32))


@pytest.fixture
def alice(server: Any) -> Account:
    return create_account(server.url, "alice")


def test_a_small_api_upload_has_rclone_checksums_as_soon_as_it_is_acknowledged(server: Any, alice: Account) -> None:
    data = os.urandom(10 * 1024)
    assert upload(server.url, data, "small.bin", account=alice).status_code == 201
    assert dav_checksums(server, alice, "small.bin") == rclone_checksums(data)


def test_a_big_api_upload_gets_rclone_checksums_from_the_backfill(server: Any, alice: Account) -> None:
    data = os.urandom(BIG)
    assert upload(server.url, data, "big.bin", account=alice).status_code == 201
    wait_for(lambda: dav_checksums(server, alice, "big.bin"), timeout=30, message="the backfilled checksums")
    assert dav_checksums(server, alice, "big.bin") == rclone_checksums(data)


def test_a_big_session_upload_gets_rclone_checksums_from_the_backfill(server: Any, alice: Account) -> None:
    data = os.urandom(BIG)
    session = open_session(server.url, len(data), name="session.bin", account=alice)
    half = len(data) // 2
    assert put_chunk(session["uploadUrl"], data[:half], 0, len(data)).status_code == 308
    assert put_chunk(session["uploadUrl"], data[half:], half, len(data)).status_code == 201
    wait_for(lambda: dav_checksums(server, alice, "session.bin"), timeout=30, message="the backfilled checksums")
    assert dav_checksums(server, alice, "session.bin") == rclone_checksums(data)


def test_checksums_left_missing_by_a_stop_are_filled_after_the_restart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    first = ThreadedServer(settings).start()
    alice = create_account(first.url, "alice")
    data = os.urandom(BIG)
    first.ctx.backfill.close()  # the worker stops before it gets to the upload, as a crash would stop it
    assert upload(first.url, data, "big.bin", account=alice).status_code == 201
    assert dav_checksums(first, alice, "big.bin") is None
    first.stop()

    with served_again(settings) as second:
        wait_for(lambda: dav_checksums(second, alice, "big.bin"), timeout=30, message="the start-up scan")
        assert dav_checksums(second, alice, "big.bin") == rclone_checksums(data)


def test_bytes_that_fail_their_crc_get_no_checksums_and_an_error_in_the_log(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = make_settings(tmp_path / "data")
    server = ThreadedServer(settings).start()
    try:
        alice = create_account(server.url, "alice")
        server.ctx.backfill.close()
        data = os.urandom(BIG)
        file_id = upload(server.url, data, "big.bin", account=alice).json()["id"]
        blob = next((tmp_path / "data").rglob(file_id))
        with open(blob, "r+b") as handle:  # bit rot between the upload and the backfill
            handle.seek(1000)
            handle.write(bytes([data[1000] ^ 0xFF]))
        with caplog.at_level(logging.ERROR, logger="lockr.backfill"):
            assert hash_stored_blob(server.ctx.blobs, pending_for(server, file_id)) is None
        assert "fsck --verify" in caplog.text
    finally:
        server.stop()


def test_a_backlog_larger_than_one_scan_batch_is_filled_after_a_restart(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lockr_local.server import backfill

    settings = make_settings(tmp_path / "data", inline_max=0)  # blob files: inline files have no backlog
    first = ThreadedServer(settings).start()
    alice = create_account(first.url, "alice")
    contents = {f"f{index}.bin": os.urandom(1000 + index) for index in range(5)}
    for name, data in contents.items():
        assert upload(first.url, data, name, account=alice).status_code == 201
    # As a store whose files were acknowledged without SHA-1/MD5 and then stopped.
    first.ctx.db.run_sync(lambda: StoredFile.update(sha1="", md5="").execute())
    first.stop()

    monkeypatch.setattr(backfill, "SCAN_BATCH", 2)
    with served_again(settings) as second:
        wait_for(lambda: second.ctx.backfill.filled == len(contents), timeout=30, message="the whole backlog")
        for name, data in contents.items():
            assert dav_checksums(second, alice, name) == rclone_checksums(data)


def test_while_transfers_move_bytes_the_backfill_pauses_between_blocks(
        server: Any, alice: Account, monkeypatch: pytest.MonkeyPatch) -> None:
    from lockr_local.server import backfill
    from lockr_local.server.activity import TRANSFERS

    server.ctx.backfill.close()
    data = os.urandom(3 * backfill.READ_BLOCK)
    file_id = upload(server.url, data, "big.bin", account=alice).json()["id"]
    pauses: list[float] = []
    monkeypatch.setattr(backfill, "time", type("Clock", (), {"sleep": staticmethod(pauses.append)}))
    pending = pending_for(server, file_id)
    wait_for(lambda: not TRANSFERS.busy(), message="the upload's bytes to have stopped moving")
    assert hash_stored_blob(server.ctx.blobs, pending) is not None
    assert pauses == []  # nothing else was moving
    TRANSFERS.mark()
    assert hash_stored_blob(server.ctx.blobs, pending) == backfill.RcloneDigests(
        hashlib.sha1(data).hexdigest(), hashlib.md5(data).hexdigest())
    assert pauses == [backfill.TRICKLE_PAUSE] * 3


def test_a_stopping_server_stops_the_backfill_at_the_next_block(server: Any, alice: Account) -> None:
    import threading

    server.ctx.backfill.close()
    file_id = upload(server.url, os.urandom(BIG), "big.bin", account=alice).json()["id"]
    stop = threading.Event()
    stop.set()
    assert hash_stored_blob(server.ctx.blobs, pending_for(server, file_id), stop) is None
    assert server.ctx.db.run_sync(StoredFile.get, StoredFile.file_id == file_id).md5 == ""
