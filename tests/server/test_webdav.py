"""The WebDAV view (/dav/ACCOUNT/...) with plain HTTP requests: what rclone and file managers rely on."""

from __future__ import annotations

import codecs
import email.utils
import hashlib
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import pytest
import requests

from lockr_local.server.models import InlineBlob
from tests.helpers import Account, create_account, error_code, upload

# Every server here runs on two stacks: SQLite + a folder region, PostgreSQL + a bucket region
# (tests/conftest.py, `database` and `blob_backend`).
pytestmark = [pytest.mark.both_databases, pytest.mark.blob_backends("folder", "s3")]

DAV = "{DAV:}"
OC = "{http://owncloud.org/ns}"


def dav(server: Any, account: Account, method: str, path: str, *, body: bytes | str | None = None,
        headers: dict[str, str] | None = None, auth: Any = None) -> requests.Response:
    all_headers = {} if auth is not None else dict(account.auth)
    all_headers.update(headers or {})
    return requests.request(method, f"{server.url}/dav/{path}", data=body, headers=all_headers, auth=auth,
                            timeout=30, allow_redirects=False)


def propfind(server: Any, account: Account, path: str, depth: str = "1", body: str = "") -> list[dict[str, Any]]:
    response = dav(server, account, "PROPFIND", path, body=body, headers={"Depth": depth})
    assert response.status_code == 207, response.text
    return parse_multistatus(response.content)


def parse_multistatus(content: bytes) -> list[dict[str, Any]]:
    """Each response as {href, status (of the first propstat), props: {tag: element}, missing: [tags]}."""
    entries = []
    for response in ElementTree.fromstring(content).findall(f"{DAV}response"):
        propstats = response.findall(f"{DAV}propstat")
        props: dict[str, ElementTree.Element] = {}
        missing: list[str] = []
        for propstat in propstats:
            status = propstat.findtext(f"{DAV}status") or ""
            for prop in propstat.find(f"{DAV}prop") or []:
                if " 200 " in status:
                    props[prop.tag] = prop
                else:
                    missing.append(prop.tag)
        entries.append({"href": response.findtext(f"{DAV}href"), "status": propstats[0].findtext(f"{DAV}status"),
                        "props": props, "missing": missing})
    return entries


def is_dir(entry: dict[str, Any]) -> bool:
    kind = entry["props"].get(f"{DAV}resourcetype")
    return kind is not None and kind.find(f"{DAV}collection") is not None


def hrefs(entries: list[dict[str, Any]]) -> list[str]:
    return [e["href"] for e in entries]


def put(server: Any, account: Account, path: str, data: bytes, headers: dict[str, str] | None = None
        ) -> requests.Response:
    return dav(server, account, "PUT", path, body=data, headers=headers)


def api_files(server: Any, account: Account) -> list[dict[str, Any]]:
    response = requests.get(f"{server.url}/api/v1/files", headers=account.auth, timeout=30)
    assert response.status_code == 200
    return response.json()["files"]


def blob_count(server: Any) -> int:
    """How many files' bytes the store holds: blobs in the region plus small files kept in the database."""
    blobs = sum(1 for _key in server.ctx.blobs.iter_objects("local"))
    return blobs + server.ctx.db.run_sync(InlineBlob.select().count)


@pytest.fixture
def alice(server: Any) -> Account:
    return create_account(server.url, "alice")


def test_options_advertises_dav_class_1_and_2_without_credentials(server: Any) -> None:
    response = requests.options(f"{server.url}/dav/alice/", timeout=30)
    assert response.status_code == 200
    assert response.headers["DAV"] == "1, 2"
    assert "PROPFIND" in response.headers["Allow"]


def test_missing_credentials_get_a_basic_challenge(server: Any, alice: Account) -> None:
    response = requests.request("PROPFIND", f"{server.url}/dav/alice/", timeout=30)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert error_code(response) == "unauthorized"


def test_basic_auth_with_username_or_email_lists_the_account(server: Any, alice: Account) -> None:
    for identifier in (alice.username, alice.email):
        response = dav(server, alice, "PROPFIND", "alice/", headers={"Depth": "0"},
                       auth=(identifier, alice.password))
        assert response.status_code == 207
        assert hrefs(parse_multistatus(response.content)) == ["/dav/alice/"]


def test_empty_propfind_is_allprop_with_the_200_propstat_first(server: Any, alice: Account) -> None:
    assert put(server, alice, "alice/a.txt", b"hello", {"X-OC-Mtime": "1600000000"}).status_code == 201
    entries = propfind(server, alice, "alice/a.txt", depth="0")
    assert len(entries) == 1
    entry = entries[0]
    assert entry["status"] == "HTTP/1.1 200 OK"
    props = entry["props"]
    assert props[f"{DAV}getcontentlength"].text == "5"
    assert props[f"{DAV}getlastmodified"].text == "Sun, 13 Sep 2020 12:26:40 GMT"
    assert props[f"{DAV}getetag"].text == f'"{hashlib.sha256(b"hello").hexdigest()}"'
    assert props[f"{DAV}getcontenttype"].text == "text/plain"
    assert not is_dir(entry)


def test_propfind_of_a_folder_lists_itself_first_then_its_children(server: Any, alice: Account) -> None:
    put(server, alice, "alice/a.txt", b"1")
    assert dav(server, alice, "MKCOL", "alice/docs").status_code == 201
    assert dav(server, alice, "MKCOL", "alice/docs/deep").status_code == 201
    put(server, alice, "alice/docs/deep/b.txt", b"22")
    entries = propfind(server, alice, "alice")
    assert hrefs(entries) == ["/dav/alice/", "/dav/alice/a.txt", "/dav/alice/docs/"]
    assert [is_dir(e) for e in entries] == [True, False, True]
    assert hrefs(propfind(server, alice, "alice/docs/deep")) == ["/dav/alice/docs/deep/", "/dav/alice/docs/deep/b.txt"]


def test_a_folder_holds_only_names_below_it_in_its_exact_spelling(server: Any, alice: Account) -> None:
    """Folders are ranges of names in byte order on every database (PostgreSQL's collations would put
    "Docs/x" or "docs-old" between "docs/" and "docs0")."""
    for folder in ("alice/docs", "alice/Docs", "alice/d\u00f3cs"):
        assert dav(server, alice, "MKCOL", folder).status_code == 201
    for name in ("docs/in.txt", "Docs/upper.txt", "d\u00f3cs/accent.txt", "docs-old.txt", "docs.txt"):
        assert put(server, alice, f"alice/{name}", b"x").status_code == 201
    assert hrefs(propfind(server, alice, "alice/docs")) == ["/dav/alice/docs/", "/dav/alice/docs/in.txt"]
    assert dav(server, alice, "DELETE", "alice/docs").status_code == 204
    assert sorted(f["name"] for f in api_files(server, alice)) == sorted(
        ["Docs/upper.txt", "d\u00f3cs/accent.txt", "docs-old.txt", "docs.txt"])


@pytest.mark.parametrize("path", ["alice/docs", "alice/docs/"])
def test_a_folder_answers_with_and_without_trailing_slash_never_a_redirect(server: Any, alice: Account,
                                                                         path: str) -> None:
    dav(server, alice, "MKCOL", "alice/docs")
    response = dav(server, alice, "PROPFIND", path, headers={"Depth": "0"})
    assert response.status_code == 207
    assert hrefs(parse_multistatus(response.content)) == ["/dav/alice/docs/"]


def test_requested_props_come_back_with_checksums_and_unknown_ones_as_404(server: Any, alice: Account) -> None:
    put(server, alice, "alice/x.bin", b"abc")
    body = ('<?xml version="1.0"?><d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns"><d:prop>'
            "<d:getlastmodified/><oc:checksums/><d:nonsense/></d:prop></d:propfind>")
    entry = propfind(server, alice, "alice/x.bin", depth="0", body=body)[0]
    checksums = entry["props"][f"{OC}checksums"].findtext(f"{OC}checksum")
    assert checksums == f"SHA1:{hashlib.sha1(b'abc').hexdigest()} MD5:{hashlib.md5(b'abc').hexdigest()}"
    assert entry["missing"] == [f"{DAV}nonsense"]


def test_quota_properties_report_usage_for_rclone_about(server: Any, alice: Account) -> None:
    put(server, alice, "alice/x.bin", b"12345")
    body = ('<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:quota-available-bytes/>'
            "<D:quota-used-bytes/></D:prop></D:propfind>")
    entry = propfind(server, alice, "", depth="0", body=body)[0]
    assert entry["props"][f"{DAV}quota-used-bytes"].text == "5"
    assert int(entry["props"][f"{DAV}quota-available-bytes"].text) == server.settings.default_quota - 5


def test_the_dav_root_lists_only_the_callers_own_folder(server: Any, alice: Account) -> None:
    create_account(server.url, "bob")
    assert hrefs(propfind(server, alice, "")) == ["/dav/", "/dav/alice/"]


def test_depth_infinity_is_refused(server: Any, alice: Account) -> None:
    response = dav(server, alice, "PROPFIND", "alice/", headers={"Depth": "infinity"})
    assert response.status_code == 403


def test_put_keeps_mtime_and_the_file_is_an_ordinary_lockr_file(server: Any, alice: Account) -> None:
    data = bytes(range(256)) * 40
    dav(server, alice, "MKCOL", "alice/photos")
    dav(server, alice, "MKCOL", "alice/photos/2024")
    response = put(server, alice, "alice/photos/2024/ü.bin", data, {"X-OC-Mtime": "1700000000"})
    assert response.status_code == 201
    assert response.headers["X-OC-Mtime"] == "accepted"
    [info] = api_files(server, alice)
    assert info["name"] == "photos/2024/ü.bin"
    assert info["size"] == len(data)
    assert requests.get(info["downloadUrl"], headers=alice.auth, timeout=30).content == data
    got = dav(server, alice, "GET", "alice/photos/2024/%C3%BC.bin")
    assert got.content == data
    assert got.headers["Last-Modified"] == email.utils.formatdate(1700000000, usegmt=True)
    ranged = dav(server, alice, "GET", "alice/photos/2024/ü.bin", headers={"Range": "bytes=10-19"})
    assert ranged.status_code == 206
    assert ranged.content == data[10:20]
    head = dav(server, alice, "HEAD", "alice/photos/2024/ü.bin")
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["Content-Length"] == str(len(data))
    assert head.headers["Last-Modified"] == got.headers["Last-Modified"]
    ranged_head = dav(server, alice, "HEAD", "alice/photos/2024/ü.bin", headers={"Range": "bytes=10-19"})
    assert (ranged_head.status_code, ranged_head.content) == (206, b"")
    assert ranged_head.headers["Content-Range"] == f"bytes 10-19/{len(data)}"


def test_files_uploaded_through_the_api_show_as_folders_with_checksums(server: Any, alice: Account) -> None:
    assert upload(server.url, b"api bytes", name="reports/q1.pdf", account=alice).status_code == 201
    assert hrefs(propfind(server, alice, "alice")) == ["/dav/alice/", "/dav/alice/reports/"]
    entry = propfind(server, alice, "alice/reports/q1.pdf", depth="0")[0]
    assert hashlib.md5(b"api bytes").hexdigest() in entry["props"][f"{OC}checksums"].findtext(f"{OC}checksum")


def test_put_over_an_existing_name_replaces_it_and_frees_the_old_bytes(server: Any, alice: Account) -> None:
    assert put(server, alice, "alice/a.txt", b"old old old").status_code == 201
    assert put(server, alice, "alice/a.txt", b"new").status_code == 204
    files = api_files(server, alice)
    assert [(f["name"], f["size"]) for f in files] == [("a.txt", 3)]
    assert dav(server, alice, "GET", "alice/a.txt").content == b"new"
    assert blob_count(server) == 1
    account = server.ctx.db.run_sync(server.ctx.service.account_by_username, "alice")
    assert account.used_bytes == 3


def test_a_wrong_oc_checksum_stores_nothing(server: Any, alice: Account) -> None:
    put(server, alice, "alice/a.txt", b"keep me")
    response = put(server, alice, "alice/a.txt", b"corrupted", {"OC-Checksum": "SHA1:" + "0" * 40})
    assert response.status_code == 400
    assert error_code(response) == "checksum_mismatch"
    assert dav(server, alice, "GET", "alice/a.txt").content == b"keep me"
    assert blob_count(server) == 1


def test_a_matching_oc_checksum_is_accepted(server: Any, alice: Account) -> None:
    checksum = "MD5:" + hashlib.md5(b"data").hexdigest()
    assert put(server, alice, "alice/a.txt", b"data", {"OC-Checksum": checksum}).status_code == 201


def test_put_over_quota_is_refused_up_front_and_stores_nothing(server: Any, alice: Account) -> None:
    service = server.ctx.service
    account = server.ctx.db.run_sync(service.account_by_username, "alice")
    server.ctx.db.run_sync(service.set_quota, account.id, 10)
    put(server, alice, "alice/a.txt", b"12345")
    response = put(server, alice, "alice/b.txt", b"x" * 6)
    assert response.status_code == 403
    assert error_code(response) == "quota_exceeded"
    # Replacing a file needs only the difference in size.
    assert put(server, alice, "alice/a.txt", b"x" * 10).status_code == 204
    assert [f["name"] for f in api_files(server, alice)] == ["a.txt"]
    assert blob_count(server) == 1


def test_put_over_quota_is_answered_from_its_content_length_before_any_body_byte(server: Any,
                                                                             alice: Account) -> None:
    """rclone deletes the path after a failed PUT: the refusal must come before a byte is stored."""
    import socket

    service = server.ctx.service
    account = server.ctx.db.run_sync(service.account_by_username, "alice")
    server.ctx.db.run_sync(service.set_quota, account.id, 10)
    host, port = server.url.split("//")[1].split(":")
    head = (f"PUT /dav/alice/big.bin HTTP/1.1\r\nHost: x\r\nAuthorization: {alice.auth['Authorization']}\r\n"
            "Content-Length: 5000000\r\n\r\n").encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)  # and no body at all: a body this big is not waited for
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 403"), answer[:200]
    assert b'"quota_exceeded"' in answer
    assert api_files(server, alice) == []


def test_put_over_the_plan_limit_is_413(server_factory: Any) -> None:
    server = server_factory(account_max_object="1000")
    alice = create_account(server.url, "alice")
    response = put(server, alice, "alice/big.bin", b"x" * 1001)
    assert response.status_code == 413
    assert api_files(server, alice) == []


@pytest.mark.parametrize("path, status", [
    ("alice/new", 201),
    ("alice/existing", 405),
    ("alice/file.txt", 405),
    ("alice/missing/child", 409),
    ("alice/file.txt/child", 409),
])
def test_mkcol(server: Any, alice: Account, path: str, status: int) -> None:
    dav(server, alice, "MKCOL", "alice/existing")
    put(server, alice, "alice/file.txt", b"f")
    assert dav(server, alice, "MKCOL", path).status_code == status


def test_mkcol_with_a_body_is_415(server: Any, alice: Account) -> None:
    assert dav(server, alice, "MKCOL", "alice/x", body=b"<x/>").status_code == 415


def test_put_needs_an_existing_parent_folder(server: Any, alice: Account) -> None:
    assert put(server, alice, "alice/nowhere/a.txt", b"x").status_code == 409
    assert put(server, alice, "alice/nowhere", b"x").status_code == 201
    dav(server, alice, "MKCOL", "alice/dir")
    assert put(server, alice, "alice/dir", b"x").status_code == 405


def test_an_empty_folder_persists_and_deleting_its_last_file_keeps_it(server: Any, alice: Account) -> None:
    dav(server, alice, "MKCOL", "alice/empty")
    assert "/dav/alice/empty/" in hrefs(propfind(server, alice, "alice"))
    put(server, alice, "alice/empty/only.txt", b"x")
    assert dav(server, alice, "DELETE", "alice/empty/only.txt").status_code == 204
    assert hrefs(propfind(server, alice, "alice/empty")) == ["/dav/alice/empty/"]


def test_delete_of_a_folder_removes_everything_inside_and_releases_quota(server: Any, alice: Account) -> None:
    dav(server, alice, "MKCOL", "alice/d")
    dav(server, alice, "MKCOL", "alice/d/e")
    put(server, alice, "alice/d/e/1.txt", b"11")
    put(server, alice, "alice/d/2.txt", b"222")
    put(server, alice, "alice/keep.txt", b"k")
    assert dav(server, alice, "DELETE", "alice/d/").status_code == 204
    assert hrefs(propfind(server, alice, "alice")) == ["/dav/alice/", "/dav/alice/keep.txt"]
    assert blob_count(server) == 3, "the folder's files are in the trash (tests/server/test_trash.py)"
    assert requests.delete(f"{server.url}/api/v1/trash", headers=alice.auth, timeout=30).json()["deleted"] == 2
    assert blob_count(server) == 1
    assert server.ctx.db.run_sync(server.ctx.service.account_by_username, "alice").used_bytes == 1
    assert dav(server, alice, "DELETE", "alice/d").status_code == 404


def test_the_account_folder_itself_cannot_be_deleted(server: Any, alice: Account) -> None:
    put(server, alice, "alice/a.txt", b"x")
    assert dav(server, alice, "DELETE", "alice/").status_code == 403
    assert len(api_files(server, alice)) == 1


def test_move_renames_a_file_without_copying_bytes(server: Any, alice: Account) -> None:
    put(server, alice, "alice/a.txt", b"x")
    dav(server, alice, "MKCOL", "alice/d")
    [before] = api_files(server, alice)
    response = dav(server, alice, "MOVE", "alice/a.txt",
                   headers={"Destination": f"{server.url}/dav/alice/d/b%20c.txt", "X-OC-Mtime": "1500000000"})
    assert response.status_code == 201
    assert response.headers["X-OC-Mtime"] == "accepted"
    [after] = api_files(server, alice)
    assert (after["id"], after["name"]) == (before["id"], "d/b c.txt")
    entry = propfind(server, alice, "alice/d/b c.txt", depth="0")[0]
    assert entry["props"][f"{DAV}getlastmodified"].text == email.utils.formatdate(1500000000, usegmt=True)


def test_move_of_a_folder_renames_every_name_under_it(server: Any, alice: Account) -> None:
    for folder in ("alice/src", "alice/src/sub", "alice/src/empty"):
        dav(server, alice, "MKCOL", folder)
    put(server, alice, "alice/src/a.txt", b"a")
    put(server, alice, "alice/src/sub/b.txt", b"b")
    response = dav(server, alice, "MOVE", "alice/src/", headers={"Destination": "/dav/alice/dst/"})
    assert response.status_code == 201
    assert sorted(f["name"] for f in api_files(server, alice)) == ["dst/a.txt", "dst/sub/b.txt"]
    assert hrefs(propfind(server, alice, "alice/dst")) == [
        "/dav/alice/dst/", "/dav/alice/dst/a.txt", "/dav/alice/dst/empty/", "/dav/alice/dst/sub/"]
    assert dav(server, alice, "PROPFIND", "alice/src", headers={"Depth": "0"}).status_code == 404


@pytest.mark.parametrize("overwrite, status, content", [("F", 412, b"target"), ("T", 204, b"source")])
def test_move_onto_an_existing_file_follows_overwrite(server: Any, alice: Account, overwrite: str, status: int,
                                                      content: bytes) -> None:
    put(server, alice, "alice/source.txt", b"source")
    put(server, alice, "alice/target.txt", b"target")
    response = dav(server, alice, "MOVE", "alice/source.txt",
                   headers={"Destination": "/dav/alice/target.txt", "Overwrite": overwrite})
    assert response.status_code == status
    assert dav(server, alice, "GET", "alice/target.txt").content == content
    assert blob_count(server) == (2 if overwrite == "F" else 1)


def test_copy_makes_an_independent_file(server: Any, alice: Account) -> None:
    put(server, alice, "alice/a.txt", b"shared bytes")
    assert dav(server, alice, "COPY", "alice/a.txt", headers={"Destination": "/dav/alice/b.txt"}).status_code == 201
    assert dav(server, alice, "DELETE", "alice/a.txt").status_code == 204
    assert dav(server, alice, "GET", "alice/b.txt").content == b"shared bytes"
    requests.delete(f"{server.url}/api/v1/trash", headers=alice.auth, timeout=30)  # the deleted a.txt, for good
    assert dav(server, alice, "GET", "alice/b.txt").content == b"shared bytes"
    assert server.ctx.db.run_sync(server.ctx.service.account_by_username, "alice").used_bytes == 12


def test_proppatch_of_lastmodified_sets_the_mtime(server: Any, alice: Account) -> None:
    put(server, alice, "alice/a.txt", b"x")
    body = ('<?xml version="1.0"?><d:propertyupdate xmlns:d="DAV:"><d:set><d:prop>'
            "<d:lastmodified>1400000000</d:lastmodified></d:prop></d:set></d:propertyupdate>")
    response = dav(server, alice, "PROPPATCH", "alice/a.txt", body=body)
    assert response.status_code == 207
    assert parse_multistatus(response.content)[0]["status"] == "HTTP/1.1 200 OK"
    entry = propfind(server, alice, "alice/a.txt", depth="0")[0]
    assert entry["props"][f"{DAV}getlastmodified"].text == email.utils.formatdate(1400000000, usegmt=True)


def test_lock_and_unlock_answer_so_desktop_clients_can_write(server: Any, alice: Account) -> None:
    put(server, alice, "alice/a.txt", b"x")
    body = ('<?xml version="1.0"?><d:lockinfo xmlns:d="DAV:"><d:lockscope><d:exclusive/></d:lockscope>'
            "<d:locktype><d:write/></d:locktype><d:owner>me</d:owner></d:lockinfo>")
    response = dav(server, alice, "LOCK", "alice/a.txt", body=body)
    assert response.status_code == 200
    token = response.headers["Lock-Token"]
    assert token.startswith("<opaquelocktoken:")
    assert dav(server, alice, "UNLOCK", "alice/a.txt", headers={"Lock-Token": token}).status_code == 204


def test_lock_on_a_new_path_creates_an_empty_file_that_a_put_then_fills(server: Any, alice: Account) -> None:
    assert dav(server, alice, "LOCK", "alice/new.txt").status_code == 201
    assert [(f["name"], f["size"]) for f in api_files(server, alice)] == [("new.txt", 0)]
    assert put(server, alice, "alice/new.txt", b"filled").status_code == 204
    assert [(f["name"], f["size"]) for f in api_files(server, alice)] == [("new.txt", 6)]


@pytest.mark.parametrize("method, path, headers", [
    ("PROPFIND", "bob/", {"Depth": "1"}),
    ("GET", "bob/secret.txt", {}),
    ("PUT", "bob/new.txt", {}),
    ("DELETE", "bob/secret.txt", {}),
    ("MKCOL", "bob/dir", {}),
    ("MOVE", "alice/mine.txt", {"Destination": "/dav/bob/stolen.txt"}),
    ("COPY", "alice/mine.txt", {"Destination": "/dav/bob/stolen.txt"}),
])
def test_another_accounts_folder_is_forbidden(server: Any, alice: Account, method: str, path: str,
                                              headers: dict[str, str]) -> None:
    bob = create_account(server.url, "bob")
    put(server, bob, "bob/secret.txt", b"bob's secret")
    put(server, alice, "alice/mine.txt", b"mine")
    response = dav(server, alice, method, path, body=b"x" if method == "PUT" else None, headers=headers)
    assert response.status_code == 403
    assert b"secret" not in response.content
    assert [f["name"] for f in api_files(server, bob)] == ["secret.txt"]
    assert [f["name"] for f in api_files(server, alice)] == ["mine.txt"]


@pytest.mark.parametrize("path", ["alice/%2e%2e/bob/x", "alice/a/%2E/b", "alice/bad%ff"])
def test_unusable_paths_are_400(server: Any, alice: Account, path: str) -> None:
    assert put(server, alice, path, b"x").status_code == 400
    assert api_files(server, alice) == []


@pytest.mark.parametrize("crash_point, inline_max, listed", [
    ("after_blob_commit", "0", b"old"),
    ("after_db_commit", "0", b"new"),
    ("before_inline_commit", "64KiB", b"old"),
    ("after_db_commit", "64KiB", b"new"),
])
def test_a_crash_during_a_replacing_put_leaves_the_old_or_the_new_file(tmp_path: Path, crash_point: str,
                                                                       inline_max: str, listed: bytes) -> None:
    from tests.helpers import ServerProcess

    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir, env={"LOCKR_INLINE_MAX": inline_max}).start()
    try:
        alice = create_account(server.url, "alice")
        put(server, alice, "alice/a.txt", b"old")
        server.stop()
        server.env["LOCKR_CRASH_POINT"] = crash_point
        server.start()
        with pytest.raises(requests.ConnectionError):
            put(server, alice, "alice/a.txt", b"new")
        server.proc.wait(10)  # type: ignore[union-attr]
        server.env.pop("LOCKR_CRASH_POINT")
        server.start()
        assert dav(server, alice, "GET", "alice/a.txt").content == listed
        assert len(api_files(server, alice)) == 1
    finally:
        server.stop()


# An internal entity the LOCK answer would echo back (inside <d:owner>) and a PROPPATCH would store.
_DTD = '<!DOCTYPE d:x [<!ENTITY boom "ENTITY-EXPANDED">]>'
_HOSTILE_BODIES = {
    "PROPFIND": f'{_DTD}<d:propfind xmlns:d="DAV:"><d:prop><d:displayname/></d:prop></d:propfind>',
    "PROPPATCH": (f'{_DTD}<d:propertyupdate xmlns:d="DAV:"><d:set><d:prop><d:lastmodified>1400000000'
                  "</d:lastmodified><d:note>&boom;</d:note></d:prop></d:set></d:propertyupdate>"),
    "LOCK": (f'{_DTD}<d:lockinfo xmlns:d="DAV:"><d:lockscope><d:exclusive/></d:lockscope>'
             "<d:locktype><d:write/></d:locktype><d:owner>&boom;</d:owner></d:lockinfo>"),
}
_ENCODINGS = {
    "utf-8": lambda text: text.encode("utf-8"),
    "utf-8 with BOM": lambda text: codecs.BOM_UTF8 + text.encode("utf-8"),
    "utf-16 LE with BOM": lambda text: codecs.BOM_UTF16_LE + text.encode("utf-16-le"),
    "utf-16 BE with BOM": lambda text: codecs.BOM_UTF16_BE + text.encode("utf-16-be"),
    "utf-16 LE declared, no BOM": lambda text: ('<?xml version="1.0" encoding="UTF-16LE"?>' + text).encode("utf-16-le"),
    "utf-16-le declared (a name expat cannot read)":
        lambda text: ('<?xml version="1.0" encoding="utf-16-le"?>' + text).encode("utf-16-le"),
    "utf-32 with BOM": lambda text: codecs.BOM_UTF32_LE + text.encode("utf-32-le"),
    "latin-1 declared": lambda text: ('<?xml version="1.0" encoding="iso-8859-1"?>' + text).encode("latin-1"),
}


@pytest.mark.parametrize("encoding", sorted(_ENCODINGS))
@pytest.mark.parametrize("method, path", [("PROPFIND", "alice/a.txt"), ("PROPPATCH", "alice/a.txt"),
                                          ("LOCK", "alice/a.txt"), ("LOCK", "alice/new.txt")])
def test_xml_bodies_with_a_dtd_are_refused_in_every_encoding(server: Any, alice: Account, method: str, path: str,
                                                             encoding: str) -> None:
    put(server, alice, "alice/a.txt", b"x")
    before = propfind(server, alice, "alice/a.txt", depth="0")[0]["props"][f"{DAV}getlastmodified"].text
    body = _ENCODINGS[encoding](_HOSTILE_BODIES[method])
    response = dav(server, alice, method, path, body=body, headers={"Depth": "0", "Content-Type": "application/xml"})
    assert response.status_code == 400, (response.status_code, response.text)
    assert error_code(response) == "bad_request"
    assert b"ENTITY-EXPANDED" not in response.content
    # Nothing was done: no lock-created file, no changed modification time.
    assert [f["name"] for f in api_files(server, alice)] == ["a.txt"]
    assert propfind(server, alice, "alice/a.txt", depth="0")[0]["props"][f"{DAV}getlastmodified"].text == before


@pytest.mark.parametrize("encoding", ["utf-16 LE with BOM", "utf-16 BE with BOM", "utf-8 with BOM"])
def test_xml_bodies_without_a_dtd_are_read_in_utf16_and_with_a_bom(server: Any, alice: Account,
                                                                   encoding: str) -> None:
    put(server, alice, "alice/a.txt", b"x")
    body = _ENCODINGS[encoding]('<d:propfind xmlns:d="DAV:"><d:prop><d:displayname/></d:prop></d:propfind>')
    response = dav(server, alice, "PROPFIND", "alice/a.txt", body=body, headers={"Depth": "0"})
    assert response.status_code == 207, response.text
    assert parse_multistatus(response.content)[0]["props"][f"{DAV}displayname"].text == "a.txt"


@pytest.mark.parametrize("method", ["MOVE", "COPY"])
@pytest.mark.parametrize("destination", ["http://[::1", "http://[::1/dav/alice/b.txt", "http://u:p@[zz]/dav/alice/b.txt"])
def test_a_destination_that_is_not_a_url_is_400(server: Any, alice: Account, method: str, destination: str) -> None:
    put(server, alice, "alice/a.txt", b"x")
    response = dav(server, alice, method, "alice/a.txt", headers={"Destination": destination})
    assert response.status_code == 400, response.text
    assert error_code(response) == "bad_request"
    assert "Destination" in response.json()["error"]["message"]
    assert [f["name"] for f in api_files(server, alice)] == ["a.txt"]
