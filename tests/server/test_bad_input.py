"""Bad input on every endpoint gets a clear JSON error and loses nothing."""

from __future__ import annotations

import base64
import json
import logging
import socket
import statistics
import time

import pytest
import requests

from tests.helpers import create_account, error_code, upload, wait_for

# Every server here runs on two stacks: SQLite + a folder region, PostgreSQL + a bucket region
# (tests/conftest.py, `database` and `blob_backend`).
pytestmark = [pytest.mark.both_databases, pytest.mark.blob_backends("folder", "s3")]


def auth_variants(server, account):
    revoked = requests.post(f"{server.url}/api/v1/login",
                            json={"identifier": account.username, "password": account.password}).json()["token"]
    assert server.ctx.db.run_sync(server.ctx.service.revoke_token, revoked)
    wrong_basic = base64.b64encode(f"{account.username}:not-the-password".encode()).decode()
    return {
        "invalid token": {"Authorization": "Bearer lkr_not-a-real-token"},
        "revoked token": {"Authorization": f"Bearer {revoked}"},
        "wrong basic password": {"Authorization": f"Basic {wrong_basic}"},
        "garbage basic": {"Authorization": "Basic %%%"},
        "unknown scheme": {"Authorization": "Digest abc"},
    }


ACCOUNT_ENDPOINTS = [
    ("GET", "/api/v1/files", None),
    ("GET", "/api/v1/account", None),
    ("POST", "/api/v1/files/register", {"id": "0" * 32}),
    ("POST", "/api/v1/files/{id}/key", {"key": "x"}),
    ("DELETE", "/api/v1/files/{id}", None),
    ("GET", "/api/v1/files/{id}", None),
    ("GET", "/api/v1/trash", None),
    ("DELETE", "/api/v1/trash", None),
    ("POST", "/api/v1/trash/{id}/restore", None),
    ("DELETE", "/api/v1/trash/{id}", None),
]


@pytest.mark.parametrize("method,path,body", ACCOUNT_ENDPOINTS)
def test_account_endpoints_without_credentials_return_401(server, method, path, body):
    owner = create_account(server.url)
    file_id = upload(server.url, b"x", "a.txt", account=owner).json()["id"]
    response = requests.request(method, server.url + path.format(id=file_id), json=body)
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"


@pytest.mark.parametrize("variant", ["invalid token", "revoked token", "wrong basic password", "garbage basic",
                                     "unknown scheme"])
@pytest.mark.parametrize("method,path,body", ACCOUNT_ENDPOINTS + [("POST", "/api/v1/upload", None)])
def test_bad_credentials_return_401_on_every_endpoint(server, variant, method, path, body):
    owner = create_account(server.url)
    file_id = upload(server.url, b"x", "a.txt", account=owner).json()["id"]
    headers = auth_variants(server, owner)[variant]
    if path == "/api/v1/upload":
        headers = {**headers, "x-file-name": "b.txt"}
    response = requests.request(method, server.url + path.format(id=file_id), json=body, headers=headers)
    assert response.status_code == 401, response.text
    assert error_code(response) == "unauthorized"
    assert requests.get(f"{server.url}/api/v1/files", headers=owner.auth).json()["files"][0]["id"] == file_id


@pytest.mark.parametrize("method,path,body", [
    ("GET", "/api/v1/files/{id}", None),
    ("POST", "/api/v1/files/{id}/key", {"key": "mine now"}),
    ("DELETE", "/api/v1/files/{id}", None),
    ("POST", "/api/v1/files/register", {"id": "{id}"}),
])
def test_another_users_file_id_returns_404_and_leaks_nothing(server, method, path, body):
    owner = create_account(server.url)
    intruder = create_account(server.url)
    file = upload(server.url, b"private", "diary.txt", account=owner).json()
    if body and body.get("id") == "{id}":
        body = {"id": file["id"]}
    response = requests.request(method, server.url + path.format(id=file["id"]), json=body, headers=intruder.auth)
    assert response.status_code == 404
    assert "diary" not in response.text and "private" not in response.text
    assert requests.get(file["downloadUrl"], headers=owner.auth).content == b"private"
    assert requests.get(f"{server.url}/api/v1/files", headers=intruder.auth).json()["files"] == []
    assert requests.get(f"{server.url}/api/v1/files/{file['id']}", headers=owner.auth).json()["hasKey"] is False


@pytest.mark.parametrize("body", [b"{not json", b"[1,2]", b"\xff\xfe", b'"string"'])
@pytest.mark.parametrize("path", ["/api/v1/account", "/api/v1/login", "/api/v1/files/register"])
def test_malformed_json_returns_400(server, path, body):
    account = create_account(server.url)
    response = requests.post(server.url + path, data=body, headers={**account.auth,
                                                                    "Content-Type": "application/json"})
    assert response.status_code == 400
    assert error_code(response) == "bad_request"


BAD_NAMES = {
    "dotdot": "../etc/passwd",
    "inner dotdot": "a/../../b",
    "leading slash": "/etc/passwd",
    "NUL": "a\x00b",
    "CR": "a\rb",
    "LF": "a\nb",
    "encoded LF": "a%0Ab",
    "encoded NUL": "a%00b",
    "300 bytes": "a" * 300,
    "RLO": "invoice\u202egpj.exe",
    "empty": "",
    "backslash": "..\\..\\x",
    "trailing slash": "folder/",
}


@pytest.mark.parametrize("label", sorted(BAD_NAMES))
def test_bad_file_names_are_refused_with_invalid_name(server, label):
    account = create_account(server.url)
    name = BAD_NAMES[label]
    header = name.encode("utf-8").decode("latin-1")
    try:
        response = requests.post(f"{server.url}/api/v1/upload", data=b"x",
                                 headers={"x-file-name": header, **account.auth})
    except ValueError:
        # requests itself refuses CR/LF in headers: send the raw bytes ourselves.
        response = raw_upload(server.url, name.encode(), account.token)
    assert response.status_code == 400, response.text
    if any(ord(c) < 0x20 for c in name):
        # A raw NUL, CR or LF breaks HTTP framing, so Tornado's parser may refuse it before any handler:
        # with the same JSON error body (bad_request) as every other 400.
        assert error_code(response) in ("invalid_name", "bad_request")
    else:
        assert error_code(response) == "invalid_name"
    assert requests.get(f"{server.url}/api/v1/files", headers=account.auth).json()["files"] == []
    assert wait_for(lambda: server.ctx.blobs.temp_leftovers("local") == 0, message="no unfinished write left")


def raw_upload(url: str, raw_name: bytes, token: str) -> requests.Response:
    host, port = url.split("//")[1].split(":")
    request = (b"POST /api/v1/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode()
               + b"\r\nx-file-name: " + raw_name + b"\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    fake = requests.Response()
    fake.status_code = status
    fake._content = data.split(b"\r\n\r\n", 1)[1]
    return fake


def raw_exchange(url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Sends raw bytes (what requests refuses to send), reads to the close: status, headers, body."""
    host, port = url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


MALFORMED_REQUESTS = {
    "garbage request line": b"HELLO THERE\r\nHost: x\r\n\r\n",
    "header without colon": b"GET /api/v1/files HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
    "bad chunk size": (b"POST /api/v1/upload HTTP/1.1\r\nHost: x\r\nx-file-name: chunks.bin\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"),
}


@pytest.mark.parametrize("label", sorted(MALFORMED_REQUESTS))
def test_requests_the_http_parser_refuses_get_the_json_400(server, label):
    status, headers, body = raw_exchange(server.url, MALFORMED_REQUESTS[label])
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    assert int(headers["content-length"]) == len(body)
    assert headers["connection"] == "close"
    error = json.loads(body)
    assert set(error) == {"error"} and error["error"]["code"] == "bad_request", error
    assert "malformed" in error["error"]["message"]
    # Nothing of a refused chunked upload is kept.
    assert wait_for(lambda: server.ctx.blobs.temp_leftovers("local") == 0, message="no unfinished write left")
    assert list(server.ctx.blobs.iter_objects("local")) == []


def test_a_json_body_over_the_limit_gets_413_before_it_is_sent(server):
    """JSON endpoints are not streamed: Tornado refuses an oversized one from its Content-Length."""
    host, port = server.url.split("//")[1].split(":")
    head = (b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 2000000\r\n\r\n")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)  # and no body: the answer must not wait for it
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head_part, body = answer.split(b"\r\n\r\n", 1)
    assert head_part.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"application/json" in head_part
    error = json.loads(body)["error"]
    assert error["code"] == "too_large" and "1 MiB" in error["message"], error


def test_a_json_body_over_64_kib_gets_413(server):
    # Under the 1 MiB that Tornado refuses from the Content-Length, the handler reads the body, then refuses it.
    answer = requests.post(f"{server.url}/api/v1/login", data=json.dumps({"username": "x" * 70_000}),
                           headers={"Content-Type": "application/json"})
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"]["code"] == "too_large" and "64 KiB" in answer.json()["error"]["message"]


@pytest.mark.parametrize("length", ["-5", "abc", "1e3", ""])
def test_upload_with_a_content_length_that_is_not_a_byte_count_returns_json_400(server, length):
    account = create_account(server.url)
    request = (b"POST /api/v1/upload HTTP/1.1\r\nHost: x\r\nx-file-name: sized.bin\r\nAuthorization: Bearer "
               + account.token.encode() + b"\r\nContent-Length: " + length.encode() + b"\r\n\r\nhello")
    status, headers, body = raw_exchange(server.url, request)
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    error = json.loads(body)["error"]
    assert error["code"] == "bad_request" and "Content-Length" in error["message"], error
    assert requests.get(f"{server.url}/api/v1/files", headers=account.auth).json()["files"] == []
    assert requests.get(f"{server.url}/api/v1/account", headers=account.auth).json()["used"] == 0


def test_missing_file_name_returns_400(server):
    account = create_account(server.url)
    response = requests.post(f"{server.url}/api/v1/upload", data=b"abc", headers=account.auth)
    assert response.status_code == 400
    assert "x-file-name" in response.json()["error"]["message"]


@pytest.mark.parametrize("key_hash", ["abc", "g" * 64, "a" * 63, "a" * 65])
def test_key_hash_that_is_not_64_hex_returns_400(server, key_hash):
    account = create_account(server.url)
    response = upload(server.url, b"x", "a.txt", {"x-key-hash": key_hash}, account)
    assert response.status_code == 400
    file = upload(server.url, b"x", "b.txt", account=account).json()
    download = requests.get(file["downloadUrl"], params={"keyHash": key_hash})
    assert download.status_code == 400


def test_guest_cannot_attach_a_key(server):
    response = upload(server.url, b"x", "a.txt", {"x-key-hash": "a" * 64})
    assert response.status_code == 403
    assert error_code(response) == "guest_key_forbidden"


def test_unknown_region_returns_400_listing_valid_regions(server):
    response = upload(server.url, b"x", "a.txt", {"x-upload-region": "atlantis"})
    assert response.status_code == 400
    assert "local" in response.json()["error"]["message"]


@pytest.mark.parametrize("limit", ["abc", "0", "-1", "100000"])
def test_bad_listing_limit_returns_400(server, limit):
    account = create_account(server.url)
    response = requests.get(f"{server.url}/api/v1/files", params={"limit": limit}, headers=account.auth)
    assert response.status_code == 400


def test_bad_cursor_returns_400(server):
    account = create_account(server.url)
    response = requests.get(f"{server.url}/api/v1/files", params={"cursor": "zzz"}, headers=account.auth)
    assert response.status_code == 400


@pytest.mark.parametrize("body", [
    {"username": "ok", "email": "not-an-email", "password": "longenough"},
    {"username": "../x", "email": "x@example.com", "password": "longenough"},
    {"username": "ok", "email": "x@example.com", "password": "short"},
    {"username": 5, "email": "x@example.com", "password": "longenough"},
    {"username": "ok", "email": "x" * 64 + "@" + "y" * 189 + ".com", "password": "longenough"},  # over 254
    {"username": "ok", "email": "a\x00b@example.com", "password": "longenough"},
    {"username": "ok", "email": "a\tb@example.com", "password": "longenough"},
    {},
])
def test_bad_signup_fields_return_400(server, body):
    response = requests.post(f"{server.url}/api/v1/account", json=body)
    assert response.status_code == 400
    assert error_code(response) == "bad_request"


@pytest.mark.parametrize("identifier", ["al\x00ice", "a\x00b@example.com", "x" * 300 + "@example.com"])
def test_a_login_naming_no_possible_account_returns_401(server, identifier):
    """Identifiers no account can have (NUL, which PostgreSQL cannot even compare; over-long) are wrong
    credentials like any other."""
    create_account(server.url, "alice")
    login = requests.post(f"{server.url}/api/v1/login", json={"identifier": identifier, "password": "correct horse"})
    assert login.status_code == 401 and error_code(login) == "unauthorized"
    basic = requests.request("PROPFIND", f"{server.url}/dav/alice/", auth=(identifier, "correct horse"),
                             headers={"Depth": "0"})
    assert basic.status_code == 401 and error_code(basic) == "unauthorized"


@pytest.mark.parametrize("path,field", [("/api/v1/tokens", "name"), ("/api/v1/login", "tokenName")])
def test_a_token_label_with_control_characters_returns_400(server, path, field):
    account = create_account(server.url)
    body = {field: "my\x00laptop", "identifier": account.username, "password": account.password}
    response = requests.post(f"{server.url}{path}", json=body, headers=account.auth)
    assert response.status_code == 400 and error_code(response) == "bad_request"


def send_raw(url: str, payload: bytes, *, close_after: bool = True, read: bool = True) -> bytes:
    host, port = url.split("//")[1].split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    try:
        sock.sendall(payload)
        if not read:
            return b""
        if close_after:
            sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data
    finally:
        sock.close()


def test_body_shorter_than_content_length_then_disconnect_stores_nothing(server):
    account = create_account(server.url)
    head = (b"POST /api/v1/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + account.token.encode()
            + b"\r\nx-file-name: cut.bin\r\nContent-Length: 5000000\r\n\r\n")
    send_raw(server.url, head + b"y" * 2_000_000, read=False)
    assert wait_for(lambda: server.ctx.blobs.temp_leftovers("local") == 0, message="unfinished write removed")
    assert requests.get(f"{server.url}/api/v1/files", headers=account.auth).json()["files"] == []
    assert requests.get(f"{server.url}/api/v1/account", headers=account.auth).json()["used"] == 0
    assert requests.get(f"{server.url}/api/v1/account", headers=account.auth).json()["reserved"] == 0


def test_body_longer_than_content_length_stores_exactly_the_declared_bytes(server):
    account = create_account(server.url)
    head = (b"POST /api/v1/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + account.token.encode()
            + b"\r\nx-file-name: exact.bin\r\nContent-Length: 10\r\nConnection: close\r\n\r\n")
    answer = send_raw(server.url, head + b"0123456789EXTRA-BYTES")
    assert b" 201 " in answer.split(b"\r\n", 1)[0]
    files = requests.get(f"{server.url}/api/v1/files", headers=account.auth).json()["files"]
    assert [f["size"] for f in files] == [10]
    assert requests.get(files[0]["downloadUrl"], headers=account.auth).content == b"0123456789"


def test_server_keeps_serving_after_abrupt_disconnects(server):
    account = create_account(server.url)
    for _ in range(5):
        send_raw(server.url, b"POST /api/v1/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                             b"x-file-name: a\r\n\r\nabc", read=False)
    assert requests.get(f"{server.url}/healthz").status_code == 200
    assert upload(server.url, b"fine", "after.txt", account=account).status_code == 201


def test_revoked_token_stops_working_immediately(server):
    account = create_account(server.url)
    assert server.ctx.db.run_sync(server.ctx.service.revoke_token, account.token)
    response = requests.get(f"{server.url}/api/v1/files", headers=account.auth)
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]


def test_unknown_download_id_returns_404(server):
    response = requests.get(f"{server.url}/api/v1/download/local/{'0' * 32}/x")
    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_download_in_wrong_region_returns_404(server):
    file = upload(server.url, b"x", "a.txt").json()
    response = requests.get(file["downloadUrl"].replace("/local/", "/other/"))
    assert response.status_code == 404


def test_elapsed_time_is_reasonable_for_failed_logins(server):
    create_account(server.url, "timing", password="correct horse")

    def login_seconds(identifier: str) -> float:
        started = time.monotonic()
        answer = requests.post(f"{server.url}/api/v1/login", json={"identifier": identifier, "password": "wrong"})
        assert answer.status_code == 401
        return time.monotonic() - started

    # Medians of a few tries each, interleaved, so that one stall of a shared machine decides nothing.
    known_tries, unknown_tries = [], []
    for _ in range(3):
        known_tries.append(login_seconds("timing"))
        unknown_tries.append(login_seconds("ghost"))
    known, unknown = statistics.median(known_tries), statistics.median(unknown_tries)
    # Both paths run the KDF: neither is an order of magnitude faster than the other.
    assert unknown > known / 5 and known > unknown / 5


# Every JSON endpoint, with a valid-looking body whose `field` the tests replace with hostile values.
# {id} is one of the caller's files; "auth" says whether the request carries the account's token.
JSON_FIELDS = [
    ("/api/v1/login", {"identifier": "{user}", "password": "correct horse"}, "identifier", False),
    ("/api/v1/login", {"identifier": "{user}", "password": "correct horse"}, "password", False),
    ("/api/v1/account", {"username": "newbie", "email": "newbie@example.com", "password": "longenough"},
     "username", False),
    ("/api/v1/account", {"username": "newbie", "email": "newbie@example.com", "password": "longenough"},
     "email", False),
    ("/api/v1/account", {"username": "newbie", "email": "newbie@example.com", "password": "longenough"},
     "password", False),
    ("/api/v1/upload/session", {"name": "a.bin", "size": 3}, "name", True),
    ("/api/v1/upload/session", {"name": "a.bin", "size": 3}, "type", True),
    ("/api/v1/files/{id}/key", {"key": "phrase"}, "key", True),
    ("/api/v1/files/register", {"id": "{id}"}, "id", True),
    ("/api/v1/files/{id}/link", {"expiresIn": 60}, "expiresIn", True),
    ("/api/v1/tokens", {"name": "laptop"}, "name", True),
    ("/api/v1/account/password", {"currentPassword": "correct horse", "newPassword": "longenough2"},
     "currentPassword", True),
    ("/api/v1/account/password", {"currentPassword": "correct horse", "newPassword": "longenough2"},
     "newPassword", True),
    ("/api/v1/tokens", {"name": "laptop", "expiresIn": 3600}, "expiresIn", True),
]


def _post_json_field(server, path, body, field, with_auth, value_json: str) -> requests.Response:
    account = create_account(server.url)
    file_id = upload(server.url, b"x", "a.txt", account=account).json()["id"]
    fields = {k: (v.format(user=account.username, id=file_id) if isinstance(v, str) else v) for k, v in body.items()}
    fields[field] = "__HOSTILE__"
    raw = json.dumps(fields).replace('"__HOSTILE__"', value_json)
    return requests.post(server.url + path.format(id=file_id), data=raw.encode(),
                         headers={"Content-Type": "application/json", **(account.auth if with_auth else {})})


@pytest.mark.parametrize("path,body,field,with_auth", JSON_FIELDS,
                         ids=[f"{path} {field}" for path, _, field, _ in JSON_FIELDS])
def test_a_lone_surrogate_in_a_json_string_returns_400(server, path, body, field, with_auth):
    response = _post_json_field(server, path, body, field, with_auth, '"a\\ud800b"')
    assert response.status_code == 400, response.text
    assert error_code(response) == "bad_request"
    assert "Unicode" in response.json()["error"]["message"]


@pytest.mark.parametrize("path", sorted({path for path, *_ in JSON_FIELDS}))
def test_deeply_nested_json_returns_400_and_logs_no_traceback(server, path, caplog):
    account = create_account(server.url)
    file_id = upload(server.url, b"x", "a.txt", account=account).json()["id"]
    for nested in (b"[" * 60_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000, b'{"name": ' + b"[" * 40 + b"]" * 40 + b"}"):
        with caplog.at_level(logging.WARNING):
            response = requests.post(server.url + path.format(id=file_id), data=nested,
                                     headers={"Content-Type": "application/json", **account.auth})
        assert response.status_code == 400, response.text[:300]
        assert error_code(response) == "bad_request"
        assert "nested too deeply" in response.json()["error"]["message"]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json_and_return_400(server, constant):
    path, body, field, with_auth = JSON_FIELDS[9]  # expiresIn
    response = _post_json_field(server, path, body, field, with_auth, constant)
    assert response.status_code == 400, response.text
    assert "not valid JSON" in response.json()["error"]["message"]


BIG = "9" * 5000  # past int()'s 4300-digit limit
PAST_64_BITS = "99999999999999999999"


@pytest.mark.parametrize("cursor", [PAST_64_BITS, "9223372036854775808", BIG, "\u0663", "1_0", "-1"])
def test_a_cursor_that_is_not_a_64_bit_count_returns_400(server, cursor):
    account = create_account(server.url)
    response = requests.get(f"{server.url}/api/v1/files", params={"cursor": cursor}, headers=account.auth)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == "cursor"


def test_the_largest_64_bit_cursor_is_an_empty_page(server):
    account = create_account(server.url)
    upload(server.url, b"x", "a.txt", account=account)
    response = requests.get(f"{server.url}/api/v1/files", params={"cursor": str(2**63 - 1)}, headers=account.auth)
    assert response.json() == {"files": [], "next": None}


@pytest.mark.parametrize("limit", [PAST_64_BITS, BIG, "\u0663", "1_0", "+5"])
def test_a_listing_limit_that_is_not_ascii_digits_returns_400(server, limit):
    account = create_account(server.url)
    response = requests.get(f"{server.url}/api/v1/files", params={"limit": limit}, headers=account.auth)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == "limit"


@pytest.mark.parametrize("range_header, size, status, content_range", [
    ("bytes=-5", 0, 416, "bytes */0"),
    ("bytes=-" + PAST_64_BITS, 0, 416, "bytes */0"),
    ("bytes=-5", 3, 206, "bytes 0-2/3"),
    ("bytes=-" + BIG, 3, 206, "bytes 0-2/3"),
    ("bytes=" + BIG + "-", 3, 416, "bytes */3"),
    ("bytes=1-" + BIG, 3, 206, "bytes 1-2/3"),
    ("bytes=" + PAST_64_BITS + "-" + BIG, 3, 416, "bytes */3"),
])
def test_ranges_with_huge_numbers_or_on_an_empty_file_answer_206_or_416(server, range_header, size, status,
                                                                       content_range):
    account = create_account(server.url)
    file = upload(server.url, b"abc"[:size], "r.bin", account=account).json()
    response = requests.get(file["downloadUrl"], headers={**account.auth, "Range": range_header})
    assert response.status_code == status, response.text
    assert response.headers["Content-Range"] == content_range
    if status == 206:
        first, last = map(int, content_range.split()[1].split("/")[0].split("-"))
        assert response.content == b"abc"[first:last + 1]


def _session_and_tus(server, account):
    session = requests.post(f"{server.url}/api/v1/upload/session", json={"name": "s.bin", "size": 10},
                            headers=account.auth).json()
    tus = requests.post(f"{server.url}/api/v1/tus/", headers={"Tus-Resumable": "1.0.0", "Upload-Length": "10",
                                                              **account.auth}).headers["Location"]
    return "/" + session["uploadUrl"].split("/", 3)[3], "/" + tus.split("/", 3)[3]


# Header values a client can send (raw bytes: '\xb2' is '²' once Tornado reads headers as latin-1).
HOSTILE_NUMBER_HEADERS = {
    "Content-Length superscript": ("POST {upload}", {"x-file-name": b"a.bin", "Content-Length": b"\xb2"}, 400),
    "Content-Length 5000 digits": ("POST {upload}", {"x-file-name": b"a.bin", "Content-Length": BIG.encode()}, 413),
    "Content-Length past 64 bits": ("POST {upload}", {"x-file-name": b"a.bin",
                                                      "Content-Length": PAST_64_BITS.encode()}, 413),
    "session Content-Length superscript": ("PUT {session}", {"Content-Range": b"bytes 0-4/10",
                                                             "Content-Length": b"\xb2"}, 400),
    "session Content-Range 5000 digits": ("PUT {session}", {"Content-Range": b"bytes 0-4/" + BIG.encode()}, 400),
    "session Content-Range past 64 bits": ("PUT {session}",
                                           {"Content-Range": f"bytes {PAST_64_BITS}-{PAST_64_BITS}/10".encode()}, 400),
    "session status query 5000 digits": ("PUT {session}", {"Content-Range": b"bytes */" + BIG.encode(),
                                                           "Content-Length": b"0"}, 400),
    "X-Upload-Content-Length 5000 digits": ("POST /api/v1/upload/session",
                                            {"X-Upload-Content-Length": BIG.encode(),
                                             "Content-Type": b"application/json"}, 400),
    "tus Upload-Length 5000 digits": ("POST /api/v1/tus/", {"Tus-Resumable": b"1.0.0",
                                                            "Upload-Length": BIG.encode()}, 400),
    "tus Upload-Offset 5000 digits": ("PATCH {tus}", {"Tus-Resumable": b"1.0.0", "Upload-Offset": BIG.encode(),
                                                      "Content-Type": b"application/offset+octet-stream"}, 400),
    "tus Upload-Offset superscript": ("PATCH {tus}", {"Tus-Resumable": b"1.0.0", "Upload-Offset": b"\xb2",
                                                      "Content-Type": b"application/offset+octet-stream"}, 400),
    "tus Content-Length superscript": ("PATCH {tus}", {"Tus-Resumable": b"1.0.0", "Upload-Offset": b"0",
                                                       "Content-Type": b"application/offset+octet-stream",
                                                       "Content-Length": b"\xb2"}, 400),
    "WebDAV PUT Content-Length superscript": ("PUT /dav/{user}/x.bin", {"Content-Length": b"\xb2"}, 400),
    "WebDAV PUT Content-Length 5000 digits": ("PUT /dav/{user}/x.bin", {"Content-Length": BIG.encode()}, 413),
}


@pytest.mark.parametrize("label", sorted(HOSTILE_NUMBER_HEADERS))
def test_number_headers_past_64_bits_or_not_ascii_digits_get_a_json_4xx_and_no_traceback(server, label, caplog):
    account = create_account(server.url)
    session_path, tus_path = _session_and_tus(server, account)
    line, headers, status = HOSTILE_NUMBER_HEADERS[label]
    method, path = line.format(upload="/api/v1/upload", session=session_path, tus=tus_path,
                               user=account.username).split()
    headers = {"Content-Length": b"5", **headers}
    request = (f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
               f"Authorization: Bearer {account.token}\r\n").encode()
    request += b"".join(name.encode() + b": " + value + b"\r\n" for name, value in headers.items())
    with caplog.at_level(logging.WARNING):
        answer_status, answer_headers, body = raw_exchange(server.url, request + b"\r\nhello")
    assert answer_status == status, body[:300]
    assert answer_headers["content-type"].startswith("application/json")
    assert set(json.loads(body)) == {"error"}
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize("what", ["one long header", "many headers", "long query string"])
def test_a_request_head_over_64_kib_gets_the_json_431(server, what):
    if what == "one long header":
        head = b"GET /api/v1/files HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * 70_000 + b"\r\n\r\n"
    elif what == "many headers":
        head = b"GET /api/v1/files HTTP/1.1\r\nHost: x\r\n" + b"".join(
            b"X-Filler-%d: %s\r\n" % (i, b"b" * 100) for i in range(1000)) + b"\r\n"
    else:
        head = b"GET /api/v1/files?q=" + b"c" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    status, headers, body = raw_exchange(server.url, head)
    assert status == 431
    assert headers["content-type"].startswith("application/json")
    assert headers["connection"] == "close"
    error = json.loads(body)["error"]
    assert error["code"] == "headers_too_large" and "64 KiB" in error["message"], error
    # The server goes on serving.
    assert requests.get(f"{server.url}/healthz").status_code == 200


def test_requests_sees_the_431_for_a_huge_header_rather_than_a_reset(server):
    account = create_account(server.url)
    response = requests.get(f"{server.url}/api/v1/files", headers={**account.auth, "X-Filler": "d" * 200_000})
    assert response.status_code == 431
    assert error_code(response) == "headers_too_large"


# Names that hide or reorder text where nothing needs it: refused by the server's name check.
HIDDEN_CHARACTER_NAMES = {
    "ARABIC LETTER MARK": "invoice\u061c.pdf",
    "WORD JOINER": "pay\u2060pal.pdf",
    "ZERO WIDTH SPACE": "a\u200bb.txt",
    "ZWNJ between Latin letters": "pay\u200cpal.txt",
    "ZWJ between Latin letters": "pay\u200dpal.txt",
    "ZWJ at the start": "\u200dnotes.txt",
    "LRM": "a\u200eb.txt",
    "RLO": "invoice\u202egpj.exe",
    "LRI": "a\u2066b\u2069.txt",
    "INVISIBLE PLUS": "a\u2064b.txt",
    "FUNCTION APPLICATION": "a\u2061b.txt",
    "BOM": "\ufeffreport.txt",
    "MONGOLIAN VOWEL SEPARATOR": "a\u180eb.txt",
    "HANGUL CHOSEONG FILLER": "\u115freport.txt",
    "HANGUL JUNGSEONG FILLER": "a\u1160b.txt",
    "HANGUL FILLER": "\u3164.txt",
    "SOFT HYPHEN": "pass\u00adwords.txt",
    "COMBINING GRAPHEME JOINER": "a\u034fb.txt",
    "LINE SEPARATOR": "a\u2028b.txt",
    "tag letters outside a flag": "a\U000e0041\U000e0042.txt",
    "LANGUAGE TAG": "\U000e0001en.txt",
    "flag tags without CANCEL TAG": "\U0001f3f4\U000e0067\U000e0062.txt",
    "variation selector at the start": "\ufe0freport.txt",
    "variation selector after a space": "a \ufe0fb.txt",
    "two variation selectors": "\u2764\ufe0f\ufe0f.txt",
    "interlinear annotation": "a\ufff9b\ufffbc.txt",
}
# Real names that need joiners, variation selectors or tags: accepted, and stored as given (NFC).
JOINER_NAMES = {
    "family emoji (ZWJ sequence)": "\U0001f468\u200d\U0001f469\u200d\U0001f467.jpg",
    "technologist with skin tone": "\U0001f469\U0001f3fd\u200d\U0001f4bb notes.txt",
    "rainbow flag (VS16 + ZWJ)": "\U0001f3f3\ufe0f\u200d\U0001f308.png",
    "eye in speech bubble": "\U0001f441\ufe0f\u200d\U0001f5e8\ufe0f.png",
    "red heart (VS16)": "\u2764\ufe0f.txt",
    "keycap one": "1\ufe0f\u20e3.txt",
    "Scotland flag (tag sequence)": "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f.png",
    "Hindi half form (virama + ZWJ)": "\u0915\u094d\u200d\u0937.txt",
    "Hindi explicit virama (virama + ZWNJ)": "\u0915\u094d\u200c\u0937.txt",
    "Sinhala (al-lakuna + ZWJ)": "\u0dc1\u0dca\u200d\u0dbb\u0dd3.txt",
    "Persian (ZWNJ between letters)": "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645.txt",
    "Persian with a mark before the ZWNJ": "\u0645\u06cc\u064e\u200c\u062e\u0648\u0627\u0647\u0645.txt",
    "Japanese with an ideographic variation selector": "\u845b\U000e0100\u57ce\u5e02.txt",
    "Greek": "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac.txt",
    "accents": "na\u00efve caf\u00e9.txt",
}


def _upload_named(server, account, name: str) -> requests.Response:
    encoded = requests.utils.quote(name.encode("utf-8"), safe="")
    return requests.post(f"{server.url}/api/v1/upload", data=b"x",
                         headers={"x-file-name": encoded, **account.auth})


@pytest.mark.parametrize("label", sorted(HIDDEN_CHARACTER_NAMES))
def test_names_with_invisible_or_bidi_characters_are_refused(server, label):
    account = create_account(server.url)
    name = HIDDEN_CHARACTER_NAMES[label]
    response = _upload_named(server, account, name)
    assert response.status_code == 400, response.text
    assert error_code(response) == "invalid_name"
    assert "U+" in response.json()["error"]["message"]
    session = requests.post(f"{server.url}/api/v1/upload/session", json={"name": name, "size": 1},
                            headers=account.auth)
    assert session.status_code == 400 and error_code(session) == "invalid_name"
    assert requests.get(f"{server.url}/api/v1/files", headers=account.auth).json()["files"] == []


@pytest.mark.parametrize("label", sorted(JOINER_NAMES))
def test_names_whose_script_or_emoji_needs_joiners_are_accepted(server, label):
    account = create_account(server.url)
    name = JOINER_NAMES[label]
    response = _upload_named(server, account, name)
    assert response.status_code == 201, response.text
    assert response.json()["name"] == name
    listed = requests.get(f"{server.url}/api/v1/files", headers=account.auth).json()["files"]
    assert [f["name"] for f in listed] == [name]


# Header values with bytes past ASCII (Tornado reads them as latin-1: '\xe9' is 'é'), where base64 is
# expected: base64.b64decode raises a plain ValueError for non-ASCII text, not binascii.Error.
NON_ASCII_BASE64_HEADERS = {
    "Basic credentials": ("GET /api/v1/files", {"Authorization": b"Basic \xe9\xe9\xe9\xe9"}, 401),
    "tus Upload-Metadata": ("POST /api/v1/tus/", {"Tus-Resumable": b"1.0.0", "Upload-Length": b"5",
                                                  "Upload-Metadata": b"filename \xe9\xe9\xe9\xe9"}, 400),
    "tus Upload-Checksum": ("PATCH {tus}", {"Tus-Resumable": b"1.0.0", "Upload-Offset": b"0",
                                            "Content-Type": b"application/offset+octet-stream",
                                            "Upload-Checksum": b"sha1 \xe9\xe9\xe9\xe9"}, 400),
    "WebDAV Basic credentials": ("PROPFIND /dav/", {"Authorization": b"Basic \xe9\xe9\xe9\xe9"}, 401),
}


@pytest.mark.parametrize("label", sorted(NON_ASCII_BASE64_HEADERS))
def test_non_ascii_where_base64_is_expected_gets_a_json_4xx(server, label, caplog):
    account = create_account(server.url)
    _session, tus_path = _session_and_tus(server, account)
    line, headers, status = NON_ASCII_BASE64_HEADERS[label]
    method, path = line.format(tus=tus_path).split()
    if "Authorization" not in headers:
        headers = {"Authorization": f"Bearer {account.token}".encode(), **headers}
    request = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 5\r\n".encode()
    request += b"".join(name.encode() + b": " + value + b"\r\n" for name, value in headers.items())
    with caplog.at_level(logging.WARNING):
        answer_status, answer_headers, body = raw_exchange(server.url, request + b"\r\nhello")
    assert answer_status == status, body[:300]
    assert answer_headers["content-type"].startswith("application/json")
    assert set(json.loads(body)) == {"error"}
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
