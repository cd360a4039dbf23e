"""Online backup and restore of a SQLite store: a consistent database snapshot, then the blobs, then the secret.

The database is copied through SQLite's backup API in one step (one read transaction), so the copy is
the store as of one commit while the server keeps writing. Blob files are immutable once their row is
committed, so the snapshot's rows name exactly the blobs to copy next; a blob deleted after the
snapshot was taken is left out together with its row (the backup then shows that deletion).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import peewee

from lockr_local.config import Settings
from lockr_local.errors import BadRequest, Conflict, NotFound
from lockr_local.server.durable import fsync_directory
from lockr_local.server.models import (
    SCHEMA_VERSION, Account, StoredFile, UploadSession, check_schema_version, sqlite_file,
)
from lockr_local.server.private import create_private_file, make_private_dir

MANIFEST = "backup.json"  # written last: a folder without it is not a complete backup
DATABASE = "lockr.db"
SECRET = "secret.key"
REGIONS = "regions"
FORMAT = 1


@dataclass
class BackupResult:
    files: int = 0
    blob_files: int = 0
    bytes_copied: int = 0
    left_out: int = 0  # files deleted while the backup ran
    secret_included: bool = False


def store_database(settings: Settings) -> Path:
    """The SQLite file of the store; other databases have their own backup tools."""
    path = sqlite_file(settings.database_url)
    if path is None:
        raise BadRequest("lockr-local backup covers SQLite stores; back a PostgreSQL database up with "
                         "pg_dump, then copy each region's folder (see the README, 'Backing up').")
    return path


def snapshot_database(source: Path, target: Path, *, untouched: bool = False) -> None:
    """A consistent copy of a live database through SQLite's backup API (all pages in one step). With
    `untouched`, for a stopped store whose database holds everything (no -wal beside it), no -wal or -shm
    file is made beside the source either (SQLite's read-only mode makes them)."""
    create_private_file(target)
    wal = source.with_name(source.name + "-wal")
    mode = "immutable=1" if untouched and not wal.exists() else "mode=ro"
    src = sqlite3.connect(source.resolve().as_uri() + "?" + mode, uri=True, timeout=30)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=delete")  # one self-contained file, no -wal beside it
        finally:
            dst.close()
    finally:
        src.close()
    _fsync_file(target)


def backup_store(settings: Settings, dest: Path, say: Callable[[str], None] = lambda _: None) -> BackupResult:
    """Backs the store of `settings` up into `dest` (missing or empty), while its server may run."""
    database = store_database(settings)
    if not database.is_file():
        raise NotFound(f"No store at {settings.data_dir} (no {database.name}); check --data-dir or --config.")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise Conflict(f"{dest} exists and is not empty; back up into a new folder.")
    make_private_dir(dest)
    snapshot = dest / DATABASE
    snapshot_database(database, snapshot)
    say(f"database snapshot taken ({snapshot.stat().st_size} bytes)")
    result = BackupResult()
    connection = sqlite3.connect(snapshot)
    try:
        version = _schema_version(connection)
        check_schema_version(version, str(database))
        rows = _blob_rows(connection)
        result.files = _count(connection, StoredFile)
        vanished: list[str] = []
        roots = settings.region_paths
        for file_id, region in rows:
            source = object_path(roots[region], file_id) if region in roots else None
            target = object_path(dest / REGIONS / region, file_id)
            try:
                if source is None:
                    raise FileNotFoundError(file_id)
                result.bytes_copied += _copy_file(source, target)
                result.blob_files += 1
            except FileNotFoundError:
                vanished.append(file_id)
        _leave_out(connection, vanished)
        result.left_out = len(vanished)
    finally:
        connection.close()
    _fsync_file(snapshot)
    secret = Path(settings.data_dir) / SECRET
    if not settings.secret_key and secret.is_file():
        _copy_file(secret, dest / SECRET)
        result.secret_included = True
    manifest = {"format": FORMAT, "schemaVersion": version, "createdAt": time.time(),
                "source": settings.data_dir, "regions": sorted(settings.region_paths),
                "files": result.files - result.left_out, "blobFiles": result.blob_files,
                "secretIncluded": result.secret_included}
    _write_json(dest / MANIFEST, manifest)
    fsync_directory(dest)
    return result


def restore_store(source: Path, settings: Settings) -> dict[str, object]:
    """Copies a backup made by `backup_store` into the (empty or missing) store of `settings`: blobs,
    secret, and the database last, so that an interrupted restore never looks like a store."""
    try:
        manifest = json.loads((source / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise NotFound(f"{source} is not a complete lockr-local backup (no readable {MANIFEST}).") from exc
    database = store_database(settings)
    check_schema_version(int(manifest.get("schemaVersion", 0)), str(source))
    data_dir = Path(settings.data_dir)
    roots = settings.region_paths
    missing = sorted(set(manifest.get("regions", [])) - set(roots))
    if missing:
        raise BadRequest(f"The backup has regions {', '.join(missing)} that this configuration lacks; "
                         "set regions to include them (see the README's settings table).")
    occupied = [path for path in (data_dir, *roots.values()) if path.exists() and any(path.iterdir())]
    if database.exists() or occupied:
        where = database if database.exists() else occupied[0]
        raise Conflict(f"{where} is not empty: restore only into a new data folder (a running or existing "
                       "store is never overwritten); pass --data-dir NEW_FOLDER.")
    make_private_dir(data_dir)
    for region in manifest.get("regions", []):
        stored = source / REGIONS / region
        make_private_dir(roots[region])
        if stored.is_dir():
            for path in sorted(stored.rglob("*")):
                if path.is_file():
                    _copy_file(path, roots[region] / path.relative_to(stored))
    if (source / SECRET).is_file() and not settings.secret_key:
        _copy_file(source / SECRET, data_dir / SECRET)
    make_private_dir(database.parent)
    temp = database.with_name(database.name + ".restoring")
    _copy_file(source / DATABASE, temp)
    os.replace(temp, database)
    fsync_directory(database.parent)
    return manifest


# -- plumbing ---------------------------------------------------------------------------------------

def object_path(root: Path, file_id: str) -> Path:
    """Where the filesystem blob store keeps an object (filestore.FileBlobStore.path)."""
    return root / "objects" / file_id[:2] / file_id


def _schema_version(connection: sqlite3.Connection) -> int:
    row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else SCHEMA_VERSION


def _columns(connection: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in connection.execute(f'PRAGMA table_info("{table}")')}


def _count(connection: sqlite3.Connection, model: type[peewee.Model]) -> int:
    return int(connection.execute(f'SELECT COUNT(*) FROM "{model._meta.table_name}"').fetchone()[0])


def _blob_rows(connection: sqlite3.Connection) -> list[tuple[str, str]]:
    """(file_id, region) of every file whose bytes are a blob file (not an InlineBlob row)."""
    table = StoredFile._meta.table_name
    inline = StoredFile.inline.column_name
    where = f'WHERE NOT COALESCE("{inline}", 0)' if inline in _columns(connection, table) else ""
    return [(str(a), str(b)) for a, b in connection.execute(
        f'SELECT "{StoredFile.file_id.column_name}", "{StoredFile.region.column_name}" FROM "{table}" {where}')]


def _leave_out(connection: sqlite3.Connection, vanished: list[str]) -> None:
    """Drops from the copy what it cannot hold whole: files whose bytes were deleted after the snapshot,
    and unfinished upload sessions (their partial bytes are not copied); then recounts each account's
    used and reserved bytes to match, as fsck expects."""
    files, sessions, accounts = (StoredFile._meta.table_name, UploadSession._meta.table_name,
                                 Account._meta.table_name)
    owner = StoredFile.owner.column_name
    with connection:
        connection.executemany(f'DELETE FROM "{files}" WHERE "{StoredFile.file_id.column_name}" = ?',
                               [(file_id,) for file_id in vanished])
        connection.execute(f'DELETE FROM "{sessions}" WHERE "{UploadSession.completed_at.column_name}" IS NULL')
        connection.execute(
            f'UPDATE "{accounts}" SET "{Account.used_bytes.column_name}" = COALESCE((SELECT SUM("size") FROM '
            f'"{files}" WHERE "{owner}" = "{accounts}"."id"), 0), "{Account.reserved_bytes.column_name}" = '
            f'COALESCE((SELECT SUM("reserved") FROM "{sessions}" WHERE "{UploadSession.owner.column_name}" = '
            f'"{accounts}"."id"), 0)')


def _copy_file(source: Path, target: Path) -> int:
    """Copies one file 0600 and fsyncs it (and a folder it had to make)."""
    if not target.parent.is_dir():
        make_private_dir(target.parent)
        fsync_directory(target.parent.parent)
    with open(source, "rb") as src:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(src, dst, 1024 * 1024)
            dst.flush()
            os.fsync(dst.fileno())
    return target.stat().st_size


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, data: dict[str, object]) -> None:
    temp = path.with_name(path.name + ".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=1)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, path)
