"""The trash: deletes (API, WebDAV) that can be undone, restored with the same id and links, deleted for good,
emptied, purged after trash_retention, counted against the quota, and consistent for fsck."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from lockr_local.server import trash
from lockr_local.server.blobstore import BlobLocation
from lockr_local.server.fsck import check_store, reap_orphans
from lockr_local.server.models import SCHEMA_VERSION, StoredFile, open_database
from tests.helpers import Account, create_account, error_code, upload, wait_for

# SQLite + a folder region, and PostgreSQL + a bucket region (tests/conftest.py).
pytestmark = [pytest.mark.both_databases, pytest.mark.blob_backends("folder", "s3")]

BIG = b"t" * 100_000  # past inline_max: a blob in the region, not bytes in the database


def api(server: Any, account: Account, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, f"{server.url}{path}", headers=account.auth, timeout=30, **kwargs)


def used(server: Any, account: Account) -> int:
    return int(api(server, account, "GET", "/api/v1/account").json()["used"])


def trash_ids(server: Any, account: Account) -> list[str]:
    response = api(server, account, "GET", "/api/v1/trash")
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["files"]]


def listed_ids(server: Any, account: Account) -> list[str]:
    return [item["id"] for item in api(server, account, "GET", "/api/v1/files").json()["files"]]


def has_bytes(server: Any, file: dict[str, Any]) -> bool:
    return server.ctx.blobs.size(BlobLocation(file["region"], file["id"])) is not None


def fsck(server: Any) -> Any:
    return server.ctx.db.run_sync(check_store, server.ctx.db.peewee, server.ctx.blobs)


def test_a_deleted_file_leaves_listings_and_downloads_but_keeps_its_bytes_and_quota(server):
    alice = create_account(server.url)
    file = upload(server.url, BIG, "report.pdf", account=alice).json()
    signed = api(server, alice, "POST", f"/api/v1/files/{file['id']}/link", json={"expiresIn": 3600}).json()["url"]
    assert api(server, alice, "DELETE", f"/api/v1/files/{file['id']}").status_code == 204

    assert listed_ids(server, alice) == []
    in_trash = api(server, alice, "GET", f"/api/v1/files/{file['id']}")
    assert in_trash.status_code == 404 and "in your trash" in in_trash.json()["error"]["message"]
    assert requests.get(file["downloadUrl"], headers=alice.auth, timeout=30).status_code == 404
    assert requests.get(file["downloadUrl"], timeout=30).status_code == 404  # the share link
    assert requests.get(f"{server.url}/download/{file['id']}", timeout=30).status_code == 404
    refused = requests.get(signed, timeout=30)
    assert refused.status_code == 403 and error_code(refused) == "link_invalid"
    assert api(server, alice, "DELETE", f"/api/v1/files/{file['id']}").status_code == 404

    listing = api(server, alice, "GET", "/api/v1/trash").json()
    [item] = listing["files"]
    assert item["id"] == file["id"] and item["name"] == "report.pdf" and item["size"] == len(BIG)
    assert item["deletedAt"] <= item["purgeAt"]
    assert listing["count"] == 1 and listing["bytes"] == len(BIG) and listing["retention"] == 30 * 86400
    assert used(server, alice) == len(BIG), "trashed bytes count against the quota"
    assert has_bytes(server, file)
    report = fsck(server)
    assert report.clean and report.files_in_trash == 1, report.lines()


def test_restore_brings_back_the_same_id_with_its_share_and_signed_links(server):
    alice = create_account(server.url)
    file = upload(server.url, BIG, "photo.jpg", account=alice).json()
    signed = api(server, alice, "POST", f"/api/v1/files/{file['id']}/link", json={"expiresIn": 3600}).json()["url"]
    api(server, alice, "DELETE", f"/api/v1/files/{file['id']}")

    restored = api(server, alice, "POST", f"/api/v1/trash/{file['id']}/restore")
    assert restored.status_code == 200, restored.text
    assert {k: restored.json()[k] for k in ("id", "name", "downloadUrl")} == \
        {k: file[k] for k in ("id", "name", "downloadUrl")}
    assert listed_ids(server, alice) == [file["id"]] and trash_ids(server, alice) == []
    assert requests.get(file["downloadUrl"], timeout=30).content == BIG
    assert requests.get(signed, timeout=30).content == BIG
    assert used(server, alice) == len(BIG)
    assert api(server, alice, "POST", f"/api/v1/trash/{file['id']}/restore").status_code == 404


def test_a_name_taken_while_in_the_trash_comes_back_as_restored(server):
    alice = create_account(server.url)
    old = upload(server.url, b"old bytes", "docs/report.pdf", account=alice).json()
    api(server, alice, "DELETE", f"/api/v1/files/{old['id']}")
    new = upload(server.url, b"new bytes", "docs/report.pdf", account=alice).json()
    second = upload(server.url, b"second", "docs/report (restored).pdf", account=alice).json()

    restored = api(server, alice, "POST", f"/api/v1/trash/{old['id']}/restore").json()
    assert restored["id"] == old["id"] and restored["name"] == "docs/report (restored 2).pdf"
    names = {f["id"]: f["name"] for f in api(server, alice, "GET", "/api/v1/files").json()["files"]}
    assert names == {old["id"]: "docs/report (restored 2).pdf", new["id"]: "docs/report.pdf",
                     second["id"]: "docs/report (restored).pdf"}
    assert requests.get(restored["downloadUrl"], timeout=30).content == b"old bytes"


def test_delete_forever_and_empty_release_the_quota_and_remove_the_bytes(server):
    alice = create_account(server.url)
    files = [upload(server.url, BIG + bytes([i]), f"f{i}.bin", account=alice).json() for i in range(3)]
    small = upload(server.url, b"inline", "small.txt", account=alice).json()
    for file in [*files, small]:
        api(server, alice, "DELETE", f"/api/v1/files/{file['id']}")
    assert used(server, alice) == 3 * (len(BIG) + 1) + 6

    assert api(server, alice, "DELETE", f"/api/v1/trash/{files[0]['id']}").status_code == 204
    assert not has_bytes(server, files[0]) and used(server, alice) == 2 * (len(BIG) + 1) + 6
    assert api(server, alice, "DELETE", f"/api/v1/trash/{files[0]['id']}").status_code == 404

    emptied = api(server, alice, "DELETE", "/api/v1/trash")
    assert emptied.status_code == 200 and emptied.json() == {"deleted": 3, "bytes": 2 * (len(BIG) + 1) + 6}
    assert trash_ids(server, alice) == [] and used(server, alice) == 0
    assert not any(has_bytes(server, f) for f in files)
    assert api(server, alice, "POST", f"/api/v1/trash/{small['id']}/restore").status_code == 404
    assert fsck(server).clean


@pytest.mark.parametrize("method, path", [
    ("POST", "/api/v1/trash/{id}/restore"),
    ("DELETE", "/api/v1/trash/{id}"),
])
@pytest.mark.parametrize("whose", ["another account's trashed file", "a live file", "an unknown id"])
def test_trash_actions_answer_404_for_what_is_not_in_the_callers_trash(server, method, path, whose):
    alice, mallory = create_account(server.url), create_account(server.url)
    file = upload(server.url, b"alice's", "mine.txt", account=alice).json()
    caller = alice
    if whose == "another account's trashed file":
        api(server, alice, "DELETE", f"/api/v1/files/{file['id']}")
        caller = mallory
    file_id = "0" * 32 if whose == "an unknown id" else file["id"]
    response = api(server, caller, method, path.format(id=file_id))
    assert response.status_code == 404 and error_code(response) == "not_found"
    assert trash_ids(server, mallory) == []
    assert (trash_ids(server, alice) == [file["id"]]) == (whose == "another account's trashed file")


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/api/v1/trash", 401),
    ("DELETE", "/api/v1/trash", 401),
    ("POST", "/api/v1/trash/" + "a" * 32 + "/restore", 401),
    ("DELETE", "/api/v1/trash/" + "a" * 32, 401),
    ("POST", "/api/v1/trash/not-an-id/restore", 404),
    ("DELETE", "/api/v1/trash/" + "f" * 64, 404),
    ("DELETE", "/api/v1/trash/%00", 404),
    ("GET", "/api/v1/trash?limit=0", 400),
    ("GET", "/api/v1/trash?limit=%D9%A1", 400),
    ("GET", "/api/v1/trash?cursor=" + "9" * 40, 400),
    ("PUT", "/api/v1/trash", 405),
])
def test_hostile_trash_requests_get_a_json_error(server, method, path, status):
    alice = create_account(server.url)
    headers = {} if status == 401 else alice.auth
    response = requests.request(method, f"{server.url}{path}", headers=headers, timeout=30)
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}


def test_the_trash_pages_with_a_cursor_like_the_files_listing(server):
    alice = create_account(server.url)
    ids = [upload(server.url, b"%d" % i, f"f{i}.txt", account=alice).json()["id"] for i in range(5)]
    for file_id in ids:
        api(server, alice, "DELETE", f"/api/v1/files/{file_id}")
    seen, cursor = [], None
    while True:
        page = api(server, alice, "GET", "/api/v1/trash", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        seen += [item["id"] for item in page.json()["files"]]
        cursor = page.json()["next"]
        if cursor is None:
            break
    assert seen == ids


def test_trashed_bytes_count_against_the_quota_until_the_trash_is_emptied(server_factory):
    small = server_factory(default_quota="250KB")
    alice = create_account(small.url)
    first = upload(small.url, BIG * 2, "first.bin", account=alice).json()
    api(small, alice, "DELETE", f"/api/v1/files/{first['id']}")
    refused = upload(small.url, BIG, "second.bin", account=alice)
    assert refused.status_code == 403 and error_code(refused) == "quota_exceeded"
    assert used(small, alice) == 2 * len(BIG)
    api(small, alice, "DELETE", "/api/v1/trash")
    assert upload(small.url, BIG, "second.bin", account=alice).status_code == 201
    assert used(small, alice) == len(BIG)
    assert fsck(small).clean


def test_with_trash_retention_0_a_delete_is_final_as_before(server_factory):
    server = server_factory(trash_retention=0)
    alice = create_account(server.url)
    file = upload(server.url, BIG, "gone.bin", account=alice).json()
    assert api(server, alice, "DELETE", f"/api/v1/files/{file['id']}").status_code == 204
    assert used(server, alice) == 0 and not has_bytes(server, file)
    assert trash_ids(server, alice) == []
    assert api(server, alice, "POST", f"/api/v1/trash/{file['id']}/restore").status_code == 404


def test_the_reaper_purges_files_older_than_the_retention(server_factory):
    server = server_factory(trash_retention="1h", reap_interval=1)
    alice = create_account(server.url)
    old, recent = (upload(server.url, BIG + name.encode(), name, account=alice).json() for name in ("old", "recent"))
    for file in (old, recent):
        api(server, alice, "DELETE", f"/api/v1/files/{file['id']}")

    def backdate() -> None:  # as if `old` had been deleted two hours ago
        StoredFile.update(deleted_at=time.time() - 7200).where(StoredFile.file_id == old["id"]).execute()

    server.ctx.db.run_sync(backdate)
    wait_for(lambda: trash_ids(server, alice) == [recent["id"]], timeout=15)
    assert not has_bytes(server, old) and has_bytes(server, recent)
    assert used(server, alice) == len(BIG) + len("recent")
    assert fsck(server).clean


def test_a_crash_between_purging_a_row_and_its_bytes_leaves_only_orphan_bytes(server):
    """Rows go first: what a crash leaves is bytes without a row (removed at start-up), never a row
    without bytes."""
    alice = create_account(server.url)
    file = upload(server.url, BIG, "doomed.bin", account=alice).json()
    api(server, alice, "DELETE", f"/api/v1/files/{file['id']}")
    server.ctx.db.run_sync(trash.take_expired, time.time() + 1)  # the purge's transaction, then the "crash"
    report = fsck(server)
    assert report.missing_bytes == [] and report.quota_mismatches == []
    if server.settings.regions:  # a bucket: the orphan listing is the object store's
        assert file["id"] in report.orphan_objects
    else:
        assert report.orphan_objects == [file["id"]]
    server.ctx.db.run_sync(reap_orphans, server.ctx.blobs)  # what the next start does
    assert fsck(server).clean


def test_webdav_delete_puts_files_and_folders_in_the_trash(server):
    alice = create_account(server.url, "alice")
    dav = f"{server.url}/dav/alice"
    for path, data in (("a.txt", b"aaa"), ("d/1.txt", b"1"), ("d/e/2.txt", b"22"), ("keep.txt", b"k")):
        if "/" in path:
            requests.request("MKCOL", f"{dav}/{path.rsplit('/', 1)[0]}", headers=alice.auth, timeout=30)
        assert requests.put(f"{dav}/{path}", data=data, headers=alice.auth, timeout=30).status_code == 201
    assert requests.delete(f"{dav}/a.txt", headers=alice.auth, timeout=30).status_code == 204
    assert requests.delete(f"{dav}/d/", headers=alice.auth, timeout=30).status_code == 204

    listing = requests.request("PROPFIND", f"{dav}/", headers={"Depth": "1", **alice.auth}, timeout=30).text
    assert "keep.txt" in listing and "a.txt" not in listing and "/d/" not in listing
    trashed = {item["name"]: item for item in api(server, alice, "GET", "/api/v1/trash").json()["files"]}
    assert sorted(trashed) == ["a.txt", "d/1.txt", "d/e/2.txt"]
    assert used(server, alice) == 7

    # The name is free again; the old file comes back beside the new one.
    assert requests.put(f"{dav}/a.txt", data=b"new", headers=alice.auth, timeout=30).status_code == 201
    assert api(server, alice, "POST", f"/api/v1/trash/{trashed['a.txt']['id']}/restore").json()["name"] == \
        "a (restored).txt"
    assert api(server, alice, "POST", f"/api/v1/trash/{trashed['d/e/2.txt']['id']}/restore").status_code == 200
    assert requests.get(f"{dav}/a.txt", headers=alice.auth, timeout=30).content == b"new"
    assert requests.get(f"{dav}/a%20(restored).txt", headers=alice.auth, timeout=30).content == b"aaa"
    assert requests.get(f"{dav}/d/e/2.txt", headers=alice.auth, timeout=30).content == b"22"
    assert fsck(server).clean


def test_a_store_of_schema_7_is_upgraded_with_an_empty_trash(tmp_path, database):
    url = database.new_url() or f"sqlite:///{tmp_path / 'old.db'}"
    opened = open_database(url)
    StoredFile.create(file_id="b" * 32, name="old.bin", size=3, content_type="application/octet-stream",
                      region="local", sha256="0" * 64, created_at=1.0)
    for statement in ('DROP INDEX "storedfile_deleted_at"', "ALTER TABLE storedfile DROP COLUMN deleted_at",
                      "UPDATE meta SET value = '7' WHERE key = 'schema_version'"):
        opened.execute_sql(statement)
    opened.close()
    opened = open_database(url)
    try:
        assert opened.execute_sql("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == \
            str(SCHEMA_VERSION) == "8"
        assert StoredFile.select().where(StoredFile.live()).count() == 1
        assert "storedfile_deleted_at" in {index.name for index in opened.get_indexes("storedfile")}
    finally:
        opened.close()


@pytest.mark.parametrize("name, number, expected", [
    ("report.pdf", 1, "report (restored).pdf"),
    ("docs/report.pdf", 2, "docs/report (restored 2).pdf"),
    ("docs.v2/README", 1, "docs.v2/README (restored)"),
    (".bashrc", 1, ".bashrc (restored)"),
    ("archive.tar.gz", 1, "archive.tar (restored).gz"),
    ("é" * 125 + ".txt", 1, "é" * 120 + " (restored).txt"),     # 255 bytes a segment at most
    ("d/" * 400 + "x" * 220, 1, "d/" * 400 + "x" * 213 + " (restored)"),  # 1024 bytes in all
])
def test_a_restored_name_keeps_its_extension_and_the_name_limits(name, number, expected):
    from lockr_local.names import normalize_name

    restored = trash.restored_name(name, number)
    assert restored == expected
    assert normalize_name(restored) == restored
