"""PostgreSQL as the store's database: several servers (nodes) on one database at once, and the admin
commands and fsck on a `database_url` from a config file. The API itself on PostgreSQL is tested by the
`both_databases` modules (tests/conftest.py)."""

from __future__ import annotations

import hashlib
import logging
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import psycopg
import pytest
import requests

from lockr_local.server.models import SCHEMA_VERSION, open_database
from tests.conftest import make_settings
from tests.helpers import REPO, Account, ThreadedServer, clean_env, create_account, error_code, upload, wait_for
from tests.server.session_tools import open_session, put_chunk


@pytest.fixture
def two_nodes(tmp_path: Path, pg_url: str) -> Iterator[tuple[ThreadedServer, ThreadedServer]]:
    """Two servers, each with its own data folder, on one PostgreSQL database."""
    nodes = [ThreadedServer(make_settings(tmp_path / name, database_url=pg_url)).start() for name in ("a", "b")]
    yield nodes[0], nodes[1]
    for node in nodes:
        node.stop()


def account_json(node: ThreadedServer, account: Account) -> dict[str, Any]:
    response = requests.get(f"{node.url}/api/v1/account", headers=account.auth, timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Runs the calls in threads released together; their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        results[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_two_nodes_replacing_one_webdav_name_at_once_keep_the_quota_equal_to_the_files(two_nodes):
    a, b = two_nodes
    alice = create_account(a.url, "alice")

    def put(node: ThreadedServer, size: int) -> Callable[[], int]:
        # Small bodies are kept in the database (inline_max), so both nodes hold every file's bytes.
        return lambda: requests.put(f"{node.url}/dav/alice/same.txt", data=b"x" * size, headers=alice.auth,
                                    timeout=60).status_code

    for round_ in range(8):
        statuses = at_once([put(node, 100 + 10 * round_ + i) for i, node in enumerate((a, b, a, b))])
        assert set(statuses) <= {201, 204}, statuses
    files = requests.get(f"{b.url}/api/v1/files", headers=alice.auth, timeout=30).json()["files"]
    assert [f["name"] for f in files] == ["same.txt"]
    assert account_json(a, alice)["used"] == files[0]["size"]


def test_two_nodes_cancelling_one_session_at_once_release_its_reservation_once(two_nodes):
    a, b = two_nodes
    alice = create_account(a.url, "alice")
    for _ in range(6):
        session = open_session(a.url, 5000, account=alice)
        assert account_json(b, alice)["reserved"] == 5000
        url = session["uploadUrl"]
        statuses = at_once([lambda node=node: requests.delete(url.replace(a.url, node.url), timeout=30).status_code
                            for node in (a, b, a, b)])
        assert 204 in statuses and set(statuses) <= {204, 404, 409}, statuses  # 409: busy on that node
        assert account_json(b, alice)["reserved"] == 0


def test_a_file_uploaded_through_one_node_is_listed_and_downloaded_through_the_other(two_nodes):
    a, b = two_nodes
    alice = create_account(a.url, "alice")
    stored = upload(a.url, b"small enough for the database", "note.txt", account=alice).json()
    response = requests.get(stored["downloadUrl"].replace(a.url, b.url), headers=alice.auth, timeout=30)
    assert response.status_code == 200 and response.content == b"small enough for the database"


def test_two_nodes_opening_a_new_database_at_once_make_one_schema(tmp_path: Path, pg_url: str):
    def open_and_close() -> str:
        database = open_database(pg_url)
        version = database.execute_sql("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
        database.close()
        return str(version)

    assert at_once([open_and_close] * 4) == [str(SCHEMA_VERSION)] * 4


def test_a_node_opening_a_database_of_the_current_schema_does_not_wait_for_other_nodes_writes(pg_url: str):
    open_database(pg_url).close()
    opened = threading.Event()

    def open_and_close() -> None:
        open_database(pg_url).close()
        opened.set()

    with psycopg.connect(pg_url) as other_node:
        other_node.execute("UPDATE account SET quota = quota")  # a write in progress on another node
        threading.Thread(target=open_and_close, daemon=True).start()
        in_time = opened.wait(10)
        other_node.rollback()
    assert in_time, "opening the database waited for another node's transaction"
    assert opened.wait(30)


def test_a_schema_3_postgresql_database_is_upgraded_in_place(pg_url: str):
    database = open_database(pg_url)
    database.execute_sql("INSERT INTO storedfile (file_id, name, size, content_type, region, sha256, sha1, md5, "
                         "key_version, created_at, inline) VALUES ('aaaa', 'old.bin', 3, 'text/plain', 'local', "
                         "'0', '', '', 0, 1.0, false)")
    for statement in ("DROP TABLE inlineblob", "ALTER TABLE storedfile DROP COLUMN inline",
                      "ALTER TABLE storedfile DROP COLUMN claim_hash",
                      "ALTER TABLE uploadsession DROP COLUMN claim_hash",
                      "UPDATE meta SET value = '3' WHERE key = 'schema_version'"):
        database.execute_sql(statement)
    database.close()
    database = open_database(pg_url)
    try:
        assert database.execute_sql("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == \
            str(SCHEMA_VERSION)
        assert database.execute_sql("SELECT inline, claim_hash FROM storedfile").fetchall() == [(False, None)]
        assert {"inlineblob"} <= set(database.get_tables())
    finally:
        database.close()


def cli(*args: str, config: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lockr_local", *args, "--config", str(config)], input=stdin,
                          capture_output=True, text=True, env=clean_env(), cwd=REPO, timeout=120)


def test_admin_commands_and_fsck_work_on_a_database_url_from_the_config_file(tmp_path: Path, pg_url: str):
    config = tmp_path / "lockr.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\ndatabase_url = "{pg_url}"\n')
    added = cli("user", "add", "dora", "--email", "dora@example.com", "--password-stdin", "--quota", "2GB",
                config=config, stdin="a long password\n")
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip()
    settings = make_settings(tmp_path / "data", database_url=pg_url)
    server = ThreadedServer(settings).start()
    try:
        auth = {"Authorization": f"Bearer {token}"}
        assert requests.get(f"{server.url}/api/v1/account", headers=auth, timeout=30).json()["quota"] == 2 * 10**9
        stored = requests.post(f"{server.url}/api/v1/upload", data=b"b" * 200_000, timeout=30,
                               headers={**auth, "x-file-name": "big.bin"})
        assert stored.status_code == 201, stored.text
    finally:
        server.stop()
    listed = cli("user", "list", config=config)
    assert listed.returncode == 0 and "dora" in listed.stdout, listed.stderr
    checked = cli("fsck", "--verify", config=config)
    assert checked.returncode == 0 and checked.stdout.strip().endswith("clean"), checked.stdout + checked.stderr
    taken = cli("user", "add", "DORA", "--email", "other@example.com", "--password-stdin", config=config,
                stdin="a long password\n")
    assert taken.returncode != 0 and "already registered" in taken.stderr


def test_a_signed_link_and_a_web_login_made_on_one_node_work_on_the_other(two_nodes):
    a, b = two_nodes
    alice = create_account(a.url, "alice")
    stored = upload(a.url, b"shared by link", "shared.txt", account=alice).json()
    link = requests.post(f"{a.url}/api/v1/files/{stored['id']}/link", json={"expiresIn": 600}, headers=alice.auth,
                         timeout=30).json()["url"]
    response = requests.get(link.replace(a.url, b.url), timeout=30)
    assert response.status_code == 200 and response.content == b"shared by link"

    browser = requests.Session()
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', browser.get(f"{a.url}/account", timeout=30).text)
    assert xsrf is not None
    logged_in = browser.post(f"{a.url}/account/login", allow_redirects=False, timeout=30, data={
        "_xsrf": xsrf.group(1), "identifier": "alice", "password": alice.password})
    assert logged_in.status_code == 302, logged_in.text
    files_page = requests.get(f"{b.url}/files", cookies=browser.cookies.get_dict(), allow_redirects=False, timeout=30)
    assert files_page.status_code == 200 and '<meta name="lockr-user" content="alice">' in files_page.text


def test_the_reaper_runs_on_one_node_at_a_time_and_deletes_each_expired_upload_once(tmp_path: Path, pg_url: str,
                                                                                    caplog: Any):
    caplog.set_level(logging.INFO, logger="lockr")
    nodes = [ThreadedServer(make_settings(tmp_path / name, database_url=pg_url, guest_retention="1s",
                                          reap_interval=0.1)).start() for name in ("a", "b")]
    try:
        a, b = nodes
        # A third node in the middle of a reaper run: neither node starts one meanwhile.
        third = psycopg.connect(pg_url, autocommit=True)
        third.execute("SELECT pg_advisory_lock(%s)", (0x6C6F636B7201,))
        guest_files = [upload(node.url, b"guest upload %d" % i, f"g{i}.txt").json() for i, node in enumerate(nodes * 3)]
        time.sleep(2.0)  # past guest_retention, many reaper intervals on both nodes
        assert all(requests.get(f["downloadUrl"], timeout=10).status_code == 200 for f in guest_files)
        third.close()  # that run ends
        for file in guest_files:
            wait_for(lambda: requests.get(file["downloadUrl"].replace(a.url, b.url), timeout=10).status_code == 404,
                     timeout=15, message="the expired guest upload to be reaped")
        deleted = [int(r.getMessage().split()[1]) for r in caplog.records
                   if r.getMessage().endswith("guest uploads older than guest_retention")]
        assert sum(deleted) == len(guest_files), deleted
    finally:
        for node in nodes:
            node.stop()


def test_a_chunk_on_one_node_while_the_other_writes_the_session_gets_409_session_busy(two_nodes):
    a, b = two_nodes
    alice = create_account(a.url, "alice")
    data = bytes(range(256)) * 4096  # 1 MiB
    url = open_session(a.url, len(data), account=alice)["uploadUrl"]
    session_id = url.rsplit("/", 1)[1]
    parts = urlsplit(url)
    first = data[:512 * 1024]
    head = (f"PUT {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Length: {len(first)}\r\n"
            f"Content-Range: bytes 0-{len(first) - 1}/{len(data)}\r\n\r\n").encode()
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as writer_on_a:
        writer_on_a.sendall(head + first[:100 * 1024])
        wait_for(lambda: session_id in a.ctx.sessions.live.busy(), message="node A's request to hold the session")
        intruder = put_chunk(url.replace(a.url, b.url), b"B" * (512 * 1024), 0, len(data))
        assert intruder.status_code == 409 and error_code(intruder) == "session_busy", intruder.text
        writer_on_a.sendall(first[100 * 1024:])
        assert writer_on_a.recv(65536).startswith(b"HTTP/1.1 308")
    # B's bytes never went in: the rest completes the upload with the right digest (on A: this fixture's
    # regions are each node's own folder, where A keeps the session's stored part).
    done = put_chunk(url, data[512 * 1024:], 512 * 1024, len(data))
    assert done.status_code in (200, 201), done.text
    assert done.json()["sha256"] == hashlib.sha256(data).hexdigest()


def test_password_guesses_spread_over_two_nodes_meet_one_login_limit(tmp_path: Path, pg_url: str):
    burst = 4
    nodes = [ThreadedServer(make_settings(tmp_path / name, database_url=pg_url, rate_login=0.001,
                                          rate_login_burst=burst)).start() for name in ("a", "b")]
    try:
        create_account(nodes[0].url, "alice")
        statuses = [requests.post(f"{nodes[i % 2].url}/api/v1/login", timeout=30,
                                  json={"identifier": "alice", "password": f"guess {i}"}).status_code
                    for i in range(2 * burst)]
        assert statuses == [401] * burst + [429] * burst
    finally:
        for node in nodes:
            node.stop()
