"""The packaged program as a node: dist/lockr-local on PostgreSQL and a bucket, with nothing else installed.

The release executable carries psycopg (with the libpq of its binary wheel) and boto3, so the same file
serves a single box and a node of several. These tests run it against the private PostgreSQL cluster
(tests/postgres.py) and moto's S3 server over HTTP (tests/objectstore.py), with a clean environment in
an empty folder; PSYCOPG_IMPL=binary makes psycopg refuse any libpq but the bundled one (a system libpq,
as this machine has, would otherwise hide a bundle without it).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.helpers import Account
from tests.packaging.conftest import ExeServer, exe_env, run_exe
from tests.packaging.test_executable import bundled
from tests.server.session_tools import open_session, put_chunk

pytestmark = pytest.mark.exe

MiB = 2**20


def node_env(home: Path) -> dict[str, str]:
    return exe_env(home, PSYCOPG_IMPL="binary")


def write_config(home: Path, database_url: str, region: str) -> Path:
    """The settings every node of a cluster shares: the database and a bucket region."""
    config = home / "node.toml"
    config.write_text(f'database_url = "{database_url}"\nregions = "local={region}"\n', encoding="utf-8")
    return config


def add_user(executable: Path, home: Path, name: str, *store: str) -> Account:
    added = run_exe(executable, home, "user", "add", name, "--email", f"{name}@example.com", *store,
                    env=node_env(home))
    assert added.returncode == 0, added.stderr
    return Account(name, f"{name}@example.com", "", added.stdout.strip())


def stored_row(pg_url: str, file_id: str) -> tuple[Any, ...] | None:
    import psycopg

    with psycopg.connect(pg_url) as connection:
        return connection.execute("SELECT size, sha256, region, inline FROM storedfile WHERE file_id = %s",
                                  (file_id,)).fetchone()


def object_sha256(s3: Any, bucket: str, key: str) -> str:
    return hashlib.sha256(s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest()


def download(url: str, account: Account) -> bytes:
    response = requests.get(url, headers=account.auth, timeout=60)
    assert response.status_code == 200, response.text
    return response.content


def test_bundle_carries_libpq_and_only_the_aws_service_models_a_node_calls(executable: Path) -> None:
    files, modules = bundled(executable)
    assert {"psycopg", "psycopg.pq", "psycopg_binary", "boto3", "botocore.client", "s3transfer"} <= modules
    for extension in ("pq", "_psycopg"):  # psycopg's C implementation, imported by name
        assert any(re.fullmatch(rf"psycopg_binary/{extension}\.[^/]+\.(so|pyd)", name) for name in files), extension
    assert any(re.fullmatch(r"psycopg_binary(\.libs|/\.dylibs)/libpq[^/]*", name) for name in files), \
        "psycopg's libpq is not in the executable"
    services = {name.split("/")[2] for name in files if name.startswith("botocore/data/") and name.count("/") > 3}
    assert services == {"s3", "sts", "sso", "sso-oidc", "signin"}, sorted(services)[:20]
    assert {"botocore/data/endpoints.json", "botocore/data/partitions.json", "botocore/data/_retry.json",
            "botocore/data/sdk-default-configuration.json"} <= files
    assert not [name for name in files if name.startswith("boto3/data/")], "boto3's resource models are unused"


def test_serve_on_postgresql_and_a_bucket_uploads_directly_and_by_session_and_downloads(
        executable: Path, exe_home: Path, pg_url: str, s3_server: Any) -> None:
    bucket = s3_server.new_bucket()
    config = write_config(exe_home, pg_url, s3_server.region_url(bucket, prefix="blobs"))
    store = ("--config", str(config), "--data-dir", str(exe_home / "node"))
    server = ExeServer(executable, exe_home, *store, env=node_env(exe_home)).start()
    try:
        assert requests.get(f"{server.url}/healthz", timeout=30).json()["status"] == "ok"
        account = add_user(executable, exe_home, "olga", *store)

        # Direct: over one 8 MiB part, so a multipart upload into the bucket.
        direct = os.urandom(9 * MiB + 5)
        response = requests.post(f"{server.url}/api/v1/upload", data=direct, timeout=120,
                                 headers={"x-file-name": "direct.bin", "Content-Type": "application/octet-stream",
                                          **account.auth})
        assert response.status_code == 201, response.text
        direct_file = response.json()
        assert direct_file["sha256"] == hashlib.sha256(direct).hexdigest()

        # Resumable: a chunk of a whole part plus a tail, then the rest.
        resumable = os.urandom(7 * MiB + 3)
        session = open_session(server.url, len(resumable), "resumable.bin", account)
        first = put_chunk(session["uploadUrl"], resumable[:6 * MiB], 0, len(resumable), timeout=120)
        assert first.status_code == 308 and first.headers["Range"] == f"bytes=0-{6 * MiB - 1}", first.text
        last = put_chunk(session["uploadUrl"], resumable[6 * MiB:], 6 * MiB, len(resumable), timeout=120)
        assert last.status_code == 201, last.text
        session_file = last.json()
        assert session_file["sha256"] == hashlib.sha256(resumable).hexdigest()

        for file, data in ((direct_file, direct), (session_file, resumable)):
            assert download(file["downloadUrl"], account) == data
            # The bytes are an object in the bucket and the row is in PostgreSQL, not in the node's folder.
            assert object_sha256(s3_server, bucket, f"blobs/objects/{file['id']}") == file["sha256"]
            assert stored_row(pg_url, file["id"]) == (len(data), file["sha256"], "local", False)
        assert not s3_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads"), "an upload left open"
        assert not (exe_home / "node" / "lockr.db").exists(), "the node made a SQLite database"
    finally:
        status, stderr = server.stop()
    assert status == 0, stderr
    assert "Traceback" not in stderr, stderr


def test_migrate_moves_a_single_box_into_postgresql_and_a_bucket_that_a_node_then_serves(
        executable: Path, exe_home: Path, pg_url: str, s3_server: Any) -> None:
    source = ("--data-dir", str(exe_home / "box"))
    box = ExeServer(executable, exe_home, *source, env=node_env(exe_home)).start()
    try:
        account = add_user(executable, exe_home, "boris", *source)
        files = {"note.txt": b"small enough to live in the database", "photo.jpg": os.urandom(300_000)}
        ids = {}
        for name, data in files.items():
            response = requests.post(f"{box.url}/api/v1/upload", data=data, timeout=60,
                                     headers={"x-file-name": name, "Content-Type": "application/octet-stream",
                                              **account.auth})
            assert response.status_code == 201, response.text
            ids[name] = response.json()["id"]
    finally:
        assert box.stop()[0] == 0
    bucket = s3_server.new_bucket()
    region = s3_server.region_url(bucket, prefix="blobs")

    migrated = run_exe(executable, exe_home, "migrate", *source, "--quiet", "--to-database-url", pg_url,
                       "--to-region", f"local={region}", env=node_env(exe_home), timeout=300)

    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "clean" in migrated.stdout.splitlines() and "Traceback" not in migrated.stderr, migrated.stdout
    assert stored_row(pg_url, ids["photo.jpg"])[:3] == (300_000, hashlib.sha256(files["photo.jpg"]).hexdigest(),
                                                         "local")
    assert object_sha256(s3_server, bucket, f"blobs/objects/{ids['photo.jpg']}") == \
        hashlib.sha256(files["photo.jpg"]).hexdigest()
    node = ExeServer(executable, exe_home, "--config", str(write_config(exe_home, pg_url, region)),
                     "--data-dir", str(exe_home / "node"), env=node_env(exe_home)).start()
    try:
        for name, data in files.items():
            assert download(f"{node.url}/api/v1/download/local/{ids[name]}", account) == data, name
    finally:
        status, stderr = node.stop()
    assert status == 0 and "Traceback" not in stderr, stderr
