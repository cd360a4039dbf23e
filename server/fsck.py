"""Consistency check of the store: rows vs bytes, hashes, quota accounting, SQLite integrity, leftovers.

Memory stays flat in the number of files: rows are read in batches by their sequence number, and each
page of a region's listing is looked up among the rows in one query (no set of every id is held).

Files in the trash are files here: their rows keep their bytes (missing ones are reported, their bytes are
no orphans) and their sizes count in the account's `used`, as trash.py promises."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import time
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence, cast

import peewee

from lockr_local.config import Settings
from lockr_local.server.blobstore import BlobLocation, BlobStore
from lockr_local.server.filebytes import FileBytes, StoredAt
from lockr_local.server.models import (
    Account, InlineBlob, StoredFile, UploadSession, integrity_ok, sqlite_file, username_case_clashes,
)
from lockr_local.server.private import fix_command, loose_permissions, tighten


@dataclass
class FsckReport:
    """What `lockr-local fsck` found; `clean` when nothing is wrong."""

    files_checked: int = 0
    # Of those, files in the trash (trash.py): checked like the others, as their bytes and quota are kept.
    files_in_trash: int = 0
    bytes_verified: int = 0
    missing_bytes: list[str] = field(default_factory=list)
    wrong_size: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    orphan_objects: list[str] = field(default_factory=list)
    quota_mismatches: list[str] = field(default_factory=list)
    temp_leftovers: int = 0
    database_ok: bool = True
    loose_permissions: list[str] = field(default_factory=list)
    permissions_fix: str = ""
    repaired: list[str] = field(default_factory=list)
    # Usernames that differ only in case (from before schema 5): a person picks which one is renamed.
    username_clashes: list[list[str]] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.missing_bytes or self.wrong_size or self.corrupt or self.orphan_objects
                    or self.quota_mismatches or self.temp_leftovers or not self.database_ok
                    or self.username_clashes or self.loose_permissions)

    def to_json(self) -> dict[str, Any]:
        """`fsck --json`: every finding under its field's name in camelCase, and `clean`."""
        fields = dataclasses.asdict(self)
        return {"clean": self.clean, **{re.sub(r"_(\w)", lambda m: m.group(1).upper(), name): value
                                         for name, value in fields.items()}}

    def lines(self) -> list[str]:
        out = [f"checked {self.files_checked} files"
               + (f" ({self.files_in_trash} in the trash)" if self.files_in_trash else "")
               + (f", verified {self.bytes_verified} bytes" if self.bytes_verified else "")]
        out += [f"MISSING bytes of file {i}" for i in self.missing_bytes]
        out += [f"WRONG SIZE of file {i}" for i in self.wrong_size]
        out += [f"CORRUPT file {i}: its bytes do not match the recorded sha256" for i in self.corrupt]
        out += [f"ORPHAN bytes {i} (no file row)" for i in self.orphan_objects]
        out += [f"QUOTA {m}" for m in self.quota_mismatches]
        if self.temp_leftovers:
            out.append(f"{self.temp_leftovers} leftover temp files")
        if not self.database_ok:
            out.append("DATABASE integrity_check failed")
        out += [f"USERNAMES differ only in case: {', '.join(group)} (each logs in only by its exact spelling; "
                f"rename all but one: lockr-local user rename {group[-1]} NEW_NAME)" for group in self.username_clashes]
        out += [f"PERMISSIONS {p}: other local users can read it" for p in self.loose_permissions[:20]]
        if len(self.loose_permissions) > 20:
            out.append(f"PERMISSIONS ... and {len(self.loose_permissions) - 20} more")
        if self.loose_permissions:
            out.append(f"  make the store private with: {self.permissions_fix}  (or fsck --repair)")
        out += [f"repaired: {r}" for r in self.repaired]
        out.append("clean" if self.clean else "problems found")
        return out


def sha256_of(files: FileBytes, at: StoredAt) -> str:
    """Reads a stored file's bytes wherever they live (fsck runs on the database thread, or alone)."""
    digest = hashlib.sha256()
    with files.open(at) as handle:
        while block := handle.read(4 * 2**20):
            digest.update(block)
    return digest.hexdigest()


# Rows read per query, and listed keys looked up per query (under SQLite's oldest limit of 999 parameters).
ROW_BATCH = 1000
KEY_BATCH = 500


def pending_session_file_ids() -> set[str]:
    """Objects that belong to sessions still finishing are not orphans."""
    return {row.file_id for row in UploadSession.select(UploadSession.file_id)}


def stored_files_with_inline_lengths() -> peewee.ModelSelect[StoredFile]:
    """Every file row with the length of its inline bytes (None for blob files, or inline bytes gone), in
    one query: a lookup per row would cost a query per inline file."""
    return (StoredFile.select(StoredFile.seq, StoredFile.file_id, StoredFile.region, StoredFile.size, StoredFile.sha256,
                              StoredFile.inline, StoredFile.deleted_at,
                              peewee.fn.LENGTH(InlineBlob.data).alias("inline_length"))
            .join(InlineBlob, peewee.JOIN.LEFT_OUTER, on=(InlineBlob.file == StoredFile.file_id)))


def _rows_in_batches() -> Iterator[StoredFile]:
    """Every file row (with its inline length), ROW_BATCH at a time by sequence number: PostgreSQL's driver
    would otherwise fetch a whole result into memory at once."""
    after = 0
    while True:
        batch = list(stored_files_with_inline_lengths().where(StoredFile.seq > after)
                     .order_by(StoredFile.seq).limit(ROW_BATCH))
        yield from batch
        if len(batch) < ROW_BATCH:
            return
        after = batch[-1].seq


def _unknown_keys(region: str, keys: Iterable[str]) -> Iterator[str]:
    """The listed keys of a region that no file row of the region and no upload session names (an
    unfinished session's bytes are not orphans), looked up KEY_BATCH at a time."""
    listed = iter(keys)
    while batch := list(islice(listed, KEY_BATCH)):
        known = {row.file_id for row in StoredFile.select(StoredFile.file_id)
                 .where((StoredFile.region == region) & StoredFile.file_id.in_(batch))}
        unknown = [key for key in batch if key not in known]
        if unknown:
            pending = {row.file_id for row in UploadSession.select(UploadSession.file_id)
                       .where(UploadSession.file_id.in_(unknown))}
            yield from (key for key in unknown if key not in pending)


def private_roots(settings: Settings) -> list[Path]:
    """What must be its owner's alone: the data folder, each region's folder, and the SQLite database
    with its -wal and -shm files wherever `database_url` puts them."""
    roots = [Path(settings.data_dir)] + list(settings.region_paths.values())  # a bucket has no folder
    database = sqlite_file(settings.database_url)
    if database is not None:
        roots += [database, database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")]
    return roots


def check_store(database: peewee.Database, blobs: BlobStore, *, verify: bool = False, repair: bool = False,
                progress: Callable[[int], None] | None = None, private: Sequence[Path] = ()) -> FsckReport:
    """Checks every promise the store makes; with repair, fixes what can be fixed without losing data:
    orphan bytes and temp leftovers are removed, quota counters recomputed, folders and files under
    `private` (see private_roots) that others may read made 0700 and 0600. Missing or corrupt bytes
    are only reported (a person decides)."""
    report = FsckReport()
    report.database_ok = integrity_ok(database)
    _check_permissions(report, private, repair)
    regions = set(blobs.regions())
    for row in _rows_in_batches():
        report.files_checked += 1
        if row.deleted_at is not None:
            report.files_in_trash += 1
        location = BlobLocation(row.region, row.file_id)
        if row.inline:  # its bytes are an InlineBlob row, not a blob file
            length = getattr(row, "inline_length")  # the query's alias, not a model field
            size = None if length is None else int(length)
        else:
            size = blobs.size(location) if row.region in regions else None
        if size is None:
            report.missing_bytes.append(row.file_id)
        elif size != row.size:
            report.wrong_size.append(row.file_id)
        elif verify:
            if sha256_of(FileBytes(blobs), StoredAt(location, bool(row.inline))) != row.sha256:
                report.corrupt.append(row.file_id)
            report.bytes_verified += size
        if progress:
            progress(report.files_checked)
    for region in blobs.regions():
        for key in _unknown_keys(region, blobs.iter_objects(region)):
            report.orphan_objects.append(key)
            if repair:
                blobs.delete(BlobLocation(region, key))
                report.repaired.append(f"removed orphan bytes {key}")
        report.temp_leftovers += blobs.temp_leftovers(region)
    if repair and report.temp_leftovers:
        blobs.clear_temp()
        report.repaired.append(f"removed {report.temp_leftovers} temp files")
    _check_quota(report, repair)
    report.username_clashes = username_case_clashes()
    if repair:
        report.orphan_objects = []
        report.temp_leftovers = 0
    return report


def _check_permissions(report: FsckReport, private: Sequence[Path], repair: bool) -> None:
    loose = loose_permissions(private)
    if repair and loose:
        tighten(loose)
        report.repaired.append(f"made {len(loose)} folders and files private (0700/0600)")
        return
    report.loose_permissions = [entry.describe() for entry in loose]
    report.permissions_fix = fix_command(private)


def _check_quota(report: FsckReport, repair: bool) -> None:
    # Account id -> bytes. (Cast: peewee's stubs type the rows of .tuples() as model instances.)
    used = dict(cast("Iterable[tuple[int, int]]", StoredFile.select(StoredFile.owner, peewee.fn.SUM(StoredFile.size))
                .where(StoredFile.owner.is_null(False)).group_by(StoredFile.owner).tuples()))
    reserved = dict(cast("Iterable[tuple[int, int]]", UploadSession.select(UploadSession.owner,
                                                                           peewee.fn.SUM(UploadSession.reserved))
                    .where(UploadSession.owner.is_null(False)).group_by(UploadSession.owner).tuples()))
    for account in Account.select():
        expected_used = int(used.get(account.id) or 0)
        expected_reserved = int(reserved.get(account.id) or 0)
        if account.used_bytes != expected_used or account.reserved_bytes != expected_reserved:
            message = (f"{account.username}: recorded used {account.used_bytes} / reserved {account.reserved_bytes}, "
                       f"actual {expected_used} / {expected_reserved}")
            if repair:
                Account.update(used_bytes=expected_used, reserved_bytes=expected_reserved).where(
                    Account.id == account.id).execute()
                report.repaired.append(f"recomputed quota of {account.username}")
            else:
                report.quota_mismatches.append(message)


def reap_orphans(blobs: BlobStore, grace: float = 0.0) -> int:
    """At start-up: bytes that a crash left without a row (after the rename, before the commit). The
    objects are listed before the rows are read, so an object stored meanwhile is not taken for an orphan.
    With `grace` (other nodes are running), an object stored less than `grace` seconds ago is left alone:
    it may be another node's upload between storing its bytes and committing its row."""
    listed = {region: list(blobs.iter_objects(region)) for region in blobs.regions()}
    known = {row.file_id for row in StoredFile.select(StoredFile.file_id).iterator()} | pending_session_file_ids()
    cutoff = time.time() - grace
    removed = 0
    for region, keys in listed.items():
        for key in keys:
            location = BlobLocation(region, key)
            if key in known:
                continue
            if grace > 0 and (blobs.stored_at(location) or 0.0) > cutoff:
                continue
            blobs.delete(location)
            removed += 1
    return removed
