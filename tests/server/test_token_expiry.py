"""Tokens made with an expiry (POST /api/v1/tokens expiresIn) work until then and answer 401 token_expired
after, on every path a token is presented on; the schema that added the expiry upgrades older stores."""

from __future__ import annotations

import calendar
import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import requests

from lockr_local.server.models import SCHEMA_VERSION, ApiToken, open_database
from lockr_local.server.service import MAX_TOKEN_LIFETIME
from tests.helpers import create_account, error_code, upload

pytestmark = pytest.mark.both_databases


def new_token(server: Any, auth: dict[str, str], **body: Any) -> dict[str, Any]:
    response = requests.post(f"{server.url}/api/v1/tokens", json={"name": "laptop", **body}, headers=auth, timeout=30)
    assert response.status_code == 201, response.text
    return dict(response.json())


def expire(server: Any, token: str) -> None:
    """Moves the token's expiry into the past, as time would (the server reads it on each request)."""
    from lockr_local.server.security import token_hash

    def past() -> int:
        return ApiToken.update(expires_at=time.time() - 1).where(ApiToken.token_hash == token_hash(token)).execute()

    assert server.ctx.db.run_sync(past) == 1


def test_a_token_with_expires_in_works_and_is_listed_with_its_expiry(server):
    account = create_account(server.url)
    before = time.time()
    made = new_token(server, account.auth, expiresIn=3600)
    expires_at = calendar.timegm(time.strptime(made["expiresAt"], "%Y-%m-%dT%H:%M:%SZ"))
    assert before + 3600 - 2 <= expires_at <= time.time() + 3600 + 1
    bearer = {"Authorization": f"Bearer {made['token']}"}
    assert requests.get(f"{server.url}/api/v1/files", headers=bearer, timeout=30).status_code == 200

    tokens = requests.get(f"{server.url}/api/v1/tokens", headers=account.auth, timeout=30).json()["tokens"]
    by_name = {t["name"]: t for t in tokens}
    assert by_name["laptop"]["expiresAt"] == made["expiresAt"] and by_name["laptop"]["expired"] is False
    assert by_name["first token"]["expiresAt"] is None and by_name["first token"]["expired"] is False


def test_a_token_without_expires_in_never_expires(server):
    account = create_account(server.url)
    made = new_token(server, account.auth)
    assert made["expiresAt"] is None
    assert requests.get(f"{server.url}/api/v1/files", headers={"Authorization": f"Bearer {made['token']}"},
                        timeout=30).status_code == 200


# Every way a token reaches the server: the API, WebDAV, an upload admitted before its body (a blob
# file) and one checked after it (small enough to be kept in the database), an upload session, tus.
AUTH_PATHS: list[tuple[str, Callable[[str, str, dict[str, str]], requests.Response]]] = [
    ("api list", lambda url, user, auth: requests.get(f"{url}/api/v1/files", headers=auth, timeout=30)),
    ("account", lambda url, user, auth: requests.get(f"{url}/api/v1/account", headers=auth, timeout=30)),
    ("webdav propfind", lambda url, user, auth: requests.request("PROPFIND", f"{url}/dav/{user}/",
                                                                 headers={"Depth": "1", **auth}, timeout=30)),
    ("webdav put", lambda url, user, auth: requests.put(f"{url}/dav/{user}/a.txt", data=b"x", headers=auth,
                                                        timeout=30)),
    ("big upload", lambda url, user, auth: upload(url, b"b" * 200_000, "big.bin", headers=auth)),
    ("small upload", lambda url, user, auth: upload(url, b"small", "small.txt", headers=auth)),
    ("upload session", lambda url, user, auth: requests.post(f"{url}/api/v1/upload/session",
                                                             json={"name": "s.bin", "size": 3}, headers=auth,
                                                             timeout=30)),
    ("tus", lambda url, user, auth: requests.post(f"{url}/api/v1/tus/", headers={
        "Tus-Resumable": "1.0.0", "Upload-Length": "3", **auth}, timeout=30)),
]


@pytest.mark.parametrize("send", [send for _, send in AUTH_PATHS], ids=[name for name, _ in AUTH_PATHS])
def test_an_expired_token_returns_401_token_expired_saying_how_to_get_a_new_one(server, send):
    account = create_account(server.url)
    token = new_token(server, account.auth, expiresIn=3600)["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert send(server.url, account.username, bearer).status_code < 400
    expire(server, token)

    response = send(server.url, account.username, bearer)
    assert response.status_code == 401, response.text
    assert error_code(response) == "token_expired"
    message = response.json()["error"]["message"]
    assert "expired" in message and "lockr-local login" in message and "token create" in message
    assert requests.get(f"{server.url}/api/v1/files", headers=account.auth, timeout=30).status_code == 200
    listed = requests.get(f"{server.url}/api/v1/tokens", headers=account.auth, timeout=30).json()["tokens"]
    assert [t["expired"] for t in listed if t["name"] == "laptop"] == [True]


@pytest.mark.parametrize("value", ["0", "-1", "-3600", str(MAX_TOKEN_LIFETIME + 1), str(2**63), str(2**64),
                                   "9" * 400, "1.5", "3600.0", '"3600"', '"30d"', "true", "false", "[]", "{}",
                                   '[3600]', '{"seconds": 3600}'])
def test_a_bad_expires_in_returns_400_and_makes_no_token(server, value):
    account = create_account(server.url)
    raw = '{"name": "bad", "expiresIn": %s}' % value
    response = requests.post(f"{server.url}/api/v1/tokens", data=raw.encode(),
                             headers={"Content-Type": "application/json", **account.auth}, timeout=30)
    assert response.status_code == 400, response.text
    assert error_code(response) == "bad_request" and response.json()["error"]["field"] == "expiresIn"
    tokens = requests.get(f"{server.url}/api/v1/tokens", headers=account.auth, timeout=30).json()["tokens"]
    assert [t["name"] for t in tokens] == ["first token"]


def test_a_schema_6_store_is_upgraded_and_its_tokens_keep_working_without_expiry(tmp_path: Path, database):
    url = database.new_url() or f"sqlite:///{tmp_path / 'old.db'}"
    db = open_database(url)
    from lockr_local.server.models import Account
    from lockr_local.server.security import token_hash

    account = Account.create(username="olga", email="olga@example.com", password_hash="x", quota=10, created_at=1.0)
    ApiToken.create(account=account, token_hash=token_hash("lkr_old"), prefix="lkr_old", name="old",
                    created_at=1.0)
    # As schema 6 left it: no expires_at column.
    if url.startswith("sqlite"):
        db.close()
        with sqlite3.connect(tmp_path / "old.db") as raw:
            raw.execute("ALTER TABLE apitoken DROP COLUMN expires_at")
            raw.execute("UPDATE meta SET value = '6' WHERE key = 'schema_version'")
    else:
        db.execute_sql("ALTER TABLE apitoken DROP COLUMN expires_at")
        db.execute_sql("UPDATE meta SET value = '6' WHERE key = 'schema_version'")
        db.close()
    db = open_database(url)
    try:
        assert db.execute_sql("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == \
            str(SCHEMA_VERSION)
        assert "expires_at" in {column.name for column in db.get_columns("apitoken")}
        row = ApiToken.get(ApiToken.prefix == "lkr_old")
        assert row.expires_at is None and row.revoked is False
    finally:
        db.close()


def test_token_json_has_the_fields_the_listing_pins():
    from lockr_local.server.wire import token_json

    token = ApiToken(id=1, prefix="lkr_abc", name="n", created_at=0.0, last_used_at=None, revoked=False,
                     expires_at=100.0)
    shown = token_json(token, now=100.0)
    assert json.loads(json.dumps(shown)) == {"id": 1, "prefix": "lkr_abc", "name": "n",
                                              "createdAt": "1970-01-01T00:00:00Z", "lastUsedAt": None,
                                              "revoked": False, "expiresAt": "1970-01-01T00:01:40Z",
                                              "expired": True}
