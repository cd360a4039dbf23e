"""Idempotency-Key on direct uploads and WebDAV PUT: a retry answers with the first file, never a duplicate."""

from __future__ import annotations

import os
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from lockr_local.server.models import IdempotencyKey
from tests.helpers import Account, ServerProcess, create_account, error_code, upload, wait_for
from tests.server.test_durability import stored_files
from tests.server.test_webdav import api_files, blob_count, dav, put

pytestmark = [pytest.mark.both_databases, pytest.mark.blob_backends("folder", "s3")]

SMALL = os.urandom(10 * 1024)            # stored inline (inline_max is 64 KiB)
BIG = os.urandom(200 * 1024)             # stored as a blob
KEY = '"8e03978e-40d5-43e8-bc93-6894a57f9324"'


@pytest.fixture
def alice(server: Any) -> Account:
    return create_account(server.url, "alice")


def keyed(key: str = KEY) -> dict[str, str]:
    return {"Idempotency-Key": key}


def raw_request(url: str, method: str, path: str, headers: dict[str, str], body: bytes) -> socket.socket:
    """Sends a whole request on a new connection and returns the socket, unread."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    head = f"{method} {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    sock.sendall(head.encode("latin-1") + body)
    return sock


def key_rows(server: Any) -> list[Any]:
    return server.ctx.db.run_sync(lambda: list(IdempotencyKey.select()))


def retry_until_answered(send: Any) -> requests.Response:
    """Retries while the first request is still being carried out (409 idempotency_key_in_flight)."""
    answers: list[requests.Response] = []

    def answered() -> bool:
        answers.append(send())
        return answers[-1].status_code != 409

    wait_for(answered, timeout=20, interval=0.05)
    return answers[-1]


@pytest.mark.parametrize("body", [SMALL, BIG], ids=["inline", "blob"])
def test_retry_after_a_cut_answer_returns_the_first_file_and_stores_no_duplicate(server, alice, body):
    headers = {**alice.auth, "x-file-name": "photo.jpg", "Content-Type": "image/jpeg", **keyed()}
    sock = raw_request(server.url, "POST", "/api/v1/upload", headers, body)
    sock.close()  # the client never sees the answer (a dropped connection, a client crash)
    wait_for(lambda: len(key_rows(server)) == 1, timeout=20)

    retry = retry_until_answered(lambda: upload(server.url, body, "photo.jpg", headers={
        **keyed(), "Content-Type": "image/jpeg"}, account=alice))
    assert retry.status_code == 201, retry.text
    files = api_files(server, alice)
    assert [f["id"] for f in files] == [retry.json()["id"]] == [key_rows(server)[0].file_id]
    assert retry.json()["sha256"] == files[0]["sha256"] and retry.json()["size"] == len(body)
    assert blob_count(server) == 1  # the retry's bytes were undone
    assert retry.headers["Accept-Idempotency-Key"] == "ttl=86400"
    assert requests.get(retry.json()["downloadUrl"], headers=alice.auth, timeout=30).content == body


def test_two_answered_uploads_with_one_key_give_the_same_file_and_quota_once(server, alice):
    first = upload(server.url, BIG, "a.bin", headers=keyed(), account=alice)
    second = upload(server.url, BIG, "a.bin", headers=keyed(), account=alice)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    used = requests.get(f"{server.url}/api/v1/account", headers=alice.auth, timeout=30).json()
    assert len(api_files(server, alice)) == 1 and used["used"] == len(BIG)


@pytest.mark.parametrize("body, name", [
    (SMALL[:-1] + b"x", "a.bin"),       # another body of the same size
    (SMALL + b"x", "a.bin"),            # a longer body
    (SMALL, "b.bin"),                   # the same body under another name
], ids=["other bytes", "other size", "other name"])
def test_same_key_with_a_different_request_is_422_and_stores_nothing(server, alice, body, name):
    first = upload(server.url, SMALL, "a.bin", headers=keyed(), account=alice)
    assert first.status_code == 201
    other = upload(server.url, body, name, headers=keyed(), account=alice)
    assert other.status_code == 422 and error_code(other) == "idempotency_key_reused", other.text
    assert [f["id"] for f in api_files(server, alice)] == [first.json()["id"]]
    assert blob_count(server) == 1


def test_a_key_is_per_account(server, alice):
    bob = create_account(server.url, "bob")
    mine = upload(server.url, SMALL, "a.bin", headers=keyed(), account=alice).json()
    theirs = upload(server.url, SMALL, "a.bin", headers=keyed(), account=bob).json()
    assert mine["id"] != theirs["id"]
    assert [f["id"] for f in api_files(server, bob)] == [theirs["id"]]


def test_an_expired_key_stores_the_upload_anew_and_the_reaper_forgets_it(server_factory):
    server = server_factory(idempotency_ttl="2h", reap_interval=1)
    alice = create_account(server.url, "alice")
    before = time.time()
    first = upload(server.url, SMALL, "a.bin", headers=keyed(), account=alice).json()
    [row] = key_rows(server)
    assert before + 7200 <= row.expires_at <= time.time() + 7200
    assert upload(server.url, SMALL, "a.bin", headers=keyed(), account=alice).json()["id"] == first["id"]

    # Two hours pass (for this key).
    server.ctx.db.run_sync(lambda: IdempotencyKey.update(expires_at=time.time() - 1).execute())
    again = upload(server.url, SMALL, "a.bin", headers=keyed(), account=alice)
    assert again.status_code == 201 and again.json()["id"] != first["id"]
    server.ctx.db.run_sync(lambda: IdempotencyKey.update(expires_at=time.time() - 1).execute())
    wait_for(lambda: key_rows(server) == [], timeout=20)


def test_a_key_whose_first_request_is_in_flight_is_409_then_replays(server, alice):
    headers = {**alice.auth, "x-file-name": "slow.bin", **keyed()}
    parts = urlsplit(server.url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    head = (f"POST /api/v1/upload HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Length: {len(BIG)}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n")
    sock.sendall(head.encode() + BIG[:1000])  # the body has not all arrived
    wait_for(lambda: server.ctx.idempotency._in_flight)
    busy = upload(server.url, BIG, "slow.bin", headers=keyed(), account=alice)
    assert busy.status_code == 409 and error_code(busy) == "idempotency_key_in_flight"
    sock.sendall(BIG[1000:])
    first = sock.recv(65536)
    sock.close()
    assert first.startswith(b"HTTP/1.1 201")
    retry = upload(server.url, BIG, "slow.bin", headers=keyed(), account=alice)
    assert retry.status_code == 201 and [f["id"] for f in api_files(server, alice)] == [retry.json()["id"]]


def test_webdav_put_twice_with_one_key_gives_one_file(server, alice):
    path = "alice/notes.txt"
    first = put(server, alice, path, SMALL, headers=keyed())
    second = put(server, alice, path, SMALL, headers=keyed())
    assert first.status_code == second.status_code == 201
    assert first.headers["OC-FileId"] == second.headers["OC-FileId"]
    assert second.headers["Accept-Idempotency-Key"] == "ttl=86400"
    assert [f["id"] for f in api_files(server, alice)] == [first.headers["OC-FileId"]]
    other = put(server, alice, path, BIG, headers=keyed())
    assert other.status_code == 422 and error_code(other) == "idempotency_key_reused"
    # A key of a direct upload is not one of a PUT of the same bytes and name.
    assert upload(server.url, SMALL, "notes.txt", headers=keyed(), account=alice).status_code == 422


def test_webdav_put_cut_answer_retry_replaces_nothing(server, alice):
    put(server, alice, "alice/doc.txt", b"old")
    sock = raw_request(server.url, "PUT", "/dav/alice/doc.txt", {**alice.auth, **keyed()}, BIG)
    sock.close()
    wait_for(lambda: len(key_rows(server)) == 1, timeout=20)
    retry = retry_until_answered(lambda: put(server, alice, "alice/doc.txt", BIG, headers=keyed()))
    assert retry.status_code == 204  # the first PUT replaced "old"; so does its replay
    assert [f["id"] for f in api_files(server, alice)] == [retry.headers["OC-FileId"]]
    assert dav(server, alice, "GET", "alice/doc.txt").content == BIG
    assert blob_count(server) == 1


def test_webdav_options_advertises_idempotency_keys(server):
    response = requests.options(f"{server.url}/dav/alice/", timeout=30)
    assert response.headers["Accept-Idempotency-Key"] == "ttl=86400"


@pytest.mark.parametrize("value", ['""', '"' + "a" * 256 + '"', '"unterminated', "two words", '"a\\b"'])
def test_a_malformed_key_is_400(server, alice, value):
    response = upload(server.url, SMALL, "a.bin", headers=keyed(value), account=alice)
    assert response.status_code == 400 and error_code(response) == "bad_request"
    assert response.json()["error"]["field"] == "Idempotency-Key"
    assert api_files(server, alice) == []


def test_a_bare_key_is_taken_as_the_same_key_quoted(server, alice):
    first = upload(server.url, SMALL, "a.bin", headers=keyed("abc-123"), account=alice).json()
    again = upload(server.url, SMALL, "a.bin", headers=keyed('"abc-123"'), account=alice).json()
    assert first["id"] == again["id"]


def test_guests_cannot_use_a_key(server):
    response = upload(server.url, SMALL, "a.bin", headers=keyed())
    assert response.status_code == 400 and "needs an account" in response.json()["error"]["message"]


def test_with_idempotency_ttl_0_the_header_is_ignored_and_not_advertised(server_factory):
    server = server_factory(idempotency_ttl=0)
    alice = create_account(server.url, "alice")
    first = upload(server.url, SMALL, "a.bin", headers=keyed(), account=alice)
    second = upload(server.url, SMALL, "a.bin", headers=keyed(), account=alice)
    assert first.json()["id"] != second.json()["id"]
    assert "Accept-Idempotency-Key" not in first.headers
    assert "Accept-Idempotency-Key" not in requests.options(f"{server.url}/dav/alice/", timeout=30).headers


@pytest.mark.parametrize("inline_max, body", [("0", SMALL), ("64KiB", SMALL)], ids=["blob", "inline"])
def test_a_crash_between_the_commit_and_the_answer_loses_nothing_and_the_retry_finds_the_file(tmp_path, inline_max,
                                                                                               body):
    data = tmp_path / "data"
    crashing = ServerProcess(data, env={"LOCKR_CRASH_POINT": "after_db_commit", "LOCKR_INLINE_MAX": inline_max})
    crashing.start()
    alice = create_account(crashing.url, "alice")
    with pytest.raises(requests.ConnectionError):
        upload(crashing.url, body, "a.bin", headers=keyed(), account=alice)
    assert crashing.proc is not None and crashing.proc.wait(timeout=10) == -9
    crashing.proc = None

    restarted = ServerProcess(data, env={"LOCKR_INLINE_MAX": inline_max}).start()
    try:
        retry = upload(restarted.url, body, "a.bin", headers=keyed(), account=alice)
        assert retry.status_code == 201, retry.text
        files = requests.get(f"{restarted.url}/api/v1/files", headers=alice.auth, timeout=30).json()["files"]
        assert [f["id"] for f in files] == [retry.json()["id"]]
        assert requests.get(retry.json()["downloadUrl"], headers=alice.auth, timeout=30).content == body
    finally:
        restarted.stop()
    assert stored_files(data) == 1  # the retry's bytes were not kept beside the first's


def test_deleting_an_account_deletes_its_keys(server, alice):
    upload(server.url, SMALL, "a.bin", headers=keyed(), account=alice)
    account_id = key_rows(server)[0].account_id
    server.ctx.db.run_sync(server.ctx.service.delete_account, account_id)
    assert key_rows(server) == []
