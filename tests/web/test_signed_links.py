"""Signed download links: made by the owner, usable without a token, dead after expiry, key change,
deletion or any tampering (plain HTTP against the real server)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
import requests

from tests.helpers import Account, create_account, error_code, upload, wait_for

DATA = b"signed link payload\n" * 1000


def make_link(base_url: str, account: Account, file_id: str, expires_in: object = 3600) -> requests.Response:
    return requests.post(f"{base_url}/api/v1/files/{file_id}/link", json={"expiresIn": expires_in},
                         headers=account.auth, timeout=30)


def uploaded(base_url: str, account: Account, data: bytes = DATA, name: str = "report.txt") -> dict:
    response = upload(base_url, data, name, account=account)
    assert response.status_code == 201, response.text
    return response.json()


def with_query(url: str, **changes: str | None) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    for key, value in changes.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_signed_link_downloads_without_a_token(server):
    account = create_account(server.url)
    file = uploaded(server.url, account)
    response = make_link(server.url, account, file["id"], 600)
    assert response.status_code == 201, response.text
    link = response.json()
    assert set(link) >= {"url", "expiresAt"}
    assert link["url"].startswith(f"{server.url}/api/v1/download/{file['region']}/{file['id']}/")
    download = requests.get(link["url"], timeout=30)
    assert download.status_code == 200
    assert download.content == DATA
    assert download.headers["Content-Disposition"].startswith("attachment;")
    head = requests.head(link["url"], timeout=30)
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(DATA))


def test_signed_link_of_a_keyed_file_needs_no_key_hash(server):
    account = create_account(server.url)
    file = uploaded(server.url, account)
    requests.post(f"{server.url}/api/v1/files/{file['id']}/key", json={"key": "open sesame"},
                  headers=account.auth).raise_for_status()
    assert error_code(requests.get(file["downloadUrl"])) == "key_required"
    url = make_link(server.url, account, file["id"]).json()["url"]
    assert requests.get(url).content == DATA


def test_signed_link_survives_a_different_host_header(server):
    """The signature covers method, path and expiry, not the Host header, so proxies do not break it."""
    account = create_account(server.url)
    file = uploaded(server.url, account)
    url = make_link(server.url, account, file["id"]).json()["url"]
    response = requests.get(url, headers={"Host": "files.example.org"})
    assert response.status_code == 200
    assert response.content == DATA


def test_signed_link_expires(server):
    account = create_account(server.url)
    file = uploaded(server.url, account)
    url = make_link(server.url, account, file["id"], 2).json()["url"]
    assert requests.get(url).status_code == 200
    # A Response with a 4xx status is falsy, so wait_for gets it wrapped in a list.
    response = wait_for(lambda: [r for r in [requests.get(url)] if r.status_code == 403], timeout=6,
                        message="the link to expire")[0]
    assert error_code(response) == "link_invalid"
    assert "expired" in response.json()["error"]["message"]


@pytest.mark.parametrize("change", ["key set", "key changed", "key cleared"])
def test_signed_link_dies_when_the_key_changes(server, change):
    account = create_account(server.url)
    file = uploaded(server.url, account)
    key_url = f"{server.url}/api/v1/files/{file['id']}/key"
    if change != "key set":
        requests.post(key_url, json={"key": "first phrase"}, headers=account.auth).raise_for_status()
    url = make_link(server.url, account, file["id"]).json()["url"]
    assert requests.get(url).status_code == 200
    new_key = {"key set": "a phrase", "key changed": "second phrase", "key cleared": None}[change]
    requests.post(key_url, json={"key": new_key}, headers=account.auth).raise_for_status()
    response = requests.get(url)
    assert response.status_code == 403
    assert error_code(response) == "link_invalid"


def test_signed_link_dies_when_the_file_is_deleted(server):
    account = create_account(server.url)
    file = uploaded(server.url, account)
    url = make_link(server.url, account, file["id"]).json()["url"]
    assert requests.delete(f"{server.url}/api/v1/files/{file['id']}", headers=account.auth).status_code == 204
    response = requests.get(url)
    assert response.status_code == 403
    assert error_code(response) == "link_invalid"
    assert "deleted" in response.json()["error"]["message"]
    assert requests.head(url).status_code == 403


@pytest.mark.parametrize("tamper", ["signature changed", "expiry extended", "signature removed", "expiry removed",
                                    "expiry not a number", "another file's path"])
def test_tampered_signed_link_is_refused(server, tamper):
    account = create_account(server.url)
    file = uploaded(server.url, account)
    other = uploaded(server.url, account, b"other bytes", "other.txt")
    link = make_link(server.url, account, file["id"]).json()
    url = link["url"]
    query = parse_qs(urlsplit(url).query)
    signature, expires = query["sig"][0], query["expires"][0]
    if tamper == "signature changed":
        url = with_query(url, sig=("A" if signature[0] != "A" else "B") + signature[1:])
    elif tamper == "expiry extended":
        url = with_query(url, expires=str(int(expires) + 3600))
    elif tamper == "signature removed":
        url = with_query(url, sig=None, keyHash=None)
        url += "&sig="
    elif tamper == "expiry removed":
        url = with_query(url, expires=None)
    elif tamper == "expiry not a number":
        url = with_query(url, expires="soon")
    else:
        url = url.replace(file["id"], other["id"])
    response = requests.get(url)
    assert response.status_code == 403, response.text
    assert error_code(response) == "link_invalid"


@pytest.mark.parametrize("expires_in,status", [
    (0, 400), (-5, 400), ("3600", 400), (1.5, 400), (True, 400), (10**9, 400), (3600, 201), (None, 201),
])
def test_link_lifetime_is_checked_against_max_link_lifetime(server_factory, expires_in, status):
    server = server_factory(max_link_lifetime=7200)
    account = create_account(server.url)
    file = uploaded(server.url, account)
    response = make_link(server.url, account, file["id"], expires_in)
    assert response.status_code == status, response.text
    if status == 400:
        assert error_code(response) == "bad_request"
        assert response.json()["error"]["field"] == "expiresIn"


def test_only_the_owner_can_make_a_link(server):
    owner = create_account(server.url)
    stranger = create_account(server.url)
    file = uploaded(server.url, owner)
    assert make_link(server.url, stranger, file["id"]).status_code == 404
    anonymous = requests.post(f"{server.url}/api/v1/files/{file['id']}/link", json={"expiresIn": 60})
    assert anonymous.status_code == 401
    assert error_code(anonymous) == "unauthorized"
