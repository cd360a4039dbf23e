"""A username is one identity whatever the case of its letters; stores that hold look-alike pairs still start."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import peewee
import pytest
import requests

from lockr_local.server.models import SCHEMA_VERSION, Account, open_database
from lockr_local.server.security import PasswordCost, hash_password
from tests.helpers import ServerProcess, create_account, error_code
from tests.test_cli_admin import cli


@pytest.mark.parametrize("taken, wanted", [("Alice", "alice"), ("bob", "BOB"), ("Carol.X", "cArOl.x")])
def test_sign_up_with_a_name_differing_only_in_case_returns_409(server, taken, wanted):
    create_account(server.url, taken)
    response = requests.post(f"{server.url}/api/v1/account", json={
        "username": wanted, "email": f"other.{wanted}@example.com", "password": "long enough pw"})
    assert response.status_code == 409 and error_code(response) == "already_exists", response.text
    assert response.json()["error"]["field"] == "username"


def test_login_basic_auth_and_webdav_find_the_account_by_any_case(server):
    account = create_account(server.url, "Alice", password="long enough pw")
    login = requests.post(f"{server.url}/api/v1/login", json={"identifier": "aLICE", "password": "long enough pw"})
    assert login.status_code == 200 and login.json()["username"] == "Alice"  # the case it signed up with
    assert requests.get(f"{server.url}/api/v1/files", auth=("ALICE", "long enough pw")).status_code == 200
    listing = requests.request("PROPFIND", f"{server.url}/dav/alice/", headers={"Depth": "1"},
                               auth=("alice", "long enough pw"))
    assert listing.status_code == 207, listing.text
    assert "/dav/alice/" in listing.text
    put = requests.put(f"{server.url}/dav/ALICE/notes.txt", data=b"hi", headers=account.auth)
    assert put.status_code in (201, 204), put.text
    moved = requests.request("MOVE", f"{server.url}/dav/alice/notes.txt", headers={
        **account.auth, "Destination": f"{server.url}/dav/Alice/moved.txt"})
    assert moved.status_code in (201, 204), moved.text
    names = [f["name"] for f in requests.get(f"{server.url}/api/v1/files", headers=account.auth).json()["files"]]
    assert names == ["moved.txt"]


def make_schema_4_store(data: Path, usernames: list[str]) -> Path:
    """A store as schema 4 left it: no LoginAddress table and no index on lower(username), so it may
    hold names that differ only in case."""
    data.mkdir(parents=True, mode=0o700)  # private, so that fsck's permission check stays out of these tests
    path = data / "lockr.db"
    database = open_database(f"sqlite:///{path}")
    for i, _ in enumerate(usernames):
        Account.create(username=f"placeholder{i}", email=f"user{i}@example.com",
                       password_hash=hash_password(f"password of {i}", PasswordCost(19 * 1024, 2)), quota=10**9, created_at=1.0 + i)
    database.close()
    with sqlite3.connect(path) as raw:
        indexes = [row[1] for row in raw.execute("PRAGMA index_list(account)")]
        for name in indexes:
            if not name.startswith("sqlite_autoindex"):
                raw.execute(f'DROP INDEX "{name}"')
        raw.execute("DROP TABLE loginaddress")
        raw.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
        for i, username in enumerate(usernames):
            raw.execute("UPDATE account SET username = ? WHERE username = ?", (username, f"placeholder{i}"))
    return path


def test_a_schema_4_store_is_upgraded_and_refuses_a_second_case_of_a_name(tmp_path):
    path = make_schema_4_store(tmp_path / "data", ["Dora"])
    database = open_database(f"sqlite:///{path}")
    try:
        assert database.execute_sql("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == \
            str(SCHEMA_VERSION)
        assert "loginaddress" in database.get_tables()
        with pytest.raises(peewee.IntegrityError):
            Account.create(username="dORA", email="d2@example.com", password_hash="x", quota=1, created_at=1.0)
    finally:
        database.close()


def test_a_store_holding_a_case_pair_starts_and_fsck_names_the_pair_with_the_next_step(tmp_path):
    data = tmp_path / "data"
    make_schema_4_store(data, ["Alice", "alice"])
    server = ServerProcess(data).start()
    try:
        def login(identifier: str, password: str) -> requests.Response:
            return requests.post(f"{server.url}/api/v1/login", json={"identifier": identifier, "password": password})

        # Each keeps logging in by its exact spelling; another spelling names neither.
        assert login("Alice", "password of 0").json()["username"] == "Alice"
        assert login("alice", "password of 1").json()["username"] == "alice"
        assert login("ALICE", "password of 0").status_code == 401
        report = cli("fsck", data_dir=data)
        assert report.returncode == 1
        assert "differ only in case: Alice, alice" in report.stdout, report.stdout
        assert "lockr-local user rename" in report.stdout + report.stderr
        renamed = cli("user", "rename", "alice", "alice2", data_dir=data)
        assert renamed.returncode == 0, renamed.stderr
        assert login("alice2", "password of 1").json()["username"] == "alice2"
        assert login("ALICE", "password of 0").json()["username"] == "Alice"
        assert cli("fsck", data_dir=data).returncode == 0
    finally:
        server.stop()
    # With the pair gone, the next start makes the name unique regardless of case.
    database = open_database(f"sqlite:///{data / 'lockr.db'}")
    try:
        with pytest.raises(peewee.IntegrityError):
            Account.create(username="ALICE2", email="a3@example.com", password_hash="x", quota=1, created_at=1.0)
    finally:
        database.close()


def test_user_rename_refuses_a_name_taken_in_another_case(tmp_path):
    data = tmp_path / "data"
    ServerProcess(data).start().stop()  # only serve makes a store
    for name in ("erin", "frank"):
        assert cli("user", "add", name, "--email", f"{name}@example.com", "--password-stdin", data_dir=data,
                   stdin="a long password\n").returncode == 0
    refused = cli("user", "rename", "frank", "ERIN", data_dir=data)
    assert refused.returncode != 0 and "already registered" in refused.stderr
    assert "Traceback" not in refused.stderr
