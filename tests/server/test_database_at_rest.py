"""What the database file holds and how it is opened: no plaintext secrets, WAL mode, `database_url`."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import requests

from tests.helpers import create_account, upload

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
