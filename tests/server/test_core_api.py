"""The lockr API's happy paths against the real app: accounts, login, upload, list, keys, download, delete."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
import requests

from tests.helpers import create_account, error_code, upload

# Every server here runs on two stacks: SQLite + a folder region, PostgreSQL + a bucket region
# (tests/conftest.py, `database` and `blob_backend`).
pytestmark = [pytest.mark.both_databases, pytest.mark.blob_backends("folder", "s3")]


def test_signup_returns_token_that_authenticates(server):
    account = create_account(server.url, "alice")
    response = requests.get(f"{server.url}/api/v1/files", headers=account.auth)
    assert response.status_code == 200
    assert response.json() == {"files": [], "next": None}


def test_signup_with_taken_username_or_email_returns_409(server):
    create_account(server.url, "alice")
    for body in ({"username": "alice", "email": "other@example.com", "password": "longenough"},
                 {"username": "other", "email": "alice@example.com", "password": "longenough"}):
        response = requests.post(f"{server.url}/api/v1/account", json=body)
        assert response.status_code == 409
        assert error_code(response) == "already_exists"


@pytest.mark.parametrize("identifier", ["bob", "bob@example.com", "BOB@example.com"])
def test_login_with_username_or_email_returns_a_working_token(server, identifier):
    create_account(server.url, "bob", password="s3cret-pass")
    response = requests.post(f"{server.url}/api/v1/login", json={"identifier": identifier, "password": "s3cret-pass"})
    assert response.status_code == 200, response.text
    token = response.json()["token"]
    assert requests.get(f"{server.url}/api/v1/files", headers={"Authorization": f"Bearer {token}"}).status_code == 200


@pytest.mark.parametrize("identifier,password", [("bob", "wrong-password"), ("nobody", "s3cret-pass")])
def test_login_with_wrong_credentials_returns_401(server, identifier, password):
    create_account(server.url, "bob", password="s3cret-pass")
    response = requests.post(f"{server.url}/api/v1/login", json={"identifier": identifier, "password": password})
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"


@pytest.mark.parametrize("identifier", ["carol", "carol@example.com"])
def test_basic_auth_with_username_or_email_works(server, identifier):
    create_account(server.url, "carol", password="pass-phrase")
    basic = base64.b64encode(f"{identifier}:pass-phrase".encode()).decode()
    response = requests.get(f"{server.url}/api/v1/files", headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 200


def test_direct_upload_is_listed_and_downloads_identically(server):
    account = create_account(server.url)
    data = bytes(range(256)) * 4096 + b"tail"
    response = upload(server.url, data, "reports/2026/whitepaper.pdf", {"Content-Type": "application/pdf"}, account)
    assert response.status_code == 201, response.text
    file = response.json()
    assert file["name"] == "reports/2026/whitepaper.pdf"
    assert file["size"] == len(data)
    assert file["type"] == "application/pdf"
    assert file["sha256"] == hashlib.sha256(data).hexdigest()
    assert file["hasKey"] is False
    assert file["region"] == "local"
    assert set(file) >= {"id", "name", "size", "type", "region", "sha256", "hasKey", "createdAt", "downloadUrl"}

    listing = requests.get(f"{server.url}/api/v1/files", headers=account.auth).json()
    assert [f["id"] for f in listing["files"]] == [file["id"]]

    download = requests.get(file["downloadUrl"], headers=account.auth)
    assert download.status_code == 200
    assert download.content == data
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert download.headers["ETag"] == f'"{file["sha256"]}"'


def test_guest_upload_downloads_without_credentials(server):
    response = upload(server.url, b"hello guest", "note.txt")
    assert response.status_code == 201
    assert requests.get(response.json()["downloadUrl"]).content == b"hello guest"


def test_chunked_upload_without_content_length_is_stored(server):
    account = create_account(server.url)
    data = b"x" * 3_000_001

    def body():
        for start in range(0, len(data), 65536):
            yield data[start:start + 65536]

    response = requests.post(f"{server.url}/api/v1/upload", data=body(),
                             headers={"x-file-name": "stream.bin", **account.auth})
    assert response.status_code == 201, response.text
    assert response.json()["size"] == len(data)
    assert requests.get(response.json()["downloadUrl"], headers=account.auth).content == data


def test_percent_encoded_and_raw_utf8_names_are_decoded(server):
    account = create_account(server.url)
    encoded = upload(server.url, b"1", "r%C3%A9sum%C3%A9.txt", account=account).json()
    assert encoded["name"] == "résumé.txt"
    raw = requests.post(f"{server.url}/api/v1/upload", data=b"2",
                        headers={"x-file-name": "naïve.txt".encode().decode("latin-1"), **account.auth})
    assert raw.json()["name"] == "naïve.txt"
    download = requests.get(encoded["downloadUrl"], headers=account.auth)
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9.txt" in download.headers["Content-Disposition"]


def test_key_set_requires_keyhash_from_others_and_clears(server):
    owner = create_account(server.url)
    file = upload(server.url, b"secret bytes", "s.txt", account=owner).json()
    keyed = requests.post(f"{server.url}/api/v1/files/{file['id']}/key", json={"key": "open sesame"},
                          headers=owner.auth)
    assert keyed.status_code == 200 and keyed.json()["hasKey"] is True
    url = file["downloadUrl"]
    assert error_code(requests.get(url)) == "key_required"
    wrong = hashlib.sha256(b"wrong").hexdigest()
    assert error_code(requests.get(url, params={"keyHash": wrong})) == "wrong_key"
    right = hashlib.sha256("open sesame".encode()).hexdigest()
    assert requests.get(url, params={"keyHash": right}).content == b"secret bytes"
    assert requests.get(url, headers=owner.auth).content == b"secret bytes"
    cleared = requests.post(f"{server.url}/api/v1/files/{file['id']}/key", json={}, headers=owner.auth)
    assert cleared.json()["hasKey"] is False
    assert requests.get(url).status_code == 200


def test_key_can_be_set_from_its_hash_without_sending_the_phrase(server):
    owner = create_account(server.url)
    file = upload(server.url, b"hashed secret", "h.txt", account=owner).json()
    key_url = f"{server.url}/api/v1/files/{file['id']}/key"
    digest = hashlib.sha256("open sesame".encode()).hexdigest()
    keyed = requests.post(key_url, json={"keyHash": digest.upper()}, headers=owner.auth)
    assert keyed.status_code == 200 and keyed.json()["hasKey"] is True
    url = file["downloadUrl"]
    assert error_code(requests.get(url)) == "key_required"
    assert requests.get(url, params={"keyHash": digest}).content == b"hashed secret"
    bad = requests.post(key_url, json={"keyHash": "abc"}, headers=owner.auth)
    assert bad.status_code == 400 and error_code(bad) == "bad_request"
    assert requests.get(url, params={"keyHash": digest}).content == b"hashed secret", "a refused change keeps the key"
    cleared = requests.post(key_url, json={"keyHash": None}, headers=owner.auth)
    assert cleared.json()["hasKey"] is False
    assert requests.get(url).content == b"hashed secret"


def test_upload_with_key_hash_header_protects_the_file(server):
    owner = create_account(server.url)
    key_hash = hashlib.sha256(b"phrase").hexdigest()
    file = upload(server.url, b"data", "k.bin", {"x-key-hash": key_hash}, owner).json()
    assert file["hasKey"] is True
    assert requests.get(file["downloadUrl"]).status_code == 403
    assert requests.get(file["downloadUrl"], params={"keyHash": key_hash.upper()}).status_code == 200


def test_register_attaches_guest_upload_and_charges_quota(server):
    account = create_account(server.url)
    guest_file = upload(server.url, b"12345", "guest.txt").json()
    response = requests.post(f"{server.url}/api/v1/files/register",
                             json={"id": guest_file["id"], "claimToken": guest_file["claimToken"]}, headers=account.auth)
    assert response.status_code == 200
    assert [f["id"] for f in requests.get(f"{server.url}/api/v1/files", headers=account.auth).json()["files"]] \
        == [guest_file["id"]]
    assert requests.get(f"{server.url}/api/v1/account", headers=account.auth).json()["used"] == 5
    again = requests.post(f"{server.url}/api/v1/files/register", json={"id": guest_file["id"]}, headers=account.auth)
    assert again.status_code == 200
    other = create_account(server.url)
    stolen = requests.post(f"{server.url}/api/v1/files/register",
                           json={"id": guest_file["id"], "claimToken": guest_file["claimToken"]}, headers=other.auth)
    assert stolen.status_code == 404


def test_delete_then_delete_from_the_trash_removes_bytes_and_releases_quota(server):
    account = create_account(server.url)
    file = upload(server.url, b"z" * 1000, "gone.bin", account=account).json()
    assert requests.get(f"{server.url}/api/v1/account", headers=account.auth).json()["used"] == 1000
    response = requests.delete(f"{server.url}/api/v1/files/{file['id']}", headers=account.auth)
    assert response.status_code == 204
    assert requests.get(file["downloadUrl"], headers=account.auth).status_code == 404
    assert requests.delete(f"{server.url}/api/v1/trash/{file['id']}", headers=account.auth).status_code == 204
    assert requests.get(f"{server.url}/api/v1/account", headers=account.auth).json()["used"] == 0
    assert requests.get(file["downloadUrl"], headers=account.auth).status_code == 404
    assert list(server.ctx.blobs.iter_objects("local")) == []


def test_listing_pages_with_cursor_until_next_is_null(server):
    account = create_account(server.url)
    ids = [upload(server.url, b"%d" % i, f"f{i}.txt", account=account).json()["id"] for i in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = requests.get(f"{server.url}/api/v1/files", params=params, headers=account.auth).json()
        seen += [f["id"] for f in page["files"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == ids


def test_healthz_answers_ok(server):
    response = requests.get(f"{server.url}/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_healthz_answers_head_with_200_and_no_body(server):
    with requests.Session() as session:
        response = session.head(f"{server.url}/healthz")
        assert response.status_code == 200
        assert response.content == b""
        assert response.headers["Content-Type"].startswith("application/json")
        # A body sent after the HEAD answer would be read as the start of the next answer.
        after = session.get(f"{server.url}/healthz")
        assert after.status_code == 200 and after.json()["status"] == "ok"


def test_absolute_links_use_public_url(server_factory):
    srv = server_factory(public_url="https://files.example.org/")
    file = upload(srv.url, b"x", "a.txt").json()
    assert file["downloadUrl"].startswith("https://files.example.org/api/v1/download/local/")


def test_forwarded_headers_trusted_only_from_configured_proxies(server_factory):
    untrusted = server_factory()
    headers = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}
    file = upload(untrusted.url, b"x", "a.txt", headers).json()
    assert "evil.example" not in file["downloadUrl"]
    trusted = server_factory(trusted_proxies="127.0.0.1")
    file = upload(trusted.url, b"x", "a.txt", {"X-Forwarded-Host": "files.example.org",
                                               "X-Forwarded-Proto": "https"}).json()
    assert file["downloadUrl"].startswith("https://files.example.org/")


def test_regions_are_selectable_and_unknown_ones_list_the_valid(server_factory, tmp_path):
    # inline_max=0: the files' bytes go to the region's folder, which is what this test looks at.
    srv = server_factory(regions=f"us-central1={tmp_path}/r1,eu-west1={tmp_path}/r2", default_region="eu-west1",
                         inline_max=0)
    assert upload(srv.url, b"x", "a.txt").json()["region"] == "eu-west1"
    file = upload(srv.url, b"y", "b.txt", {"x-upload-region": "us-central1"}).json()
    assert file["region"] == "us-central1"
    assert requests.get(file["downloadUrl"]).content == b"y"
    assert any((tmp_path / "r1" / "objects").rglob(file["id"]))
    bad = upload(srv.url, b"z", "c.txt", {"x-upload-region": "mars-1"})
    assert bad.status_code == 400
    assert error_code(bad) == "unknown_region"
    assert "us-central1" in bad.json()["error"]["message"] and "eu-west1" in bad.json()["error"]["message"]


def test_error_body_has_the_one_canonical_shape(server):
    for status, response in ((404, requests.get(f"{server.url}/no/such/route")),
                             (405, requests.patch(f"{server.url}/api/v1/files")),
                             (401, requests.get(f"{server.url}/api/v1/files")),
                             (400, requests.post(f"{server.url}/api/v1/login", data=b"{not json"))):
        assert response.status_code == status, (status, response.text)
        body = response.json()
        assert list(body) == ["error"]
        assert isinstance(body["error"]["code"], str) and body["error"]["code"]
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
        assert response.headers["Content-Type"].startswith("application/json")
        assert "Traceback" not in json.dumps(body)


def test_downloads_say_they_accept_byte_ranges(server):
    file = upload(server.url, b"0123456789", "digits.txt").json()
    for response in (requests.get(file["downloadUrl"]), requests.head(file["downloadUrl"])):
        assert response.status_code == 200
        assert response.headers["Accept-Ranges"] == "bytes"
    ranged = requests.get(file["downloadUrl"], headers={"Range": "bytes=2-4"})
    assert ranged.status_code == 206 and ranged.content == b"234"
    assert ranged.headers["Accept-Ranges"] == "bytes"
