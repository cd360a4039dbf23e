"""A keyed file gives nothing derived from its content to someone without the key: not on the download
page, not in JSON, not in headers (ETag and digests), whatever the method or answer. The owner and
whoever has the key still get them."""

from __future__ import annotations

import base64
import hashlib
import zlib
from typing import Any

import pytest
import requests

from tests.helpers import create_account, upload
from tests.web.test_pages_http import sign_up

# Short, guessable content: exactly what a public digest would give away.
CONTENT = b"PIN 4711\n"
KEY_HASH = hashlib.sha256(b"the key phrase").hexdigest()
WRONG_KEY = hashlib.sha256(b"a wrong phrase").hexdigest()


def content_fingerprints() -> list[str]:
    """Every form a digest of CONTENT could take in a page, a body or a header."""
    forms = []
    for algorithm in ("sha256", "sha1", "md5", "sha512"):
        digest = hashlib.new(algorithm, CONTENT).digest()
        forms += [digest.hex(), digest.hex().upper(), base64.b64encode(digest).decode()]
    forms.append(format(zlib.crc32(CONTENT), "08x"))
    return forms


def assert_nothing_derived(answer: requests.Response, where: str) -> None:
    for name in ("ETag", "Digest", "Repr-Digest", "Content-Digest", "Content-MD5", "OC-Checksum", "OC-ETag"):
        assert name not in answer.headers, f"{where}: {name} sent without the key"
    text = answer.text + " ".join(f"{k}: {v}" for k, v in answer.headers.items())
    leaked = [form for form in content_fingerprints() if form in text]
    assert not leaked, f"{where}: {leaked} shown without the key"


@pytest.fixture
def keyed(server: Any) -> tuple[Any, dict[str, Any]]:
    owner = create_account(server.url)
    file = upload(server.url, CONTENT, "pin.txt", {"x-key-hash": KEY_HASH}, owner).json()
    assert file["hasKey"] and file["sha256"] == hashlib.sha256(CONTENT).hexdigest()
    return owner, file


def test_the_download_page_of_a_keyed_file_shows_no_digest(server, keyed):
    _owner, file = keyed
    page = requests.get(f"{server.url}/download/{file['id']}", timeout=10)
    assert page.status_code == 200 and "pin.txt" in page.text
    assert_nothing_derived(page, "download page")


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("query", [{}, {"keyHash": WRONG_KEY}], ids=["no key", "wrong key"])
@pytest.mark.parametrize("extra", [{}, {"Range": "bytes=0-3"}, {"If-None-Match": "*"},
                                   {"If-None-Match": f'"{hashlib.sha256(CONTENT).hexdigest()}"'}],
                         ids=["plain", "range", "if-none-match *", "if-none-match guess"])
def test_a_download_without_the_key_is_refused_and_carries_no_digest(server, keyed, method, query, extra):
    _owner, file = keyed
    answer = requests.request(method, file["downloadUrl"], params=query, headers=extra, timeout=10)
    # Never a 304: that would confirm a guessed digest.
    assert answer.status_code == 403
    assert_nothing_derived(answer, f"{method} {query} {extra}")


def test_another_account_sees_no_digest_of_a_keyed_file(server, keyed):
    _owner, file = keyed
    other = create_account(server.url)
    for answer in (requests.get(f"{server.url}/api/v1/files/{file['id']}", headers=other.auth, timeout=10),
                   requests.get(file["downloadUrl"], headers=other.auth, timeout=10),
                   requests.post(f"{server.url}/api/v1/files/register", json={"id": file["id"]},
                                 headers=other.auth, timeout=10)):
        assert 400 <= answer.status_code < 500
        assert_nothing_derived(answer, answer.url)


def test_the_key_holder_gets_the_etag(server, keyed):
    _owner, file = keyed
    for method in ("GET", "HEAD"):
        answer = requests.request(method, file["downloadUrl"], params={"keyHash": KEY_HASH}, timeout=10)
        assert answer.status_code == 200
        assert answer.headers["ETag"] == f'"{file["sha256"]}"'
    cached = requests.get(file["downloadUrl"], params={"keyHash": KEY_HASH},
                          headers={"If-None-Match": f'"{file["sha256"]}"'}, timeout=10)
    assert cached.status_code == 304


def test_the_owner_sees_the_digest_in_json_and_on_the_page(server):
    session = sign_up(server.url, "keyowner")
    token = requests.post(f"{server.url}/api/v1/login", json={"identifier": "keyowner",
                                                              "password": "long enough pw"}, timeout=30).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    file = upload(server.url, CONTENT, "pin.txt", {"x-key-hash": KEY_HASH, **auth}).json()
    digest = hashlib.sha256(CONTENT).hexdigest()
    assert requests.get(f"{server.url}/api/v1/files/{file['id']}", headers=auth, timeout=10).json()["sha256"] == digest
    assert digest in session.get(f"{server.url}/download/{file['id']}", timeout=10).text
    assert requests.head(file["downloadUrl"], headers=auth, timeout=10).headers["ETag"] == f'"{digest}"'


def test_an_open_file_still_shows_its_digest(server):
    account = create_account(server.url)
    file = upload(server.url, CONTENT, "open.txt", account=account).json()
    assert file["sha256"] in requests.get(f"{server.url}/download/{file['id']}", timeout=10).text
    assert requests.head(file["downloadUrl"], timeout=10).headers["ETag"] == f'"{file["sha256"]}"'
