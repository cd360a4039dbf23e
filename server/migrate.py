"""`lockr-local migrate`: a single-box store (SQLite + folder regions) copied into PostgreSQL + bucket regions.

The steps are ordered so that a run cut off at any moment (Ctrl-C, SIGKILL, a lost connection) leaves a
target that the same command, run again, finishes without copying anything twice:

1. The source database is copied through SQLite's backup API into a temporary folder (and upgraded there
   when it is from an older schema). The store itself is only read, and locked against a server starting
   on it meanwhile (what that server stored would be left behind).
2. The target database is opened (its tables made) and must be empty or this very source's unfinished
   migration; two Meta rows say so from then on (models.MIGRATION_SOURCE, MIGRATION_STATE), and a server
   refuses to start on it until the migration is done.
3. Blobs: each file's bytes stream from its folder into the target region of the same name, hashed on
   the way, and are committed only when size and SHA-256 match the file's row. A blob already in the
   target is not copied again: a commit is atomic (a completed multipart upload, an os.replace), so one
   that is there is whole and verified. The source's rows and the target's listing are walked side by
   side in key order (a sorted merge, see walk_region), so memory stays flat for millions of files.
   Into a bucket, COPY_WORKERS blobs are copied at once (each request waits on the network, and small
   files are all requests); at most that many are in flight, so memory stays bounded.
4. Rows: in ONE transaction the target's rows are replaced by the snapshot's, id sequences moved past the
   copied ids, quota counters recounted, the signing secret stored (links signed before verify, key hashes
   and login-address tags stay valid) and the state set to done. Cut off, the transaction leaves nothing.
5. `fsck --verify` of the target (check_store).

Unfinished upload sessions are not moved: their bytes are partial files in the source's folders, while in
a bucket they would have to be an unfinished multipart upload with a saved hash state (s3store.py). Their
uploaders start those uploads again. Finished sessions' tombstones move (a status query still answers 201).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import peewee

from lockr_local.config import Settings
from lockr_local.errors import BadRequest, Conflict, StoreUnusable
from lockr_local.server.backup import object_path, snapshot_database
from lockr_local.server.blobstore import BlobLocation, BlobStore, HelperThreads, make_blob_store
from lockr_local.server.cluster import SECRET_KEY
from lockr_local.server.fsck import FsckReport, check_store
from lockr_local.server.models import (
    MIGRATION_SOURCE, MIGRATION_STATE, SCHEMA_VERSION, Account, ApiToken, BaseModel, DavFolder, IdempotencyKey, InlineBlob,
    LoginAddress, Meta, StoredFile, UploadSession, check_schema_version, is_postgresql, open_database, sqlite_file, without_password,
)
from lockr_local.server.security import existing_secret

READ_BLOCK = 1024 * 1024
# Blobs copied at once into a bucket region (a folder region: one at a time). Memory: each holds a read
# block, and a writer's filling part and the part in flight (s3store.part_size: 8 MiB while under 8 GiB).
COPY_WORKERS = 4
# Rows go to the target in batches of this many, or of this many bytes (inline files' bytes are rows).
BATCH_ROWS = 500
BATCH_BYTES = 8 * 2**20
# The tables that make a store, parents before children; LoginBucket is left out (SQLite stores count
# login attempts in memory) and Meta is copied key by key.
STORE_TABLES: tuple[type[BaseModel], ...] = (Account, ApiToken, LoginAddress, StoredFile, InlineBlob, DavFolder,
                                             UploadSession, IdempotencyKey)
# Meta keys the target keeps its own value of (or this module writes).
_OWN_META = {"schema_version", SECRET_KEY, MIGRATION_SOURCE, MIGRATION_STATE}

Say = Callable[[str], None]
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SourceBlob:
    file_id: str
    region: str
    size: int
    sha256: str


@dataclass
class MigrationResult:
    """What a run did, for the summary."""

    already_done: bool = False
    resumed: bool = False
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows in the target
    blobs: int = 0
    blobs_copied: int = 0
    blobs_present: int = 0  # copied by an earlier, interrupted run
    bytes_copied: int = 0
    bytes_total: int = 0
    leftovers_removed: int = 0
    dropped_sessions: int = 0
    dropped_session_bytes: int = 0
    secret_moved: bool = False
    report: FsckReport | None = None


class Snapshot:
    """The source database as of one moment, in a temporary folder: read with plain sqlite3 (the models
    are bound to the target while it is read)."""

    def __init__(self, source: Path) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="lockr-migrate-"))
        self.path = self.folder / "source.db"
        try:
            snapshot_database(source, self.path, untouched=True)
            with sqlite3.connect(self.path) as copy:
                row = copy.execute(f'SELECT "value" FROM "{Meta._meta.table_name}" WHERE "key" = ?',
                                   ("schema_version",)).fetchone()
            check_schema_version(int(row[0]) if row else SCHEMA_VERSION, str(source))
            # An older schema is upgraded in the copy, by the same code a server would run, on a thread of
            # its own (models bind per thread: this thread's models speak to the target).
            with ThreadPoolExecutor(1, thread_name_prefix="lockr-migrate-upgrade") as upgrade:
                upgrade.submit(lambda: open_database("sqlite:///" + str(self.path)).close()).result()
            self.connection = sqlite3.connect(self.path)
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise

    def close(self) -> None:
        self.connection.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def blob_totals(self) -> tuple[int, int]:
        """How many files are blob files (not inline), and their bytes."""
        f = StoredFile
        row = self.connection.execute(
            f'SELECT COUNT(*), COALESCE(SUM("{f.size.column_name}"), 0) FROM "{f._meta.table_name}" '
            f'WHERE NOT COALESCE("{f.inline.column_name}", 0)').fetchone()
        return int(row[0]), int(row[1])

    def blobs(self, region: str) -> Iterator[SourceBlob]:
        """The blob files of a region by file id in byte order (SQLite's BINARY collation, the order of an
        S3 listing and of the folder store's), read lazily from a cursor of their own."""
        f = StoredFile
        for row in self.connection.execute(
                f'SELECT "{f.file_id.column_name}", "{f.region.column_name}", "{f.size.column_name}", '
                f'"{f.sha256.column_name}" FROM "{f._meta.table_name}" WHERE "{f.region.column_name}" = ? AND '
                f'NOT COALESCE("{f.inline.column_name}", 0) ORDER BY "{f.file_id.column_name}" COLLATE BINARY',
                (region,)):
            yield SourceBlob(*row)

    def region_names(self) -> set[str]:
        """Every region a row names: files (blob or inline: download URLs carry it), accounts' defaults,
        finished sessions."""
        names = {row[0] for row in self.connection.execute(
            f'SELECT DISTINCT "{StoredFile.region.column_name}" FROM "{StoredFile._meta.table_name}"')}
        names |= {row[0] for row in self.connection.execute(
            f'SELECT DISTINCT "{Account.default_region.column_name}" FROM "{Account._meta.table_name}" '
            f'WHERE "{Account.default_region.column_name}" IS NOT NULL')}
        names |= {row[0] for row in self.connection.execute(
            f'SELECT DISTINCT "{UploadSession.region.column_name}" FROM "{UploadSession._meta.table_name}" '
            f'WHERE "{UploadSession.completed_at.column_name}" IS NOT NULL')}
        return names

    def unfinished_sessions(self) -> tuple[int, int]:
        row = self.connection.execute(
            f'SELECT COUNT(*), COALESCE(SUM("{UploadSession.offset.column_name}"), 0) FROM '
            f'"{UploadSession._meta.table_name}" WHERE "{UploadSession.completed_at.column_name}" IS NULL').fetchone()
        return int(row[0]), int(row[1])

    def rows(self, model: type[BaseModel]) -> Iterator[tuple[Any, ...]]:
        """The model's rows as tuples in `model._meta.sorted_fields` order, by primary key; an InlineBlob row
        has its file's recorded sha256 after them, to check the bytes by."""
        table = model._meta.table_name
        columns = ", ".join(f'"{table}"."{field.column_name}"' for field in model._meta.sorted_fields)
        key = model._meta.primary_key
        assert isinstance(key, peewee.Field)  # every store table has one (peewee says False for none)
        query = f'SELECT {columns} FROM "{table}"'
        if model is UploadSession:
            query += f' WHERE "{UploadSession.completed_at.column_name}" IS NOT NULL'
        elif model is InlineBlob:
            files = StoredFile._meta.table_name
            query = (f'SELECT {columns}, "{files}"."{StoredFile.sha256.column_name}" FROM "{table}" LEFT JOIN '
                     f'"{files}" ON "{files}"."{StoredFile.file_id.column_name}" = "{table}"."{key.column_name}"')
        # Row by row (sqlite3 fetches lazily): an inline file's bytes may be up to 16 MiB.
        yield from self.connection.execute(f'{query} ORDER BY "{table}"."{key.column_name}"')

    def meta(self) -> dict[str, str]:
        return dict(self.connection.execute(f'SELECT "key", "value" FROM "{Meta._meta.table_name}"'))


def source_secret(settings: Settings) -> bytes | None:
    """The secret the source signs with: `secret_key` when set, else its data folder's secret.key."""
    return settings.secret_key.encode("utf-8") if settings.secret_key else existing_secret(Path(settings.data_dir))


def source_identity(settings: Settings, secret: bytes | None) -> str:
    """What recognises the same source on a second run, without revealing its secret."""
    if secret is not None:
        return hashlib.sha256(b"lockr-migrate-source:" + secret).hexdigest()[:32]
    return hashlib.sha256(str(sqlite_file(settings.database_url)).encode()).hexdigest()[:32]


def check_plan(source: Settings, target: Settings, snapshot: Snapshot, secret: bytes | None) -> None:
    """Everything that would stop the migration, checked before anything is written anywhere."""
    if not is_postgresql(target.database_url):
        raise BadRequest("The target database must be PostgreSQL (postgresql://USER@HOST:PORT/DATABASE); to copy "
                         "a store to another single box, use 'lockr-local backup' and 'lockr-local restore'.")
    needed = snapshot.region_names()
    missing = sorted(needed - {name for name, _ in target.regions})
    if missing:
        raise BadRequest(f"The source stores files in region{'s' if len(missing) > 1 else ''} {', '.join(missing)}, "
                         f"which the target lacks (it has {', '.join(name for name, _ in target.regions)}); "
                         f"name each with --to-region NAME=s3://BUCKET/PREFIX?endpoint=... (or in the target's "
                         f"regions setting). Nothing was copied.")
    from_buckets = sorted(needed & set(source.bucket_regions))
    if from_buckets:
        raise BadRequest(f"Region {', '.join(from_buckets)} of the source is a bucket already; migrate copies "
                         "a single box's folder regions.")
    same = sorted(name for name, path in target.region_paths.items()
                  if path.resolve() in {p.resolve() for p in source.region_paths.values()})
    if same:
        raise BadRequest(f"Target region {', '.join(same)} is a folder of the source store; give the target "
                         "regions of its own (buckets).")
    if target.secret_key and secret is not None and target.secret_key.encode("utf-8") != secret:
        raise BadRequest("The target's secret_key setting differs from the source's secret, so links signed "
                         "before and stored key hashes would stop working: remove secret_key from the target's "
                         "settings (migrate moves the source's secret into the database), or set it to the "
                         "source's.")


def _store_rows() -> int:
    return sum(1 for model in STORE_TABLES if model.select().exists())


def _put_meta(key: str, value: str) -> None:
    Meta.insert(key=key, value=value).on_conflict(conflict_target=[Meta.key], update={Meta.value: value}).execute()


def _meta(key: str) -> str | None:
    row = Meta.get_or_none(Meta.key == key)
    return None if row is None else str(row.value)


def region_places(target: Settings, regions: set[str]) -> dict[str, str]:
    """Where each target region is, as a digest of its setting (which may hold credentials)."""
    where = dict(target.regions)
    return {name: hashlib.sha256(where[name].encode()).hexdigest()[:16] for name in sorted(regions)}


def walk_region(region: str, source: Iterator[SourceBlob], listed: Iterable[str]
                ) -> Iterator[tuple[SourceBlob | None, str | None]]:
    """The source's blobs of a region beside the target's keys there, both in ascending key order, merged:
    (blob, key) when the target has the blob, (blob, None) when not, (None, key) for a key no source blob
    of the region has. One item of each side in memory, however many files. A key is judged foreign only
    once the source has passed it, which holds in any listing order; a listing out of order (an object
    store that does not list by key) is refused, since blobs would be judged missing and copied again."""
    keys = iter(listed)
    key = next(keys, None)
    last = ""
    for blob in source:
        while key is not None and key < blob.file_id:
            yield None, key
            last, key = key, next(keys, None)
            if key is not None and key <= last:
                raise _unordered(region, last, key)
        if key == blob.file_id:
            yield blob, key
            last, key = key, next(keys, None)
            if key is not None and key <= last:
                raise _unordered(region, last, key)
        else:
            yield blob, None
    while key is not None:
        yield None, key
        last, key = key, next(keys, None)
        if key is not None and key <= last:
            raise _unordered(region, last, key)


def _unordered(region: str, last: str, key: str) -> StoreUnusable:
    return StoreUnusable(f"The listing of target region {region} is not in key order ({key} after {last}); "
                         "migrate walks it beside the source's files by key, so it needs an object store that "
                         "lists keys in order, as S3's general purpose buckets do. Nothing more was copied.")


def claim_target(target: Settings, identity: str, source_label: str, blobs: BlobStore, regions: set[str],
                 snapshot: Snapshot, result: MigrationResult) -> None:
    """Refuses a target that holds anything but an unfinished (or finished) migration of this source;
    marks a fresh one as this source's migration."""
    where = without_password(target.database_url)
    marker = json.loads(_meta(MIGRATION_SOURCE) or "null")
    state = _meta(MIGRATION_STATE)
    places = region_places(target, regions)
    if marker is not None and marker.get("id") == identity:
        result.already_done = state == "done"
        result.resumed = not result.already_done
        moved = sorted(name for name, place in places.items() if marker.get("regions", {}).get(name) != place)
        if result.resumed and moved:
            # A region given another place since the migration began: it was not checked empty then, so its
            # objects that no source file of the region names are not the migration's to remove (copy_blobs
            # would).
            for region in moved:
                if any(blob is None for blob, _ in walk_region(region, snapshot.blobs(region),
                                                               blobs.iter_objects(region))):
                    raise Conflict(f"Target region {region} is not where it was when this migration began, and "
                                   "holds files of another store; give it back its first place, or an empty "
                                   "bucket or prefix. Nothing more was copied.")
            _put_meta(MIGRATION_SOURCE, json.dumps({**marker, "regions": {**marker.get("regions", {}), **places}}))
        return
    if marker is not None:
        raise Conflict(f"The target database {where} holds a migration of another store ({marker.get('source')}, "
                       f"{'finished' if state == 'done' else 'unfinished'}); nothing was copied. Migrate this "
                       "store into a new, empty database (createdb, then --to-database-url).")
    if _store_rows():
        raise Conflict(f"The target database {where} already holds a lockr-local store ({Account.select().count()} "
                       f"accounts, {StoredFile.select().count()} files) that is not a migration of this one; "
                       "nothing was copied. Migrate into a new, empty database (createdb, then "
                       "--to-database-url), or drop that store's database first if it is unwanted.")
    for region in sorted(regions):
        if next(iter(blobs.iter_objects(region)), None) is not None:
            raise Conflict(f"Target region {region} already holds files of another store; nothing was copied. "
                           "Give it an empty bucket, or another prefix (s3://BUCKET/PREFIX).")
    with Meta._meta.database.atomic():
        _put_meta(MIGRATION_SOURCE, json.dumps({"id": identity, "source": source_label, "startedAt": time.time(),
                                                "regions": places}))
        _put_meta(MIGRATION_STATE, "copying")


class _Copier:
    """Copies blobs (on the threads of copy_blobs' pool), keeping the bytes-done count that progress shows.
    `stop()` makes the copies in flight give up at their next block (their writers abort: nothing
    half-written stays)."""

    def __init__(self, blobs: BlobStore, result: MigrationResult, progress: Progress) -> None:
        self.blobs = blobs
        self.result = result
        self._progress = progress
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.done = 0

    def advance(self, by: int) -> None:
        with self._lock:
            self.done += by
            self._progress(self.done, self.result.bytes_total)

    def stop(self) -> None:
        self._stopping.set()

    def copy(self, path: Path, blob: SourceBlob) -> int:
        counted = 0

        def copied(block: int) -> None:
            nonlocal counted
            if self._stopping.is_set():
                raise _Stopped()
            counted += block
            self.advance(block)

        try:
            return copy_blob(path, self.blobs, blob, copied)
        except BaseException:
            self.advance(-counted)  # not copied after all
            raise


class _Stopped(Exception):
    """A copy given up because the run is stopping."""


def copy_blobs(snapshot: Snapshot, regions: set[str], source: Settings, target: Settings, blobs: BlobStore,
               result: MigrationResult, progress: Progress, say: Say) -> None:
    """Streams every blob of the snapshot not yet in the target from its folder, verified by size and SHA-256,
    and removes what an earlier run copied for files the source no longer has (deleted between the runs):
    the target's regions were empty when the migration began, so everything in them is the migration's."""
    result.blobs, result.bytes_total = snapshot.blob_totals()
    copier = _Copier(blobs, result, progress)
    copier.advance(0)
    problems: list[str] = []  # the first few, for the message; `failed` counts them all
    failed = 0

    def problem(blob: SourceBlob, text: str) -> None:
        nonlocal failed
        failed += 1
        if len(problems) < 20:
            problems.append(f"file {blob.file_id}: {text}")

    def landed(flight: Future[int], blob: SourceBlob, path: Path) -> None:
        try:
            copied = flight.result()
        except FileNotFoundError:
            problem(blob, f"its bytes are missing from {path.parent.parent.parent}")
        except ValueError as exc:
            problem(blob, str(exc))
        else:
            result.blobs_copied += 1
            result.bytes_copied += copied

    for region in sorted(regions):
        root = source.region_paths.get(region)
        workers = COPY_WORKERS if region in target.bucket_regions else 1
        in_flight: dict[Future[int], tuple[SourceBlob, Path]] = {}
        pool = ThreadPoolExecutor(workers, thread_name_prefix="lockr-migrate-copy")
        try:
            for blob, key in walk_region(region, snapshot.blobs(region), blobs.iter_objects(region)):
                if blob is None:
                    assert key is not None
                    # Deleting the key just listed: a listing continues after the last key it gave, gone or
                    # not (and the copies in flight are of keys before it, so it will not list them).
                    blobs.delete(BlobLocation(region, key))
                    result.leftovers_removed += 1
                elif key is not None:
                    result.blobs_present += 1
                    copier.advance(blob.size)
                elif root is None:
                    problem(blob, f"the source's settings have no folder for its region {region}")
                else:
                    path = object_path(root, blob.file_id)
                    while len(in_flight) >= workers:
                        finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                        for flight in finished:
                            landed(flight, *in_flight.pop(flight))
                    in_flight[pool.submit(copier.copy, path, blob)] = (blob, path)
            for flight in list(in_flight):
                landed(flight, *in_flight.pop(flight))
        except BaseException:
            copier.stop()  # Ctrl-C or a failing store: the copies in flight give up rather than finish
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    if result.blobs_present:
        say(f"{result.blobs_present} of {result.blobs} blobs were in the target already (an earlier run copied "
            "them)")
    if failed:
        raise StoreUnusable(f"{failed} files of the source could not be copied, so the migration is not "
                            "finished (the rest is copied; the target stays unusable until it finishes):\n  "
                            + "\n  ".join(problems) + ("\n  ..." if failed > len(problems) else "")
                            + "\nRun 'lockr-local fsck --verify' on the source, restore or delete those files, "
                              "then run this migrate command again.")


def copy_blob(path: Path, blobs: BlobStore, blob: SourceBlob, copied: Callable[[int], None]) -> int:
    """One blob, streamed in READ_BLOCK pieces (flat memory) and committed only if it is what its row says;
    `copied` hears of each block's length. FileNotFoundError when its file is gone; ValueError when its
    bytes do not match."""
    with open(path, "rb") as handle:
        writer = blobs.new_writer(BlobLocation(blob.region, blob.file_id), rclone_digests=False)
        committed = False
        try:
            while block := handle.read(READ_BLOCK):
                writer.write(block)
                copied(len(block))
            if writer.bytes_written != blob.size:
                raise ValueError(f"its bytes in the source are {writer.bytes_written} long, its row says {blob.size}")
            if writer.sha256() != blob.sha256:
                raise ValueError("its bytes in the source do not match its recorded sha256")
            writer.commit()
            committed = True
        finally:
            if not committed:
                writer.abort()
    return blob.size


def copy_rows(snapshot: Snapshot, secret: bytes | None, target_database: peewee.Database,
              result: MigrationResult) -> None:
    """Replaces the target's rows by the snapshot's in one transaction, and marks the migration done."""
    with target_database.atomic():
        for model in reversed(STORE_TABLES):
            model.delete().execute()
        for model in STORE_TABLES:
            fields = model._meta.sorted_fields
            batch: list[tuple[Any, ...]] = []
            size = 0
            count = 0
            for row in snapshot.rows(model):
                if model is InlineBlob:
                    file_id, data, recorded = row
                    row = (file_id, data)
                    if hashlib.sha256(data).hexdigest() != recorded:
                        raise StoreUnusable(f"The bytes of small file {file_id} in the source database do not "
                                            "match its recorded sha256; run 'lockr-local fsck --verify' on the "
                                            "source. The migration is not finished.")
                batch.append(row)
                size += sum(len(value) for value in row if isinstance(value, bytes))
                if len(batch) >= BATCH_ROWS or size >= BATCH_BYTES:
                    model.insert_many(batch, fields=fields).execute()
                    count += len(batch)
                    batch, size = [], 0
            if batch:
                model.insert_many(batch, fields=fields).execute()
                count += len(batch)
            result.rows[model._meta.table_name] = count
        _advance_sequences(target_database)
        _recount_quotas(target_database)
        for key, value in snapshot.meta().items():
            if key not in _OWN_META:
                _put_meta(key, value)
        if secret is not None:
            _put_meta(SECRET_KEY, secret.hex())
            result.secret_moved = True
        _put_meta(MIGRATION_STATE, "done")


def _advance_sequences(database: peewee.Database) -> None:
    """Rows came with their ids, which PostgreSQL's sequences did not hand out: the next new row must get
    an id past the copied ones."""
    for model in STORE_TABLES:
        key = model._meta.primary_key
        if isinstance(key, peewee.AutoField):
            table, column = model._meta.table_name, key.column_name
            database.execute_sql(f"SELECT setval(pg_get_serial_sequence(%s, %s), "
                                 f'COALESCE((SELECT MAX("{column}") FROM "{table}"), 0) + 1, false)',
                                 (f'"{table}"', column))


def _recount_quotas(database: peewee.Database) -> None:
    """Used and reserved bytes from the rows, as fsck counts them: the unfinished sessions left behind held
    reservations."""
    accounts, files, sessions = (Account._meta.table_name, StoredFile._meta.table_name,
                                 UploadSession._meta.table_name)
    database.execute_sql(
        f'UPDATE "{accounts}" SET "{Account.used_bytes.column_name}" = COALESCE((SELECT SUM("{StoredFile.size.column_name}") '
        f'FROM "{files}" WHERE "{StoredFile.owner.column_name}" = "{accounts}"."id"), 0), '
        f'"{Account.reserved_bytes.column_name}" = COALESCE((SELECT SUM("{UploadSession.reserved.column_name}") FROM '
        f'"{sessions}" WHERE "{UploadSession.owner.column_name}" = "{accounts}"."id"), 0)')


def migrate_store(source: Settings, target: Settings, *, say: Say, progress: Progress) -> MigrationResult:
    """Copies the store of `source` into `target` (see the module docstring); the caller holds the source's
    data-folder lock. Ends with fsck --verify of the target, in `result.report`."""
    database = sqlite_file(source.database_url)
    if database is None:
        raise BadRequest("migrate copies a single-box store (database_url a SQLite file); this source's database "
                         "is already elsewhere.")
    result = MigrationResult()
    secret = source_secret(source)
    say("taking a snapshot of the source database")
    snapshot = Snapshot(database)
    try:
        check_plan(source, target, snapshot, secret)
        regions = snapshot.region_names()
        result.dropped_sessions, result.dropped_session_bytes = snapshot.unfinished_sessions()
        say(f"opening the target database {without_password(target.database_url)}")
        target_database = open_database(target.database_url)
        # A hashing thread and a part-upload thread per copy in flight (each writer keeps one job in each).
        threads = HelperThreads(hashing=ThreadPoolExecutor(COPY_WORKERS, thread_name_prefix="lockr-hash"),
                                uploads=ThreadPoolExecutor(COPY_WORKERS, thread_name_prefix="lockr-s3-part"))
        try:
            # The regions the source's files name, and only those: they were empty when the migration began,
            # so every unfinished write in them is the migration's, and clear_temp may abort them all,
            # however young (session_expiry 0). The target's other regions are left alone.
            used = tuple((name, where) for name, where in target.regions if name in regions)
            blobs = make_blob_store(target.replace(regions=used, session_expiry=0))
            blobs.use_threads(threads)
            claim_target(target, source_identity(source, secret), f"{source.data_dir}", blobs, regions, snapshot,
                         result)
            if not result.already_done:
                say(f"copying the bytes of {snapshot.blob_totals()[0]} blob files (smaller files are rows of the "
                    "database)")
                copy_blobs(snapshot, regions, source, target, blobs, result, progress, say)
                result.leftovers_removed += blobs.clear_temp()
                say("copying the accounts, tokens, files and keys (one transaction)")
                copy_rows(snapshot, secret, target_database, result)
            say("checking the target (fsck --verify)")
            result.report = check_store(target_database, blobs, verify=True,
                                        private=list(target.region_paths.values()))
        finally:
            threads.shutdown()
            target_database.close()
    finally:
        snapshot.close()
    return result
