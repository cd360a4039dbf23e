"""Resumable sessions with Google Cloud Storage semantics, against the real server on loopback."""

from __future__ import annotations

import hashlib
import http.client
import socket
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.helpers import create_account, error_code, upload, wait_for
from tests.server.session_tools import (
    ChunkUploader, download, open_session, put_chunk, sha256, status, stored_offset,
)

# Every server here runs on two stacks: SQLite + a folder region, PostgreSQL + a bucket region
# (tests/conftest.py, `database` and `blob_backend`).
pytestmark = [pytest.mark.both_databases, pytest.mark.blob_backends("folder", "s3")]

KIB = 1024
DATA = bytes(range(256)) * (4 * KIB) + b"odd tail"  # 1 MiB + 8 bytes


def account_info(base_url: str, account: Any) -> dict[str, Any]:
    return dict(requests.get(f"{base_url}/api/v1/account", headers=account.auth, timeout=30).json())


def raw_put(url: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
    """A PUT with exactly these headers (requests would fix a wrong Content-Length for us)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.putrequest("PUT", parts.path, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        conn.send(body)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


# -- creating sessions ------------------------------------------------------------------------------


def test_create_session_returns_id_urls_expiry_and_reserves_the_size(server):
    account = create_account(server.url)
    response = requests.post(f"{server.url}/api/v1/upload/session", headers=account.auth,
                             json={"name": "whitepaper.pdf", "size": 1_048_576, "type": "application/pdf"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "uploadUrl", "downloadUrl", "expiresAt"}
    session_id = body["uploadUrl"].rsplit("/", 1)[1]
    assert len(session_id) == 32 and session_id != body["id"]
    assert body["uploadUrl"] == f"{server.url}/api/v1/upload/session/{session_id}"
    assert response.headers["Location"] == body["uploadUrl"]
    assert body["downloadUrl"] == f"{server.url}/api/v1/download/local/{body['id']}/whitepaper.pdf"
    assert body["expiresAt"].endswith("Z")
    info = account_info(server.url, account)
    assert info["reserved"] == 1_048_576 and info["used"] == 0


def test_guest_may_open_a_session_without_credentials(server):
    session = open_session(server.url, len(DATA))
    response = requests.put(session["uploadUrl"], data=DATA)
    assert response.status_code == 201, response.text
    assert download(response.json()) == DATA


@pytest.mark.parametrize("body,who,status_code,code", [
    ({"size": 10, "type": "text/plain"}, "account", 400, "bad_request"),
    ({"name": "a", "size": -1}, "account", 400, "bad_request"),
    ({"name": "a", "size": "10"}, "account", 400, "bad_request"),
    ({"name": "a", "size": True}, "account", 400, "bad_request"),
    ({"name": "a"}, "account", 400, "bad_request"),
    ({"name": "../etc/passwd", "size": 10}, "account", 400, "invalid_name"),
    ({"name": "a", "size": 10, "type": "not a type"}, "account", 400, "bad_request"),
    ({"name": "a", "size": 10, "region": "mars-1"}, "account", 400, "unknown_region"),
    ({"name": "a", "size": 10, "keyHash": "short"}, "account", 400, "bad_request"),
    ({"name": "a", "size": 10, "keyHash": "a" * 64}, "guest", 403, "guest_key_forbidden"),
    ({"name": "a", "size": 1001}, "guest", 413, "too_large"),
    ({"name": "a", "size": 5001}, "account", 413, "too_large"),
    ({"name": "a", "size": 4001}, "full", 403, "quota_exceeded"),
])
def test_create_session_rejects_bad_requests_before_any_byte(server_factory, body, who, status_code, code):
    srv = server_factory(guest_max_object="1000", account_max_object="5000", default_quota="8000")
    headers: dict[str, str] = {}
    if who != "guest":
        account = create_account(srv.url)
        headers = account.auth
        if who == "full":
            open_session(srv.url, 4000, account=account)
    response = requests.post(f"{srv.url}/api/v1/upload/session", json=body, headers=headers)
    assert response.status_code == status_code, response.text
    assert error_code(response) == code


def test_reservations_count_against_the_quota_until_completion_or_cancel(server_factory):
    srv = server_factory(default_quota="10000")
    account = create_account(srv.url)
    first = open_session(srv.url, 6000, account=account)
    refused = requests.post(f"{srv.url}/api/v1/upload/session", headers=account.auth,
                            json={"name": "b", "size": 5000})
    assert error_code(refused) == "quota_exceeded"
    assert account_info(srv.url, account)["reserved"] == 6000

    assert requests.delete(first["uploadUrl"]).status_code == 204
    assert account_info(srv.url, account)["reserved"] == 0
    assert status(first["uploadUrl"]).status_code == 404

    second = open_session(srv.url, 5000, account=account)
    data = b"q" * 5000
    done = requests.put(second["uploadUrl"], data=data)
    assert done.status_code == 201
    info = account_info(srv.url, account)
    assert (info["reserved"], info["used"]) == (0, 5000)
    assert download(done.json(), account) == data


# -- PUT uploadUrl ----------------------------------------------------------------------------------


def test_whole_body_put_completes_lists_and_downloads_identically(server):
    account = create_account(server.url)
    session = open_session(server.url, len(DATA), "docs/report.bin", account)
    response = requests.put(session["uploadUrl"], data=DATA, headers={"Content-Type": "application/pdf"})
    assert response.status_code == 201, response.text
    file = response.json()
    assert file["id"] == session["id"]
    assert file["downloadUrl"] == session["downloadUrl"]
    assert file["size"] == len(DATA) and file["name"] == "docs/report.bin"
    assert file["sha256"] == sha256(DATA)
    listing = requests.get(f"{server.url}/api/v1/files", headers=account.auth).json()["files"]
    assert [f["id"] for f in listing] == [session["id"]]
    assert sha256(download(file, account)) == sha256(DATA)


@pytest.mark.parametrize("chunk_size", [256 * KIB, 512 * KIB, 300_001, len(DATA)])
def test_chunks_answer_308_with_range_then_201(server, chunk_size):
    account = create_account(server.url)
    session = open_session(server.url, len(DATA), account=account)
    url, offset = session["uploadUrl"], 0
    while True:
        chunk = DATA[offset:offset + chunk_size]
        response = put_chunk(url, chunk, offset, len(DATA))
        offset += len(chunk)
        if offset < len(DATA):
            assert (response.status_code, response.reason) == (308, "Resume Incomplete"), response.text
            assert response.headers["Range"] == f"bytes=0-{offset - 1}"
            assert response.json() == {"offset": offset, "size": len(DATA)}
            listing = requests.get(f"{server.url}/api/v1/files", headers=account.auth).json()["files"]
            assert listing == [], "an incomplete upload must not be listed"
        else:
            assert response.status_code == 201, response.text
            break
    file = response.json()
    assert file["sha256"] == sha256(DATA)
    assert sha256(download(file, account)) == sha256(DATA)


@pytest.mark.parametrize("total", ["*", "TOTAL"])
def test_status_query_reports_nothing_then_the_stored_range_then_the_file(server, total):
    session = open_session(server.url, len(DATA))
    url = session["uploadUrl"]
    query = {"Content-Range": f"bytes */{len(DATA) if total == 'TOTAL' else '*'}"}

    empty = requests.put(url, headers=query)
    assert empty.status_code == 308
    assert "Range" not in empty.headers

    assert put_chunk(url, DATA[:256 * KIB], 0, len(DATA)).status_code == 308
    middle = requests.put(url, headers=query)
    assert middle.status_code == 308
    assert middle.headers["Range"] == f"bytes=0-{256 * KIB - 1}"

    assert put_chunk(url, DATA[256 * KIB:], 256 * KIB, len(DATA)).status_code == 201
    done = requests.put(url, headers=query)
    assert done.status_code == 201
    assert done.json()["id"] == session["id"] and done.json()["sha256"] == sha256(DATA)
    assert download(done.json()) == DATA


def test_chunk_past_the_stored_offset_returns_409_and_changes_nothing(server):
    session = open_session(server.url, len(DATA))
    url = session["uploadUrl"]
    assert put_chunk(url, DATA[:256 * KIB], 0, len(DATA)).status_code == 308
    response = put_chunk(url, DATA[512 * KIB:768 * KIB], 512 * KIB, len(DATA))
    assert response.status_code == 409
    assert error_code(response) == "offset_mismatch"
    assert response.headers["Range"] == f"bytes=0-{256 * KIB - 1}"
    assert stored_offset(status(url)) == 256 * KIB
    file = put_chunk(url, DATA[256 * KIB:], 256 * KIB, len(DATA)).json()
    assert download(file) == DATA


def test_first_chunk_past_zero_returns_409_without_range(server):
    session = open_session(server.url, len(DATA))
    response = put_chunk(session["uploadUrl"], DATA[100:200], 100, len(DATA))
    assert response.status_code == 409
    assert "Range" not in response.headers


@pytest.mark.parametrize("resend_from,resend_to", [
    (0, 256 * KIB),             # the same chunk again: all of it already stored
    (0, 512 * KIB),             # starts at 0, half new
    (128 * KIB, 384 * KIB),     # starts inside the stored part
    (0, len(DATA)),             # the whole file again completes it
])
def test_overlapping_chunk_skips_stored_bytes_and_appends_the_rest(server, resend_from, resend_to):
    session = open_session(server.url, len(DATA))
    url = session["uploadUrl"]
    assert put_chunk(url, DATA[:256 * KIB], 0, len(DATA)).status_code == 308
    response = put_chunk(url, DATA[resend_from:resend_to], resend_from, len(DATA))
    stored = max(256 * KIB, resend_to)
    if stored == len(DATA):
        assert response.status_code == 201
    else:
        assert response.status_code == 308
        assert stored_offset(response) == stored
        response = put_chunk(url, DATA[stored:], stored, len(DATA))
    assert response.json()["sha256"] == sha256(DATA)
    assert download(response.json()) == DATA


@pytest.mark.parametrize("headers,body,code", [
    ({"Content-Range": "bytes 0-9/999"}, b"x" * 10, "size_mismatch"),
    ({"Content-Range": f"bytes 0-{len(DATA)}/{len(DATA)}"}, b"x" * (len(DATA) + 1), "chunk_too_large"),
    ({"Content-Range": f"bytes 0-{len(DATA)}/*"}, b"x" * (len(DATA) + 1), "chunk_too_large"),
    ({"Content-Range": "bytes 0-9/*", "Content-Length": "11"}, b"x" * 11, "invalid_content_range"),
    ({"Content-Range": "bytes 9-0/*"}, b"", "invalid_content_range"),
    ({"Content-Range": "items 0-9/10"}, b"x" * 10, "invalid_content_range"),
    ({"Content-Range": f"bytes */{len(DATA)}"}, b"body", "invalid_content_range"),
    ({"Content-Range": "bytes */5"}, b"", "size_mismatch"),
    ({}, b"too short", "size_mismatch"),
])
def test_bad_chunks_return_400_and_lose_nothing(server, headers, body, code):
    session = open_session(server.url, len(DATA))
    url = session["uploadUrl"]
    assert put_chunk(url, DATA[:256 * KIB], 0, len(DATA)).status_code == 308
    all_headers = {"Content-Length": str(len(body)), **headers}
    status_code, _, reply = raw_put(url, all_headers, body)
    assert status_code == 400, reply
    assert requests.models.complexjson.loads(reply)["error"]["code"] == code
    assert stored_offset(status(url)) == 256 * KIB
    file = put_chunk(url, DATA[256 * KIB:], 256 * KIB, len(DATA)).json()
    assert download(file) == DATA


def test_chunked_body_longer_than_its_range_returns_400_and_keeps_the_stored_prefix(server):
    session = open_session(server.url, len(DATA))
    url = session["uploadUrl"]
    assert put_chunk(url, DATA[:256 * KIB], 0, len(DATA)).status_code == 308

    def body() -> Any:
        yield DATA[256 * KIB:300 * KIB]
        yield DATA[300 * KIB:600 * KIB]

    response = requests.put(url, data=body(), headers={"Content-Range": f"bytes {256 * KIB}-{400 * KIB - 1}/*"})
    assert response.status_code == 400
    assert error_code(response) == "invalid_content_range"
    assert stored_offset(status(url)) == 256 * KIB
    assert download(put_chunk(url, DATA[256 * KIB:], 256 * KIB, len(DATA)).json()) == DATA


def test_whole_chunked_body_is_accepted_without_content_length(server):
    session = open_session(server.url, len(DATA))

    def body() -> Any:
        for start in range(0, len(DATA), 100_000):
            yield DATA[start:start + 100_000]

    response = requests.put(session["uploadUrl"], data=body())
    assert response.status_code == 201, response.text
    assert download(response.json()) == DATA


def test_empty_file_session_completes_on_an_empty_put(server):
    session = open_session(server.url, 0, "empty.txt")
    assert requests.put(session["uploadUrl"], data=b"").status_code == 201
    assert download(status(session["uploadUrl"]).json()) == b""


@pytest.mark.parametrize("path", ["0" * 32, "not-a-session", "A" * 32])
def test_unknown_session_url_returns_404(server, path):
    response = status(f"{server.url}/api/v1/upload/session/{path}")
    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_session_with_key_hash_makes_a_keyed_file(server):
    account = create_account(server.url)
    key_hash = hashlib.sha256(b"open sesame").hexdigest()
    session = open_session(server.url, 5, account=account, keyHash=key_hash)
    file = requests.put(session["uploadUrl"], data=b"hello").json()
    assert file["hasKey"] is True
    assert requests.get(file["downloadUrl"]).status_code == 403
    assert requests.get(file["downloadUrl"], params={"keyHash": key_hash}).content == b"hello"


def test_cancel_deletes_partial_bytes_and_releases_the_reservation(server):
    account = create_account(server.url)
    session = open_session(server.url, len(DATA), account=account)
    url = session["uploadUrl"]
    assert put_chunk(url, DATA[:256 * KIB], 0, len(DATA)).status_code == 308
    assert len(list(server.ctx.blobs.partial_sessions("local"))) == 1
    assert requests.delete(url).status_code == 204
    assert list(server.ctx.blobs.partial_sessions("local")) == []
    assert account_info(server.url, account)["reserved"] == 0
    assert put_chunk(url, DATA[:10], 0, len(DATA)).status_code == 404


def test_direct_uploads_still_work_beside_sessions(server):
    assert upload(server.url, b"plain").status_code == 201


# -- two writers ------------------------------------------------------------------------------------


def test_second_writer_gets_409_session_busy_and_bytes_never_interleave(server):
    session = open_session(server.url, len(DATA))
    url = session["uploadUrl"]
    session_id = url.rsplit("/", 1)[1]
    parts = urlsplit(url)
    first_chunk = DATA[:512 * KIB]
    head = (f"PUT {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Length: {len(first_chunk)}\r\n"
            f"Content-Range: bytes 0-{len(first_chunk) - 1}/{len(DATA)}\r\n\r\n").encode()
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as writer_a:
        writer_a.sendall(head + first_chunk[:100 * KIB])
        wait_for(lambda: session_id in server.ctx.sessions.live.busy(), message="writer A to hold the session")

        intruder = put_chunk(url, b"B" * (512 * KIB), 0, len(DATA))
        assert intruder.status_code == 409
        assert error_code(intruder) == "session_busy"

        writer_a.sendall(first_chunk[100 * KIB:])
        reply = writer_a.recv(65536)
        assert reply.startswith(b"HTTP/1.1 308"), reply
    assert stored_offset(status(url)) == 512 * KIB
    file = put_chunk(url, DATA[512 * KIB:], 512 * KIB, len(DATA)).json()
    assert download(file) == DATA


def test_concurrent_uploaders_of_one_session_finish_with_the_right_bytes(server):
    import threading

    session = open_session(server.url, len(DATA))
    results: list[dict[str, Any]] = []
    uploaders = [ChunkUploader(session["uploadUrl"], DATA, 128 * KIB) for _ in range(3)]
    threads = [threading.Thread(target=lambda u=u: results.append(u.run())) for u in uploaders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 3
    assert {r["sha256"] for r in results} == {sha256(DATA)}
    assert download(results[0]) == DATA


def test_access_log_never_shows_a_whole_upload_url(server, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="lockr.access")
    session = open_session(server.url, len(DATA))
    session_id = session["uploadUrl"].rsplit("/", 1)[1]
    assert status(session["uploadUrl"]).status_code == 308
    lines = wait_for(lambda: [r.getMessage() for r in caplog.records if "PUT" in r.getMessage()],
                     message="the access log line")
    assert f"/api/v1/upload/session/{session_id[:8]}..." in lines[0]
    assert session_id not in "\n".join(r.getMessage() for r in caplog.records)
