"""What the database file holds and how it is opened: no plaintext secrets, WAL mode, `database_url`."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import requests

from tests.conftest import make_settings
from tests.helpers import ThreadedServer, create_account, upload
from tests.server.session_tools import open_session, put_chunk

PASSWORD = "canary-password-7Qx"


def database_files(data_dir: Path) -> list[Path]:
    """The SQLite file and its WAL/shared-memory companions: recent writes may still sit in the WAL."""
    return sorted(data_dir.glob("lockr.db*"))


def all_values(db_file: Path) -> list[str]:
    """Every value of every row of every table, as text, read on a connection of our own."""
    with sqlite3.connect(f"file:{db_file}?mode=ro", uri=True) as conn:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        values = []
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                values.extend(str(value) for value in row)
    return values


def test_database_holds_no_plaintext_token_or_password(server):
    account = create_account(server.url, password=PASSWORD)
    made = requests.post(f"{server.url}/api/v1/tokens", json={"name": "laptop"}, headers=account.auth)
    second_token = made.json()["token"]
    assert requests.get(f"{server.url}/api/v1/files", auth=(account.username, PASSWORD)).status_code == 200
    data_dir = Path(server.settings.data_dir)
    secrets = [account.token.encode(), second_token.encode(), PASSWORD.encode()]
    files = database_files(data_dir)
    assert data_dir / "lockr.db" in files
    for path in files:
        raw = path.read_bytes()
        for secret in secrets:
            assert secret not in raw, f"{secret!r} is stored in plain text in {path.name}"
    values = all_values(data_dir / "lockr.db")
    assert not [v for v in values if any(s.decode() in v for s in secrets)]
    with sqlite3.connect(f"file:{data_dir / 'lockr.db'}?mode=ro", uri=True) as conn:
        (password_hash,) = conn.execute("SELECT password_hash FROM account WHERE username = ?",
                                        (account.username,)).fetchone()
        token_hashes = {row[0] for row in conn.execute("SELECT token_hash FROM apitoken")}
    # A memory-hard KDF with its parameters and salt, not a bare digest of the password.
    assert password_hash.startswith("$argon2id$v=19$m="), password_hash
    assert len(password_hash.split("$")) == 6
    assert hashlib.sha256(PASSWORD.encode()).hexdigest() not in password_hash
    # Tokens are random: their SHA-256 is what a stolen database would hold.
    assert hashlib.sha256(second_token.encode()).hexdigest() in token_hashes


def test_sqlite_runs_in_wal_mode(server):
    create_account(server.url)
    db_file = Path(server.settings.data_dir) / "lockr.db"
    with sqlite3.connect(db_file) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db_file.with_name("lockr.db-wal").exists()


def test_database_url_pointing_at_another_file_is_honoured(server_factory, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    srv = server_factory(database_url=f"sqlite:///{elsewhere}/custom.db")
    account = create_account(srv.url)
    assert upload(srv.url, b"kept elsewhere", "e.txt", account=account).status_code == 201
    assert not (Path(srv.settings.data_dir) / "lockr.db").exists()
    with sqlite3.connect(f"file:{elsewhere / 'custom.db'}?mode=ro", uri=True) as conn:
        assert conn.execute("SELECT username FROM account").fetchall() == [(account.username,)]
        assert conn.execute("SELECT name FROM storedfile").fetchall() == [("e.txt",)]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


SESSION_KEY_HASH = hashlib.sha256(b"canary session phrase").hexdigest()


def raw_forms(key_hash: str) -> list[bytes]:
    """How a raw keyHash could sit in a file: hex either case, or inside tus metadata as base64."""
    return [key_hash.encode(), key_hash.upper().encode(), base64.b64encode(key_hash.encode())]


def tus_with_key(base_url: str, account: Any, size: int) -> requests.Response:
    metadata = (f"filename {base64.b64encode(b'tus.bin').decode()},"
                f"keyHash {base64.b64encode(SESSION_KEY_HASH.encode()).decode()},note ")
    return requests.post(f"{base_url}/api/v1/tus/", timeout=30, headers={
        **account.auth, "Tus-Resumable": "1.0.0", "Upload-Length": str(size), "Upload-Metadata": metadata})


def test_an_upload_sessions_keyhash_is_never_stored_raw_nor_echoed(server):
    account = create_account(server.url)
    session = open_session(server.url, 10, "gcs.bin", account, keyHash=SESSION_KEY_HASH)
    created = tus_with_key(server.url, account, 10)
    assert created.status_code == 201, created.text
    head = requests.head(created.headers["Location"], headers={"Tus-Resumable": "1.0.0"}, timeout=30)
    assert head.status_code == 200
    echoed = head.headers.get("Upload-Metadata", "")
    assert "keyHash" not in echoed and not [f for f in raw_forms(SESSION_KEY_HASH) if f.decode() in echoed]
    assert f"filename {base64.b64encode(b'tus.bin').decode()}" in echoed  # the rest is still echoed
    finished = put_chunk(session["uploadUrl"], b"0123456789", 0, 10)
    assert finished.status_code == 201
    for path in database_files(Path(server.settings.data_dir)):
        raw = path.read_bytes()
        for form in raw_forms(SESSION_KEY_HASH):
            assert form not in raw, f"the raw keyHash is stored in {path.name}"
    # The key still guards the finished file.
    url = finished.json()["downloadUrl"]
    assert requests.get(url, timeout=30).status_code == 403
    assert requests.get(url, params={"keyHash": SESSION_KEY_HASH}, timeout=30).content == b"0123456789"


def test_sessions_of_an_older_store_have_their_raw_keyhash_protected_at_start(tmp_path):
    data_dir = tmp_path / "data"
    first = ThreadedServer(make_settings(data_dir)).start()
    try:
        account = create_account(first.url)
        session = open_session(first.url, 10, "old.bin", account, keyHash=SESSION_KEY_HASH)
        tus_url = tus_with_key(first.url, account, 10).headers["Location"]
    finally:
        first.stop()
    old_metadata = json.dumps({"tus": f"filename {base64.b64encode(b'tus.bin').decode()},keyHash "
                                      f"{base64.b64encode(SESSION_KEY_HASH.encode()).decode()}"})
    with sqlite3.connect(data_dir / "lockr.db") as conn:  # as schema 4 left them: the raw value, echoed
        conn.execute("UPDATE uploadsession SET key_hash = ?, metadata = ?", (SESSION_KEY_HASH, old_metadata))
        conn.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    second = ThreadedServer(make_settings(data_dir)).start()
    try:
        with sqlite3.connect(f"file:{data_dir / 'lockr.db'}?mode=ro", uri=True) as conn:
            rows = conn.execute("SELECT key_hash, metadata FROM uploadsession").fetchall()
        assert len(rows) == 2
        protected = second.ctx.signer.protect_key_hash(SESSION_KEY_HASH)
        assert {row[0] for row in rows} == {protected}
        assert not [row for row in rows if "keyHash" in row[1] or SESSION_KEY_HASH in row[1]]
        tus_url = tus_url.replace(first.url, second.url)  # a new port
        echoed = requests.head(tus_url, headers={"Tus-Resumable": "1.0.0"}, timeout=30).headers["Upload-Metadata"]
        assert echoed == f"filename {base64.b64encode(b'tus.bin').decode()}"
        finished = put_chunk(session["uploadUrl"].replace(first.url, second.url), b"0123456789", 0, 10)
        assert finished.status_code == 201
        url = finished.json()["downloadUrl"]
        assert requests.get(url, timeout=30).status_code == 403
        assert requests.get(url, params={"keyHash": SESSION_KEY_HASH}, timeout=30).content == b"0123456789"
    finally:
        second.stop()


def test_a_schema_4_store_gets_the_claim_columns_and_is_marked_for_the_session_key_step(tmp_path):
    from lockr_local.server.models import RAW_SESSION_KEYS, SCHEMA_VERSION, Meta, StoredFile, open_database

    path = tmp_path / "old.db"
    database = open_database(f"sqlite:///{path}")
    StoredFile.create(file_id="a" * 32, name="old.bin", size=3, content_type="application/octet-stream",
                      region="local", sha256="0" * 64, created_at=1.0)
    database.close()
    with sqlite3.connect(path) as raw:  # as schema 4 left it: no claim columns
        raw.execute("ALTER TABLE storedfile DROP COLUMN claim_hash")
        raw.execute("ALTER TABLE uploadsession DROP COLUMN claim_hash")
        raw.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    database = open_database(f"sqlite:///{path}")
    try:
        for table in ("storedfile", "uploadsession"):
            assert "claim_hash" in {column.name for column in database.get_columns(table)}
        assert Meta.get_by_id("schema_version").value == str(SCHEMA_VERSION)
        assert Meta.get_or_none(Meta.key == RAW_SESSION_KEYS) is not None
        assert StoredFile.get(StoredFile.file_id == "a" * 32).claim_hash is None  # no one can register it
    finally:
        database.close()
