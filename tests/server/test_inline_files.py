"""Small files kept inside the database (inline_max): stored with their row, served, copied, deleted, checked."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import requests

from lockr_local.server.models import SCHEMA_VERSION, InlineBlob, StoredFile, open_database
from tests.helpers import Account, ServerProcess, create_account, error_code, upload
from tests.server.test_durability import fsck
from tests.server.test_webdav import api_files, dav, put

SMALL = os.urandom(10 * 1024)


def blob_files(server: Any) -> list[Path]:
    root = Path(server.settings.data_dir) / "blobs" / "objects"
    return [path for path in root.rglob("*") if path.is_file()]


def inline_rows(server: Any) -> dict[str, bytes]:
    """file id -> the bytes the database holds for it."""
    rows = server.ctx.db.run_sync(lambda: list(InlineBlob.select(InlineBlob.file, InlineBlob.data).tuples()))
    return {file_id: bytes(data) for file_id, data in rows}


@pytest.fixture
def alice(server: Any) -> Account:
    return create_account(server.url, "alice")


def test_a_small_upload_is_kept_in_the_database_and_downloads_identically(server: Any, alice: Account) -> None:
    file = upload(server.url, SMALL, "small.bin", account=alice).json()
    assert file["size"] == len(SMALL) and file["sha256"] == hashlib.sha256(SMALL).hexdigest()
    assert blob_files(server) == []
    assert inline_rows(server) == {file["id"]: SMALL}
    assert [f["id"] for f in api_files(server, alice)] == [file["id"]]

    whole = requests.get(file["downloadUrl"], headers=alice.auth, timeout=30)
    assert whole.status_code == 200 and whole.content == SMALL
    assert whole.headers["ETag"] == f'"{file["sha256"]}"'
    assert whole.headers["Content-Length"] == str(len(SMALL))
    assert whole.headers["Content-Disposition"].startswith("attachment;")
    assert whole.headers["X-Content-Type-Options"] == "nosniff"
    head = requests.head(file["downloadUrl"], headers=alice.auth, timeout=30)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == str(len(SMALL)) and head.headers["ETag"] == whole.headers["ETag"]


@pytest.mark.parametrize("range_header, status, expected, content_range", [
    ("bytes=100-199", 206, SMALL[100:200], f"bytes 100-199/{len(SMALL)}"),
    ("bytes=-10", 206, SMALL[-10:], f"bytes {len(SMALL) - 10}-{len(SMALL) - 1}/{len(SMALL)}"),
    ("bytes=10000-", 206, SMALL[10000:], f"bytes 10000-{len(SMALL) - 1}/{len(SMALL)}"),
    (f"bytes={len(SMALL)}-", 416, None, f"bytes */{len(SMALL)}"),
])
def test_ranges_of_a_small_file_are_served_from_the_database(server: Any, alice: Account, range_header: str,
                                                             status: int, expected: bytes | None,
                                                             content_range: str) -> None:
    file = upload(server.url, SMALL, "small.bin", account=alice).json()
    response = requests.get(file["downloadUrl"], headers={**alice.auth, "Range": range_header}, timeout=30)
    assert response.status_code == status
    assert response.headers["Content-Range"] == content_range
    if expected is not None:
        assert response.content == expected


def test_signed_links_and_keyed_downloads_serve_a_small_file(server: Any, alice: Account) -> None:
    file = upload(server.url, SMALL, "keyed.bin", account=alice).json()
    assert requests.post(f"{server.url}/api/v1/files/{file['id']}/key", json={"key": "open sesame"},
                         headers=alice.auth, timeout=30).status_code == 200
    key_hash = hashlib.sha256(b"open sesame").hexdigest()
    assert requests.get(file["downloadUrl"], timeout=30).status_code == 403
    assert requests.get(file["downloadUrl"], params={"keyHash": key_hash}, timeout=30).content == SMALL
    link = requests.post(f"{server.url}/api/v1/files/{file['id']}/link", json={"expiresIn": 60}, headers=alice.auth,
                         timeout=30).json()["url"]
    assert requests.get(link, timeout=30).content == SMALL


def test_deleting_a_small_file_for_good_removes_its_bytes_and_releases_quota(server: Any, alice: Account) -> None:
    file = upload(server.url, SMALL, "gone.bin", account=alice).json()
    assert requests.delete(f"{server.url}/api/v1/files/{file['id']}", headers=alice.auth, timeout=30).status_code == 204
    assert list(inline_rows(server).values()) == [SMALL], "a file in the trash keeps its bytes"
    assert requests.delete(f"{server.url}/api/v1/trash/{file['id']}", headers=alice.auth, timeout=30).status_code == 204
    assert inline_rows(server) == {}
    assert requests.get(f"{server.url}/api/v1/account", headers=alice.auth, timeout=30).json()["used"] == 0
    assert requests.get(file["downloadUrl"], headers=alice.auth, timeout=30).status_code == 404


@pytest.mark.parametrize("size, inline", [(1000, True), (1001, False), (0, True)])
def test_uploads_up_to_inline_max_are_kept_in_the_database_and_bigger_ones_in_files(server_factory: Any, size: int,
                                                                                     inline: bool) -> None:
    server = server_factory(inline_max=1000)
    account = create_account(server.url)
    data = os.urandom(size)
    file = upload(server.url, data, "edge.bin", account=account).json()
    assert (file["id"] in inline_rows(server)) is inline
    assert len(blob_files(server)) == (0 if inline else 1)
    assert requests.get(file["downloadUrl"], headers=account.auth, timeout=30).content == data


def test_inline_max_0_stores_every_file_as_a_blob_file(server_factory: Any) -> None:
    server = server_factory(inline_max=0)
    account = create_account(server.url)
    files = [upload(server.url, data, f"f{len(data)}", account=account).json() for data in (b"", b"tiny", SMALL)]
    assert inline_rows(server) == {}
    assert sorted(path.name for path in blob_files(server)) == sorted(f["id"] for f in files)
    assert put(server, account, f"{account.username}/dav.txt", b"over webdav").status_code == 201
    assert inline_rows(server) == {} and len(blob_files(server)) == 4


def test_a_chunked_body_without_content_length_goes_to_a_blob_file(server: Any, alice: Account) -> None:
    response = requests.post(f"{server.url}/api/v1/upload", data=iter([SMALL[:5000], SMALL[5000:]]),
                             headers={**alice.auth, "x-file-name": "chunked.bin"}, timeout=30)
    assert response.status_code == 201
    assert inline_rows(server) == {} and [p.name for p in blob_files(server)] == [response.json()["id"]]


def test_webdav_put_get_copy_move_and_delete_of_small_files(server: Any, alice: Account) -> None:
    root = alice.username
    assert put(server, alice, f"{root}/a.txt", SMALL).status_code == 201
    assert blob_files(server) == [] and list(inline_rows(server).values()) == [SMALL]
    assert dav(server, alice, "GET", f"{root}/a.txt").content == SMALL
    ranged = dav(server, alice, "GET", f"{root}/a.txt", headers={"Range": "bytes=5-9"})
    assert ranged.status_code == 206 and ranged.content == SMALL[5:10]
    assert dav(server, alice, "HEAD", f"{root}/a.txt").headers["Content-Length"] == str(len(SMALL))

    copied = dav(server, alice, "COPY", f"{root}/a.txt", headers={"Destination": f"{server.url}/dav/{root}/b.txt"})
    assert copied.status_code == 201
    assert sorted(inline_rows(server).values()) == [SMALL, SMALL]
    assert dav(server, alice, "DELETE", f"{root}/a.txt").status_code == 204
    assert requests.delete(f"{server.url}/api/v1/trash", headers=alice.auth, timeout=30).status_code == 200
    assert dav(server, alice, "GET", f"{root}/b.txt").content == SMALL  # the copy has bytes of its own
    moved = dav(server, alice, "MOVE", f"{root}/b.txt", headers={"Destination": f"{server.url}/dav/{root}/c.txt"})
    assert moved.status_code == 201
    assert dav(server, alice, "GET", f"{root}/c.txt").content == SMALL
    assert put(server, alice, f"{root}/c.txt", b"replaced").status_code == 204
    assert list(inline_rows(server).values()) == [b"replaced"]
    assert requests.get(f"{server.url}/api/v1/account", headers=alice.auth, timeout=30).json()["used"] == 8
    assert dav(server, alice, "DELETE", f"{root}/c.txt").status_code == 204
    assert requests.delete(f"{server.url}/api/v1/trash", headers=alice.auth, timeout=30).status_code == 200
    assert inline_rows(server) == {} and blob_files(server) == []
    assert requests.get(f"{server.url}/api/v1/account", headers=alice.auth, timeout=30).json()["used"] == 0


def test_a_small_webdav_put_with_a_wrong_oc_checksum_stores_nothing(server: Any, alice: Account) -> None:
    response = put(server, alice, f"{alice.username}/a.txt", SMALL, headers={"OC-Checksum": "SHA1:" + "0" * 40})
    assert response.status_code == 400 and error_code(response) == "checksum_mismatch"
    assert inline_rows(server) == {} and api_files(server, alice) == []
    good = put(server, alice, f"{alice.username}/a.txt", SMALL,
               headers={"OC-Checksum": "SHA1:" + hashlib.sha1(SMALL).hexdigest()})
    assert good.status_code == 201


def test_fsck_verify_finds_a_flipped_byte_in_a_small_file_and_its_download_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServerProcess(data).start()
    try:
        account = create_account(server.url)
        file = upload(server.url, SMALL, "rot.bin", account=account).json()
    finally:
        server.stop()
    assert fsck(data, "--verify").stdout.strip().endswith("clean")
    with sqlite3.connect(data / "lockr.db") as database:
        rotten = bytearray(SMALL)
        rotten[500] ^= 0x01
        database.execute("UPDATE inlineblob SET data = ? WHERE file_id = ?", (bytes(rotten), file["id"]))
    quick = fsck(data)
    assert quick.returncode == 0  # the size still matches: only --verify reads the bytes
    report = fsck(data, "--verify")
    assert report.returncode == 1
    assert f"CORRUPT file {file['id']}" in report.stdout
    server.start()
    try:
        response = requests.get(file["downloadUrl"].replace(file["downloadUrl"].split("/api/")[0], server.url),
                                headers=account.auth, timeout=30)
        assert response.status_code == 500 and error_code(response) == "integrity_error"
    finally:
        server.stop()


def test_a_schema_3_store_is_upgraded_and_its_files_stay_blob_files(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    database = open_database(f"sqlite:///{path}")
    StoredFile.create(file_id="a" * 32, name="old.bin", size=3, content_type="application/octet-stream",
                      region="local", sha256="0" * 64, created_at=1.0)
    database.close()
    with sqlite3.connect(path) as raw:  # as schema 3 left it: no inline column, no InlineBlob table
        raw.execute("DROP TABLE inlineblob")
        raw.execute("ALTER TABLE storedfile DROP COLUMN inline")
        raw.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    database = open_database(f"sqlite:///{path}")
    try:
        assert database.execute_sql("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == \
            str(SCHEMA_VERSION)
        row = StoredFile.get(StoredFile.file_id == "a" * 32)
        assert row.inline is False
        assert InlineBlob.select().count() == 0
    finally:
        database.close()
