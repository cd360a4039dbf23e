"""`lockr-local migrate`: a single box (SQLite + a folder) into PostgreSQL + an S3 bucket, run as a user runs it;
the old store is left as it was, the new one serves the same accounts, tokens, files, keys and links, and a
run killed partway is finished by the next one without copying twice."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

import psycopg
import pytest
import requests

from tests.conftest import make_settings
from tests.helpers import REPO, ServerProcess, ThreadedServer, clean_env, create_account, upload, wait_for
from tests.server.session_tools import open_session, put_chunk

KEY_HASH = hashlib.sha256(b"a key phrase").hexdigest()


@pytest.fixture
def pg_url(postgres_cluster: Any) -> Iterator[str]:
    """A new, empty PostgreSQL database."""
    name = postgres_cluster.create_database(empty=True)
    yield str(postgres_cluster.url(name))
    postgres_cluster.drop_database(name)


def migrate(source: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(migrate_command(source, *args), capture_output=True, text=True, env=clean_env(), cwd=REPO,
                          timeout=timeout)


def migrate_command(source: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "lockr_local", "migrate", "--data-dir", str(source), *args]


def tree_hashes(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def bucket_keys(s3: Any, bucket: str) -> dict[str, Any]:
    """Key -> LastModified of every object in the bucket."""
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {entry["Key"]: entry["LastModified"] for page in pages for entry in page.get("Contents", [])}


def row_counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as connection:
        return {table: connection.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]
                for table in ("account", "apitoken", "storedfile", "inlineblob", "uploadsession")}


def test_migrated_store_serves_the_same_accounts_files_keys_and_links_and_the_source_is_untouched(
        tmp_path: Path, pg_url: str, s3_server: Any) -> None:
    source = tmp_path / "old"
    old = ServerProcess(source).start()  # as the old box ran: `lockr-local serve`
    try:
        account = create_account(old.url, "ada", password="the old password")
        files = {name: data for name, data in (("small.txt", b"small inline bytes"),
                                                ("photo.jpg", os.urandom(300_000)),
                                                ("big.bin", os.urandom(9 * 2**20 + 5)))}  # a multipart upload
        ids = {}
        for name, data in files.items():
            response = upload(old.url, data, name, account=account)
            assert response.status_code == 201, response.text
            ids[name] = response.json()["id"]
        keyed = upload(old.url, b"keyed bytes " * 10_000, "keyed.bin", {"x-key-hash": KEY_HASH}, account).json()
        guest = upload(old.url, os.urandom(100_000), "guest.bin").json()
        link = requests.post(f"{old.url}/api/v1/files/{ids['photo.jpg']}/link", json={"expiresIn": 3600},
                             headers=account.auth, timeout=30).json()["url"]
        session = open_session(old.url, 3 * 2**20, "unfinished.bin", account)
        assert put_chunk(session["uploadUrl"], b"u" * 2**20, 0, 3 * 2**20).status_code == 308
    finally:
        old.stop()
    before = tree_hashes(source)
    bucket = s3_server.new_bucket()
    region = s3_server.region_url(bucket)

    result = migrate(source, "--to-database-url", pg_url, "--to-region", f"local={region}")

    assert result.returncode == 0, result.stderr
    assert "clean" in result.stdout.splitlines() and "Traceback" not in result.stderr
    assert "Migrated 1 account, 1 API token and 5 files" in result.stderr
    assert "Left behind: 1 unfinished upload session " in result.stderr
    assert tree_hashes(source) == before, "the source store changed"
    new = ThreadedServer(make_settings(tmp_path / "new", database_url=pg_url, regions=f"local={region}")).start()
    try:
        login = requests.post(f"{new.url}/api/v1/login", json={"identifier": "ada", "password": "the old password"},
                              timeout=30)
        assert login.status_code == 200, login.text
        me = requests.get(f"{new.url}/api/v1/account", headers=account.auth, timeout=30)
        assert me.status_code == 200 and me.json()["username"] == "ada"
        listed = requests.get(f"{new.url}/api/v1/files", headers=account.auth, timeout=30).json()
        assert {item["id"] for item in listed["files"]} == {*ids.values(), keyed["id"]}
        for name, data in files.items():
            got = requests.get(f"{new.url}/api/v1/download/local/{ids[name]}", headers=account.auth, timeout=60)
            assert got.status_code == 200 and got.content == data, name
        keyed_url = f"{new.url}/api/v1/download/local/{keyed['id']}"
        assert requests.get(keyed_url, timeout=30).status_code == 403
        assert requests.get(keyed_url, params={"keyHash": KEY_HASH}, timeout=30).content == b"keyed bytes " * 10_000
        assert requests.get(f"{new.url}/api/v1/download/local/{guest['id']}", timeout=30).status_code == 200
        signed = requests.get(link.replace(link.split("/api/")[0], new.url), timeout=30)
        assert signed.status_code == 200 and signed.content == files["photo.jpg"]
        # New rows get new ids past the copied ones (the sequences moved on).
        assert upload(new.url, b"after the move", "new.txt", account=account).status_code == 201
        create_account(new.url, "grace")
    finally:
        new.stop()


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "Ctrl-C"])
def test_a_migration_killed_partway_is_finished_by_the_next_run_without_copying_twice(
        tmp_path: Path, pg_url: str, s3_server: Any, stop: signal.Signals) -> None:
    source = tmp_path / "old"
    old = ThreadedServer(make_settings(source, inline_max="0")).start()
    try:
        account = create_account(old.url)
        for n in range(120):
            assert upload(old.url, os.urandom(200_000), f"f{n}.bin", account=account).status_code == 201
    finally:
        old.stop()
    bucket = s3_server.new_bucket()
    config = tmp_path / "new.toml"
    config.write_text(f'database_url = "{pg_url}"\nregions = "local={s3_server.region_url(bucket)}"\n')
    args = ["--to-config", str(config)]
    killed = subprocess.Popen(migrate_command(source, *args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, env=clean_env(), cwd=REPO)
    try:
        wait_for(lambda: len(bucket_keys(s3_server, bucket)) >= 10 or killed.poll() is not None, timeout=120,
                 interval=0.01, message="the first blobs in the bucket")
    finally:
        killed.send_signal(stop)
        _, stderr = killed.communicate(timeout=60)
    if stop == signal.SIGKILL:
        assert killed.returncode == -signal.SIGKILL, "the migration finished before it could be killed"
    else:
        assert killed.returncode == 130, stderr
        assert "run the same command again to continue" in stderr and "Traceback" not in stderr
    copied_before = bucket_keys(s3_server, bucket)
    assert 10 <= len(copied_before) < 120
    refused = subprocess.run([sys.executable, "-m", "lockr_local", "serve", "--port", "0", "--data-dir",
                              str(tmp_path / "new")], capture_output=True, text=True, cwd=REPO, timeout=60,
                             env=clean_env(LOCKR_CONFIG=str(config)))
    assert refused.returncode != 0 and "has not finished" in refused.stderr

    result = migrate(source, *args)

    assert result.returncode == 0, result.stderr
    assert f"{len(copied_before)} copied by an earlier run" in result.stderr
    after = bucket_keys(s3_server, bucket)
    assert len(after) == 120
    assert all(after[key] == when for key, when in copied_before.items()), "a blob was copied again"
    assert row_counts(pg_url) == {"account": 1, "apitoken": 1, "storedfile": 120, "inlineblob": 0, "uploadsession": 0}
    assert "clean" in result.stdout.splitlines()
    again = migrate(source, *args, "--json")
    assert again.returncode == 0 and "already migrated" in again.stderr
    answer = json.loads(again.stdout)
    assert answer["alreadyMigrated"] is True and answer["blobsCopied"] == 0 and answer["check"]["clean"] is True
    assert row_counts(pg_url)["storedfile"] == 120


def test_a_target_database_holding_another_store_is_refused_and_nothing_is_copied(
        tmp_path: Path, pg_url: str, s3_server: Any) -> None:
    other = ThreadedServer(make_settings(tmp_path / "other", database_url=pg_url)).start()
    create_account(other.url, "someone")
    other.stop()
    source = tmp_path / "old"
    old = ThreadedServer(make_settings(source, inline_max="0")).start()
    upload(old.url, os.urandom(100_000), "x.bin", account=create_account(old.url, "ada"))
    old.stop()
    bucket = s3_server.new_bucket()

    result = migrate(source, "--to-database-url", pg_url, "--to-region", f"local={s3_server.region_url(bucket)}")

    assert result.returncode == 1
    assert "already holds a lockr-local store (1 accounts" in result.stderr
    assert "new, empty database" in result.stderr and "Traceback" not in result.stderr
    assert bucket_keys(s3_server, bucket) == {}
    assert row_counts(pg_url)["account"] == 1


def test_a_region_missing_in_the_target_is_refused_before_anything_is_copied(
        tmp_path: Path, pg_url: str, s3_server: Any) -> None:
    source = tmp_path / "old"
    old = ThreadedServer(make_settings(source, inline_max="0")).start()
    upload(old.url, os.urandom(100_000), "x.bin", account=create_account(old.url))
    old.stop()
    bucket = s3_server.new_bucket()

    result = migrate(source, "--to-database-url", pg_url, "--to-region", f"elsewhere={s3_server.region_url(bucket)}")

    assert result.returncode == 1
    assert "region local, which the target lacks" in result.stderr and "--to-region" in result.stderr
    assert bucket_keys(s3_server, bucket) == {}
    with psycopg.connect(pg_url) as connection:
        assert connection.execute("SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0] == 0


def test_a_resumed_run_whose_region_now_holds_another_stores_files_is_refused(
        tmp_path: Path, pg_url: str, s3_server: Any) -> None:
    source = tmp_path / "old"
    old = ThreadedServer(make_settings(source, inline_max="0")).start()
    try:
        account = create_account(old.url)
        ids = [upload(old.url, os.urandom(50_000), f"f{n}.bin", account=account).json()["id"] for n in range(5)]
    finally:
        old.stop()
    first = s3_server.new_bucket()
    # An unfinished migration: one file's bytes are away, so the first run copies the others and stops.
    blob = make_settings(source).region_paths["local"] / "objects" / ids[0][:2] / ids[0]
    away = blob.rename(tmp_path / "away")
    stopped = migrate(source, "--to-database-url", pg_url, "--to-region", f"local={s3_server.region_url(first)}")
    assert stopped.returncode != 0 and "1 files of the source could not be copied" in stopped.stderr
    away.rename(blob)
    assert len(bucket_keys(s3_server, first)) == 4
    # The region now names another bucket, where another store keeps its files.
    other = s3_server.new_bucket()
    other_store = ThreadedServer(make_settings(tmp_path / "other", inline_max="0",
                                               regions=f"local={s3_server.region_url(other)}"))
    other_store.start()
    try:
        assert upload(other_store.url, b"another store's file", "theirs.txt").status_code == 201
    finally:
        other_store.stop()
    theirs = bucket_keys(s3_server, other)
    assert len(theirs) == 1

    result = migrate(source, "--to-database-url", pg_url, "--to-region", f"local={s3_server.region_url(other)}")

    assert result.returncode == 1, result.stderr
    assert "Target region local is not where it was when this migration began, and holds files of another " \
           "store" in result.stderr and "Traceback" not in result.stderr
    assert bucket_keys(s3_server, other) == theirs, "the other store's bucket changed"
    assert len(bucket_keys(s3_server, first)) == 4
    assert row_counts(pg_url)["storedfile"] == 0
    # Given back its first place, the migration finishes.
    finished = migrate(source, "--to-database-url", pg_url, "--to-region", f"local={s3_server.region_url(first)}")
    assert finished.returncode == 0, finished.stderr
    assert "4 copied by an earlier run" in finished.stderr and row_counts(pg_url)["storedfile"] == 5


# Peak memory of the migrate process (VmHWM: not inherited from the parent, unlike ru_maxrss), printed last.
PEAK_MEMORY = ("import sys\nfrom lockr_local.cli import main\ncode = main(sys.argv[1:])\n"
               "print(next(line for line in open('/proc/self/status') if line.startswith('VmHWM')), file=sys.stderr)\n"
               "sys.exit(code)")


def test_a_large_file_streams_through_in_flat_memory(tmp_path: Path, pg_url: str, s3_server: Any) -> None:
    size = 128 * 2**20
    source = tmp_path / "old"
    old = ServerProcess(source).start()
    try:
        account = create_account(old.url)
        big = os.urandom(size)
        assert upload(old.url, big, "big.bin", account=account).status_code == 201
        del big
    finally:
        old.stop()

    result = subprocess.run([sys.executable, "-c", PEAK_MEMORY, "migrate", "--data-dir", str(source),
                             "--to-database-url", pg_url, "--to-region", f"local={s3_server.region_url()}"],
                            capture_output=True, text=True, env=clean_env(), cwd=REPO, timeout=300)

    assert result.returncode == 0, result.stderr
    peak_kib = int(result.stderr.strip().splitlines()[-1].split()[1])
    # About 70 MiB is the program itself (boto3, psycopg, peewee); parts of 8 MiB, one filling and one in
    # flight, add some tens. Holding the file would add 128.
    assert peak_kib < 160 * 1024, f"peak memory {peak_kib // 1024} MiB for a {size // 2**20} MiB file"


def add_blob_files(source: Path, count: int) -> None:
    """Adds `count` copies of the store's one blob file, under new ids, straight into its (stopped) database
    and folder, as `count` uploads would have left them: seconds instead of minutes of HTTP."""
    root = make_settings(source).region_paths["local"]
    with sqlite3.connect(source / "lockr.db") as db:
        db.row_factory = sqlite3.Row
        template = dict(db.execute("SELECT * FROM storedfile WHERE NOT inline").fetchone())
        data = (root / "objects" / template["file_id"][:2] / template["file_id"]).read_bytes()
        del template["seq"]
        rows = []
        for n in range(count):
            file_id = os.urandom(16).hex()
            rows.append({**template, "file_id": file_id, "name": f"f{n}.bin"})
            shard = root / "objects" / file_id[:2]
            shard.mkdir(exist_ok=True)
            (shard / file_id).write_bytes(data)
        columns = list(template)
        db.executemany(f"INSERT INTO storedfile ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                       [tuple(row[c] for c in columns) for row in rows])
    db.close()


def peak_memory_of_migrate(source: Path, *args: str) -> int:
    """The migrate command's peak resident memory, in KiB."""
    result = subprocess.run([sys.executable, "-c", PEAK_MEMORY, "migrate", "--data-dir", str(source), *args],
                            capture_output=True, text=True, env=clean_env(), cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    return int(result.stderr.strip().splitlines()[-1].split()[1])


@pytest.fixture
def memory_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder in memory (tmpfs) where there is one: a folder region fsyncs every blob it stores, which on
    a disk makes tens of thousands of tiny files take minutes."""
    # 60,000 tiny files take some 250 MB of tmpfs pages: a container's small /dev/shm (64 MB) cannot.
    if not Path("/dev/shm").is_dir() or shutil.disk_usage("/dev/shm").free < 1 << 30:
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="lockr-test-", dir="/dev/shm"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_memory_stays_flat_in_the_number_of_files(memory_folder: Path, postgres_cluster: Any) -> None:
    # Two stores alike but for 20,000 more files, each migrated into a database and a folder region of its
    # own (a bucket is walked the same way, its listing in pages of 1,000; moto would take minutes). The
    # smaller has enough files to fill the caches that are bounded anyway (SQLite's pages, batches of rows).
    # Holding a row per file (about 1 KB each, with fsck's set of ids) would add some 20 MiB.
    more = 20_000
    peaks = []
    for name, count in (("few", 5_000), ("many", 5_000 + more)):
        source = memory_folder / name
        old = ThreadedServer(make_settings(source, inline_max="0")).start()
        try:
            upload(old.url, b"one tiny file", "x.bin", account=create_account(old.url))
        finally:
            old.stop()
        add_blob_files(source, count)
        database = postgres_cluster.create_database(empty=True)
        try:
            peaks.append(peak_memory_of_migrate(source, "--to-database-url", str(postgres_cluster.url(database)),
                                                "--to-region", f"local={memory_folder / (name + '-new')}"))
            assert row_counts(str(postgres_cluster.url(database)))["storedfile"] == count + 1
        finally:
            postgres_cluster.drop_database(database)
    growth_kib = peaks[1] - peaks[0]
    assert growth_kib < 4 * 1024, f"peak memory grew by {growth_kib // 1024} MiB for {more} more files"


def small_blob_store(source: Path, count: int) -> None:
    """A stopped store of `count` blob files of 64 KiB (one uploaded, the rest added directly)."""
    old = ThreadedServer(make_settings(source, inline_max="0")).start()
    try:
        assert upload(old.url, os.urandom(64 * 1024), "x.bin", account=create_account(old.url)).status_code == 201
    finally:
        old.stop()
    add_blob_files(source, count - 1)


def test_blobs_go_into_a_bucket_a_few_at_a_time(tmp_path: Path, pg_url: str, s3_server: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from lockr_local.server import migrate as migration

    source = tmp_path / "old"
    small_blob_store(source, 60)
    bucket = s3_server.new_bucket()
    # Each copy is the real one; this only counts how many run at once.
    lock, running, most = threading.Lock(), [0], [0]
    real_copy = migration.copy_blob

    def counted(*args: Any) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            return real_copy(*args)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(migration, "copy_blob", counted)
    target = make_settings(tmp_path / "new", database_url=pg_url, regions=f"local={s3_server.region_url(bucket)}")
    with ThreadPoolExecutor(1) as thread:  # models bind per thread: keep the target's binding off this one
        result = thread.submit(migration.migrate_store, make_settings(source), target, say=lambda _: None,
                               progress=lambda done, total: None).result()

    assert result.report is not None and result.report.clean and result.blobs_copied == 60
    assert 1 < most[0] <= migration.COPY_WORKERS, f"{most[0]} copies at once"
    assert len(bucket_keys(s3_server, bucket)) == 60


def test_a_source_file_whose_bytes_do_not_match_its_sha256_is_not_copied(tmp_path: Path, pg_url: str,
                                                                         s3_server: Any) -> None:
    source = tmp_path / "old"
    small_blob_store(source, 30)
    with sqlite3.connect(source / "lockr.db") as db:
        bad = db.execute("SELECT file_id FROM storedfile ORDER BY file_id LIMIT 1 OFFSET 10").fetchone()[0]
    db.close()
    path = make_settings(source).region_paths["local"] / "objects" / bad[:2] / bad
    path.write_bytes(b"x" * path.stat().st_size)  # the same length, other bytes
    bucket = s3_server.new_bucket()

    result = migrate(source, "--to-database-url", pg_url, "--to-region", f"local={s3_server.region_url(bucket)}")

    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "1 files of the source could not be copied" in result.stderr
    assert f"file {bad}: its bytes in the source do not match its recorded sha256" in result.stderr
    keys = bucket_keys(s3_server, bucket)
    assert len(keys) == 29 and not any(key.endswith(bad) for key in keys)
    assert row_counts(pg_url)["storedfile"] == 0


@pytest.mark.parametrize("source, listed, expected", [
    ("ace", "bcd", [("a", None), (None, "b"), ("c", "c"), (None, "d"), ("e", None)]),
    ("", "ab", [(None, "a"), (None, "b")]),
    ("ab", "", [("a", None), ("b", None)]),
    ("ab", "ab", [("a", "a"), ("b", "b")]),
], ids=["interleaved", "source empty", "target empty", "all copied"])
def test_the_walk_pairs_each_source_blob_with_its_key_in_the_target(source: str, listed: str,
                                                                     expected: list[Any]) -> None:
    from lockr_local.server.migrate import SourceBlob, walk_region

    walked = walk_region("local", iter([SourceBlob(key, "local", 1, "") for key in source]), iter(listed))

    assert [(blob and blob.file_id, key) for blob, key in walked] == expected


def test_a_listing_out_of_key_order_is_refused() -> None:
    from lockr_local.errors import StoreUnusable
    from lockr_local.server.migrate import SourceBlob, walk_region

    with pytest.raises(StoreUnusable, match="not in key order"):
        list(walk_region("local", iter([SourceBlob("c", "local", 1, "")]), iter(["a", "d", "b"])))


def test_a_store_of_an_older_schema_is_upgraded_in_the_copy_not_in_place(
        tmp_path: Path, pg_url: str, s3_server: Any) -> None:
    source = tmp_path / "old"
    old = ServerProcess(source).start()
    try:
        account = create_account(old.url, "ada")
        file_id = upload(old.url, os.urandom(100_000), "x.bin", account=account).json()["id"]
    finally:
        old.stop()
    with sqlite3.connect(source / "lockr.db") as raw:  # schema 5: before the idempotency table
        raw.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")
        raw.execute("DROP TABLE idempotencykey")
    raw.close()
    before = tree_hashes(source)
    region = s3_server.region_url()

    result = migrate(source, "--to-database-url", pg_url, "--to-region", f"local={region}")

    assert result.returncode == 0, result.stderr
    assert tree_hashes(source) == before and not (source / "backups").exists()
    new = ThreadedServer(make_settings(tmp_path / "new", database_url=pg_url, regions=f"local={region}")).start()
    try:
        got = requests.get(f"{new.url}/api/v1/download/local/{file_id}", headers=account.auth, timeout=30)
        assert got.status_code == 200
    finally:
        new.stop()
