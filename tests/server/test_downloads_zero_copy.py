"""Downloads sent by sendfile: keep-alive, dropped and stalled clients, and the whole-file checksum."""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import sqlite3
import zlib
from pathlib import Path
from urllib.parse import urlsplit

import google_crc32c
import pytest
import requests

from lockr_local.server.models import SCHEMA_VERSION, StoredFile, open_database
from tests.helpers import create_account, upload, wait_for


def ports(client: socket.socket) -> tuple[int, int]:
    return client.getsockname()[1], client.getpeername()[1]


def server_holds(connection: tuple[int, int]) -> bool:
    """Whether this process (the threaded server) still has a descriptor on the server's end of the
    connection (client port, server port)."""
    client_port, server_port = connection
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port, remote_port = int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16)
            if (local_port, remote_port) == (server_port, client_port) and fields[9] != "0":
                inodes.add(f"socket:[{fields[9]}]")
    links = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            links.add(os.readlink(f"/proc/self/fd/{fd}"))
        except FileNotFoundError:
            continue
    return bool(inodes & links)


def get_request(path: str, token: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode()


def stored_path(server, file: dict) -> Path:
    return server.ctx.blobs.root("local") / "objects" / file["id"][:2] / file["id"]


def test_two_whole_file_downloads_share_one_keep_alive_connection(server):
    account = create_account(server.url)
    data = os.urandom(5 * 1024 * 1024 + 3)
    file = upload(server.url, data, "two.bin", account=account).json()
    parts = urlsplit(file["downloadUrl"])
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        bodies, sockets = [], []
        for headers in ({}, {"Range": "bytes=100-"}):
            connection.request("GET", parts.path, headers={**account.auth, **headers})
            response = connection.getresponse()
            bodies.append((response.status, response.read()))
            sockets.append(connection.sock)
            assert response.getheader("X-Content-Type-Options") == "nosniff"
    finally:
        connection.close()
    assert bodies == [(200, data), (206, data[100:])]
    assert sockets[0] is sockets[1], "the server closed the connection after a sendfile download"


def test_client_that_hangs_up_mid_download_costs_the_server_nothing(server):
    account = create_account(server.url)
    data = os.urandom(48 * 1024 * 1024)
    file = upload(server.url, data, "big.bin", account=account).json()
    parts = urlsplit(file["downloadUrl"])
    hung_up = []
    for _ in range(3):
        raw = socket.create_connection((parts.hostname, parts.port))
        raw.sendall(get_request(parts.path, account.token))
        assert raw.recv(65536).startswith(b"HTTP/1.1 200")
        hung_up.append(ports(raw))
        raw.close()
    # The server's duplicated socket is closed as soon as a send fails; nothing stays open.
    for connection in hung_up:
        wait_for(lambda: not server_holds(connection), timeout=15,
                 message="the server to let go of a hung-up download")
    again = requests.get(file["downloadUrl"], headers=account.auth, timeout=60)
    assert hashlib.sha256(again.content).hexdigest() == file["sha256"]


def test_client_that_stops_reading_is_cut_off_after_the_idle_timeout(server_factory):
    srv = server_factory(body_idle_timeout=1.0)
    account = create_account(srv.url)
    file = upload(srv.url, os.urandom(64 * 1024 * 1024), "stuck.bin", account=account).json()
    parts = urlsplit(file["downloadUrl"])
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    raw.connect((parts.hostname, parts.port))
    try:
        raw.sendall(get_request(parts.path, account.token))
        assert raw.recv(1024).startswith(b"HTTP/1.1 200")
        connection = ports(raw)
        assert server_holds(connection)
        wait_for(lambda: not server_holds(connection), timeout=20, message="the server to drop the stalled download")
        # Other clients were served all along.
        assert requests.get(f"{srv.url}/healthz", timeout=10).status_code == 200
    finally:
        raw.close()


@pytest.mark.parametrize("stored_as", ["sha256 only (schema 1)", "zlib CRC-32 (schema 2)"])
def test_file_stored_with_an_older_check_is_verified_with_it(server, stored_as):
    account = create_account(server.url)
    data = os.urandom(2 * 1024 * 1024 + 5)
    file = upload(server.url, data, "old.bin", account=account).json()
    # As a file uploaded before schema 3 recorded CRC-32C (schema 2 recorded zlib's CRC-32, schema 1 nothing).
    crc32 = zlib.crc32(data) if "CRC-32" in stored_as else None
    server.ctx.db.run_sync(lambda: StoredFile.update(crc32c=None, crc32=crc32)
                           .where(StoredFile.file_id == file["id"]).execute())
    assert requests.get(file["downloadUrl"], headers=account.auth, timeout=30).content == data
    path = stored_path(server, file)
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x01
    path.write_bytes(bytes(raw))
    try:
        body = requests.get(file["downloadUrl"], headers=account.auth, timeout=30).content
    except requests.exceptions.ChunkedEncodingError:
        body = None
    assert body != bytes(raw), f"a corrupted file checked by its {stored_as} was served in full as if good"


def test_new_files_record_a_crc32c_and_no_zlib_crc32(server):
    account = create_account(server.url)
    data = os.urandom(300_000)
    file = upload(server.url, data, "new.bin", account=account).json()
    row = server.ctx.db.run_sync(StoredFile.get, StoredFile.file_id == file["id"])
    assert (row.crc32c, row.crc32) == (google_crc32c.value(data), None)


def test_store_made_by_schema_1_gains_the_crc32_columns_and_keeps_its_rows(tmp_path):
    path = tmp_path / "lockr.db"
    database = open_database(f"sqlite:///{path}")
    StoredFile.insert(file_id="a" * 32, name="old.txt", size=1, content_type="text/plain", region="local",
                      sha256="0" * 64, created_at=0.0).execute()
    database.close()
    with sqlite3.connect(path) as raw:
        raw.execute("ALTER TABLE storedfile DROP COLUMN crc32")
        raw.execute("ALTER TABLE storedfile DROP COLUMN crc32c")
        raw.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    database = open_database(f"sqlite:///{path}")
    try:
        row = StoredFile.get(StoredFile.file_id == "a" * 32)
        assert (row.name, row.crc32, row.crc32c) == ("old.txt", None, None)
        version = database.execute_sql("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
        assert int(version) == SCHEMA_VERSION
    finally:
        database.close()
