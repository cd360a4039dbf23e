"""tus 1.0.0 on lockr-local sessions, with the real `tuspy` client and with raw requests."""

from __future__ import annotations

import base64
import hashlib
import io
from typing import Any

import pytest
import requests
from tusclient import client as tus_client

from tests.faultproxy import FaultProxy
from tests.helpers import create_account, error_code, wait_for
from tests.server.session_tools import download, put_chunk, sha256

# Every server here runs on two stacks: SQLite + a folder region, PostgreSQL + a bucket region
# (tests/conftest.py, `database` and `blob_backend`).
pytestmark = [pytest.mark.both_databases, pytest.mark.blob_backends("folder", "s3")]

KIB = 1024
DATA = bytes((i * 13 + i // 509) % 256 for i in range(1024 * KIB + 999))
TUS = {"Tus-Resumable": "1.0.0"}


def tus_create(base_url: str, size: int, headers: dict[str, str] | None = None,
               metadata: str = "filename aGVsbG8udHh0,filetype dGV4dC9wbGFpbg==") -> requests.Response:
    all_headers = {**TUS, "Upload-Length": str(size), "Upload-Metadata": metadata, **(headers or {})}
    return requests.post(f"{base_url}/api/v1/tus/", headers=all_headers, timeout=30)


def tus_patch(url: str, data: bytes, offset: int, **headers: str) -> requests.Response:
    all_headers = {**TUS, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}
    all_headers.update({k.replace("_", "-"): v for k, v in headers.items()})
    return requests.patch(url, data=data, headers=all_headers, timeout=30)


def tus_head(url: str) -> requests.Response:
    return requests.head(url, headers=TUS, timeout=30)


@pytest.mark.parametrize("checksum", [False, True])
@pytest.mark.parametrize("chunk_size", [256 * KIB, 300_000, 4 * 1024 * KIB])
def test_tuspy_uploads_a_file_that_downloads_identically(server, checksum, chunk_size):
    account = create_account(server.url)
    tus = tus_client.TusClient(f"{server.url}/api/v1/tus/", headers=account.auth)
    uploader = tus.uploader(file_stream=io.BytesIO(DATA), chunk_size=chunk_size, upload_checksum=checksum,
                            metadata={"filename": "photos/holiday.jpg", "filetype": "image/jpeg"})
    uploader.upload()
    assert uploader.offset == len(DATA)
    headers = uploader.request.response_headers
    files = requests.get(f"{server.url}/api/v1/files", headers=account.auth).json()["files"]
    assert len(files) == 1
    file = files[0]
    assert (file["name"], file["type"], file["size"]) == ("photos/holiday.jpg", "image/jpeg", len(DATA))
    assert headers["lockr-file-id"] == file["id"]
    assert headers["lockr-download-url"] == file["downloadUrl"]
    assert file["sha256"] == sha256(DATA)
    assert sha256(download(file, account)) == sha256(DATA)


def test_tuspy_uploads_an_empty_file(server):
    account = create_account(server.url)
    tus = tus_client.TusClient(f"{server.url}/api/v1/tus/", headers=account.auth)
    tus.uploader(file_stream=io.BytesIO(b""), metadata={"filename": "empty.txt"}).upload()
    files = requests.get(f"{server.url}/api/v1/files", headers=account.auth).json()["files"]
    assert [(f["name"], f["size"]) for f in files] == [("empty.txt", 0)]
    assert download(files[0], account) == b""


def test_tuspy_resumes_after_cut_connections(server):
    with FaultProxy(int(server.url.rsplit(":", 1)[1])) as proxy:
        tus = tus_client.TusClient(f"{proxy.url}/api/v1/tus/")
        uploader = tus.uploader(file_stream=io.BytesIO(DATA), chunk_size=256 * KIB, retries=5, retry_delay=0,
                                metadata={"filename": "cut.bin"})
        uploader.set_url(uploader.create_url())
        proxy.arm(after=400 * KIB, action="close")
        uploader.upload()
        assert proxy.fired
        final = uploader.request.response_headers
    file_url = final["lockr-download-url"]
    assert hashlib.sha256(requests.get(file_url).content).hexdigest() == sha256(DATA)


def test_options_advertises_tus_version_extensions_size_and_checksums(server):
    response = requests.options(f"{server.url}/api/v1/tus/")
    assert response.status_code == 204
    assert response.headers["Tus-Version"] == "1.0.0"
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert set(response.headers["Tus-Extension"].split(",")) >= {"creation", "termination", "expiration",
                                                                 "checksum"}
    assert int(response.headers["Tus-Max-Size"]) == 100 * 10**9
    assert {"sha1", "sha256"} <= set(response.headers["Tus-Checksum-Algorithm"].split(","))


def test_creation_head_and_patch_follow_the_protocol(server):
    created = tus_create(server.url, len(DATA))
    assert created.status_code == 201, created.text
    url = created.headers["Location"]
    assert url.startswith(f"{server.url}/api/v1/tus/")
    assert created.headers["Upload-Expires"].endswith("GMT")

    head = tus_head(url)
    assert head.status_code == 200
    assert (head.headers["Upload-Offset"], head.headers["Upload-Length"]) == ("0", str(len(DATA)))
    assert head.headers["Cache-Control"] == "no-store"
    assert head.headers["Upload-Metadata"] == "filename aGVsbG8udHh0,filetype dGV4dC9wbGFpbg=="

    first = tus_patch(url, DATA[:500_000], 0)
    assert first.status_code == 204
    assert first.headers["Upload-Offset"] == "500000"
    assert tus_head(url).headers["Upload-Offset"] == "500000"
    last = tus_patch(url, DATA[500_000:], 500_000)
    assert last.status_code == 204
    assert last.headers["Upload-Offset"] == str(len(DATA))
    assert tus_head(url).headers["Upload-Offset"] == str(len(DATA))
    assert requests.get(last.headers["Lockr-Download-Url"]).content == DATA


@pytest.mark.parametrize("request_headers,status_code,code", [
    ({"Tus-Resumable": ""}, 412, "unsupported_version"),
    ({"Tus-Resumable": "0.2.2"}, 412, "unsupported_version"),
    ({"Content-Type": "application/octet-stream"}, 415, "unsupported_media_type"),
    ({"Upload-Offset": "100"}, 409, "offset_mismatch"),
    ({"Upload-Offset": "-1"}, 400, "bad_request"),
    ({"Upload-Checksum": "sha1 " + base64.b64encode(hashlib.sha1(b"other").digest()).decode()}, 460,
     "checksum_mismatch"),
    ({"Upload-Checksum": "crc99 AAAA"}, 400, "bad_request"),
    ({"Upload-Checksum": "sha256 !!!"}, 400, "bad_request"),
])
def test_bad_patch_is_refused_and_changes_nothing(server, request_headers, status_code, code):
    url = tus_create(server.url, len(DATA)).headers["Location"]
    assert tus_patch(url, DATA[:1000], 0).status_code == 204
    chunk = DATA[1000:3000]
    headers = {**TUS, "Upload-Offset": "1000", "Content-Type": "application/offset+octet-stream",
               **request_headers}
    response = requests.patch(url, data=chunk, headers=headers)
    assert response.status_code == status_code, response.text
    assert error_code(response) == code
    if status_code == 412:
        assert response.headers["Tus-Version"] == "1.0.0"
    assert tus_head(url).headers["Upload-Offset"] == "1000"
    done = tus_patch(url, DATA[1000:], 1000)
    assert done.status_code == 204
    assert requests.get(done.headers["Lockr-Download-Url"]).content == DATA


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "md5"])
def test_patch_with_a_matching_checksum_is_stored(server, algorithm):
    url = tus_create(server.url, len(DATA)).headers["Location"]
    digest = base64.b64encode(hashlib.new(algorithm, DATA).digest()).decode()
    response = tus_patch(url, DATA, 0, Upload_Checksum=f"{algorithm} {digest}")
    assert response.status_code == 204
    assert requests.get(response.headers["Lockr-Download-Url"]).content == DATA


def test_termination_deletes_the_upload_and_releases_the_reservation(server):
    account = create_account(server.url)
    url = tus_create(server.url, len(DATA), account.auth).headers["Location"]
    assert tus_patch(url, DATA[:1000], 0).status_code == 204

    def reserved() -> int:
        return int(requests.get(f"{server.url}/api/v1/account", headers=account.auth).json()["reserved"])

    assert reserved() == len(DATA)
    assert requests.delete(url, headers=TUS).status_code == 204
    assert tus_head(url).status_code == 404
    assert reserved() == 0
    assert list(server.ctx.blobs.partial_sessions("local")) == []


@pytest.mark.parametrize("headers,status_code,code", [
    ({"Upload-Length": "abc"}, 400, "bad_request"),
    ({"Upload-Length": "", "Upload-Defer-Length": "1"}, 400, "bad_request"),
    ({"Upload-Metadata": "filename ***"}, 400, "bad_request"),
    ({"Upload-Metadata": "filename " + base64.b64encode(b"../x").decode()}, 400, "invalid_name"),
    ({"Upload-Length": str(6 * 10**9)}, 413, "too_large"),
    ({"Tus-Resumable": "2.0.0"}, 412, "unsupported_version"),
])
def test_bad_creation_is_refused(server, headers, status_code, code):
    response = tus_create(server.url, 10, headers)
    assert response.status_code == status_code, response.text
    assert error_code(response) == code


def test_expired_upload_answers_410(server_factory):
    srv = server_factory(session_expiry=1)
    url = tus_create(srv.url, 10).headers["Location"]
    wait_for(lambda: tus_head(url).status_code == 410, message="the upload to expire")
    assert tus_patch(url, b"0123456789", 0).status_code == 410


def test_tus_upload_and_upload_url_are_the_same_session(server):
    created = tus_create(server.url, len(DATA))
    body: dict[str, Any] = created.json()
    assert tus_patch(created.headers["Location"], DATA[:300_000], 0).status_code == 204
    finished = put_chunk(body["uploadUrl"], DATA[300_000:], 300_000, len(DATA))
    assert finished.status_code == 201
    assert finished.json()["id"] == body["id"] == created.headers["Lockr-File-Id"]
    assert tus_head(created.headers["Location"]).headers["Upload-Offset"] == str(len(DATA))
    assert download(finished.json()) == DATA


def preflight(url: str, origin: str) -> requests.Response:
    return requests.options(url, headers={
        "Origin": origin, "Access-Control-Request-Method": "PATCH",
        "Access-Control-Request-Headers": "tus-resumable,upload-offset,content-type"}, timeout=10)


def test_browser_clients_of_an_allowed_origin_pass_preflight_and_can_read_tus_headers(server_factory):
    server = server_factory(cors_origins="https://app.example")
    url = tus_create(server.url, 10).headers["Location"]
    answer = preflight(url, "https://app.example")
    assert answer.status_code == 204
    assert answer.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "origin" in answer.headers["Vary"].lower()
    assert "PATCH" in answer.headers["Access-Control-Allow-Methods"]
    allowed = {h.strip().lower() for h in answer.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"tus-resumable", "upload-offset", "content-type", "authorization", "upload-checksum"} <= allowed
    patched = tus_patch(url, b"0123456789", 0, Origin="https://app.example")
    assert patched.headers["Access-Control-Allow-Origin"] == "https://app.example"
    exposed = {h.strip().lower() for h in patched.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"upload-offset", "location", "lockr-download-url"} <= exposed
    assert requests.get(patched.headers["Lockr-Download-Url"]).content == b"0123456789"
    # Error answers carry it too, so the page can read why.
    refused = tus_patch(url, b"x", 3, Origin="https://app.example")
    assert refused.status_code == 409
    assert refused.headers["Access-Control-Allow-Origin"] == "https://app.example"


def assert_no_cors(answer: requests.Response) -> None:
    granted = {name for name in answer.headers if name.lower().startswith("access-control-allow")}
    assert not granted, f"a foreign origin was granted {granted}"
    assert "access-control-expose-headers" not in {name.lower() for name in answer.headers}


@pytest.mark.parametrize("origin", ["https://evil.example", "http://127.0.0.1:1", "null",
                                    "http://127.0.0.1.evil.example"])
def test_a_foreign_origin_gets_no_cors_grant_by_default(server, origin):
    created = tus_create(server.url, 10, headers={"Origin": origin})
    assert created.status_code == 201  # CORS only decides what a browser lets the page read
    assert_no_cors(created)
    url = created.headers["Location"]
    assert_no_cors(preflight(url, origin))
    assert_no_cors(preflight(f"{server.url}/api/v1/tus/", origin))
    assert_no_cors(tus_patch(url, b"0123456789", 0, Origin=origin))
    assert_no_cors(requests.head(url, headers={**TUS, "Origin": origin}, timeout=10))


def test_the_servers_own_origin_is_allowed_by_default(server):
    url = tus_create(server.url, 10).headers["Location"]
    answer = preflight(url, server.url)
    assert answer.headers["Access-Control-Allow-Origin"] == server.url
    assert "PATCH" in answer.headers["Access-Control-Allow-Methods"]
    assert tus_patch(url, b"0123456789", 0, Origin=server.url).headers["Access-Control-Allow-Origin"] == server.url


def test_public_url_is_the_own_origin_and_listed_origins_are_added(server_factory):
    server = server_factory(public_url="https://files.example.org/lockr",
                            cors_origins="https://uppy.example.net, http://localhost:3000")
    url = f"{server.url}/api/v1/tus/"
    for origin in ("https://files.example.org", "https://uppy.example.net", "http://localhost:3000"):
        assert preflight(url, origin).headers["Access-Control-Allow-Origin"] == origin
    assert_no_cors(preflight(url, server.url))  # the public address is the server's origin now
    assert_no_cors(preflight(url, "https://evil.example"))


def test_cors_origins_star_opens_tus_to_every_origin(server_factory):
    server = server_factory(cors_origins="*")
    assert preflight(f"{server.url}/api/v1/tus/", "https://anywhere.example").headers[
        "Access-Control-Allow-Origin"] == "https://anywhere.example"


@pytest.mark.parametrize("path", ["/api/v1/upload/session", "/api/v1/upload", "/api/v1/files", "/api/v1/login"])
def test_other_endpoints_grant_no_origin(server, path):
    answer = requests.options(f"{server.url}{path}", headers={"Origin": "https://evil.example",
                                                              "Access-Control-Request-Method": "POST"}, timeout=10)
    assert_no_cors(answer)
