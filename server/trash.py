"""The trash: files their owner deleted, kept for `trash_retention`, listed, restored, deleted forever, purged.

A delete (API, WebDAV, the sync agent through the API) only sets the row's `deleted_at`: the row keeps
its id, its bytes and its quota charge, and every listing, download, WebDAV view and name check leaves it
out (`StoredFile.live()`). Trashed bytes count against the quota, as in Dropbox and Nextcloud, so the
trash cannot be used to store more than the quota; `used` is the sum of live and trashed sizes.

Deleting for good (one file, emptying the trash, the purge after `trash_retention`) removes the row and
releases its quota in one transaction, then the bytes: a crash in between leaves unlisted bytes that the
start-up orphan reaper and fsck remove, never a row without bytes. Row functions run on the database
thread; blob deletions on an I/O thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable

import peewee

from lockr_local.errors import BadRequest, NotFound
from lockr_local.names import MAX_NAME_BYTES, MAX_SEGMENT_BYTES
from lockr_local.server.blobstore import BlobLocation
from lockr_local.server.filebytes import StoredAt
from lockr_local.server.models import DavFolder, InlineBlob, StoredFile, lock_account
from lockr_local.server.numbers import parse_count
from lockr_local.server.retention import BATCH
from lockr_local.server.service import FileInfo, Principal, charge_quota

# What a restored file is called when its name is taken meanwhile: "report (restored).pdf", then
# "report (restored 2).pdf" and so on.
RESTORED = "restored"


@dataclass(frozen=True)
class TrashedFile:
    """A file in the trash: the file as it was, and when its owner deleted it."""

    file: FileInfo
    deleted_at: float


def _trashed() -> peewee.Expression:
    return StoredFile.deleted_at.is_null(False)


def _not_in_trash() -> NotFound:
    return NotFound("Your trash has no file with that id; 'GET /api/v1/trash' lists it.")


def move_to_trash(rows: Iterable[StoredFile], now: float | None = None) -> int:
    """Marks live rows deleted (inside the caller's transaction); returns how many it marked."""
    seqs = [row.seq for row in rows]
    if not seqs:
        return 0
    moment = time.time() if now is None else now
    return int(StoredFile.update(deleted_at=moment).where(StoredFile.seq.in_(seqs) & StoredFile.live()).execute())


def list_trash(account_id: int, limit: int, cursor: str | None) -> tuple[list[TrashedFile], str | None]:
    """One page of the account's trash, oldest upload first like the files listing, with the same cursor."""
    query = StoredFile.select().where((StoredFile.owner == account_id) & _trashed())
    if cursor:
        after = parse_count(cursor)
        if after is None:
            raise BadRequest("The cursor is not one this server gave out.", field="cursor")
        query = query.where(StoredFile.seq > after)
    rows = list(query.order_by(StoredFile.seq).limit(limit + 1))
    next_cursor = str(rows[limit - 1].seq) if len(rows) > limit else None
    # deleted_at is set on every row this query selects (`_trashed()`); `or 0.0` only tells the type checker.
    return [TrashedFile(FileInfo.of(row), row.deleted_at or 0.0) for row in rows[:limit]], next_cursor


def trash_bytes(account_id: int) -> tuple[int, int]:
    """(files, bytes) in the account's trash."""
    count, size = (StoredFile.select(peewee.fn.COUNT(StoredFile.seq), peewee.fn.SUM(StoredFile.size))
                   .where((StoredFile.owner == account_id) & _trashed()).tuples().first() or (0, 0))
    return int(count or 0), int(size or 0)


def _owned_trashed(principal: Principal, file_id: str) -> StoredFile:
    """The caller's trashed file; 404 for unknown ids, live files and other people's files alike."""
    if principal.account_id is None:
        raise _not_in_trash()
    row = (StoredFile.select().where((StoredFile.file_id == file_id) & (StoredFile.owner == principal.account_id)
                                     & _trashed()).first())
    if row is None:
        raise _not_in_trash()
    return row


def restore(principal: Principal, file_id: str) -> FileInfo:
    """Brings a trashed file back with the same id (so its share and signed links work again). When a live
    file or a folder now has its name, it comes back as "NAME (restored).EXT" ("(restored 2)", ...): the
    file that took the name meanwhile is left as it is."""
    assert principal.account_id is not None
    with StoredFile._meta.database.atomic():
        lock_account(principal.account_id)  # the name check and the rename are one step on every node
        row = _owned_trashed(principal, file_id)
        name = free_name(principal.account_id, row.name)
        StoredFile.update(deleted_at=None, name=name).where(StoredFile.seq == row.seq).execute()
        restored = StoredFile.get(StoredFile.seq == row.seq)
    return FileInfo.of(restored)


def _name_taken(account_id: int, name: str) -> bool:
    """Whether a live file has the name, or a folder is there (a DavFolder, or live names below it)."""
    mine = (StoredFile.owner == account_id) & StoredFile.live()
    if StoredFile.select().where(mine & (StoredFile.name == name)).exists():
        return True
    if DavFolder.select().where((DavFolder.owner == account_id) & (DavFolder.path == name)).exists():
        return True
    return StoredFile.select().where(mine & (StoredFile.name >= name + "/") & (StoredFile.name < name + "0")).exists()


def free_name(account_id: int, name: str) -> str:
    """`name` when no live file or folder has it, else the first free "(restored)" variant of it."""
    if not _name_taken(account_id, name):
        return name
    number = 1
    while True:
        candidate = restored_name(name, number)
        if not _name_taken(account_id, candidate):
            return candidate
        number += 1


def restored_name(name: str, number: int) -> str:
    """'docs/report.pdf' -> 'docs/report (restored).pdf' (number 1) or 'docs/report (restored 2).pdf'. The
    mark goes before the extension so the file still opens with its program; a name that would grow past
    the limits (255 bytes a segment, 1024 in all) is shortened before the mark."""
    folder, slash, leaf = name.rpartition("/")
    dot = leaf.rfind(".")
    stem, extension = (leaf[:dot], leaf[dot:]) if dot > 0 else (leaf, "")
    mark = f" ({RESTORED})" if number == 1 else f" ({RESTORED} {number})"
    tail = len((mark + extension).encode("utf-8"))
    room = min(MAX_SEGMENT_BYTES - tail, MAX_NAME_BYTES - len((folder + slash).encode("utf-8")) - tail)
    while len(stem.encode("utf-8")) > room:
        stem = stem[:-1]
    return f"{folder}{slash}{stem}{mark}{extension}"


@dataclass(frozen=True)
class Removed:
    """A trashed file deleted for good: where its bytes are (for the caller to delete) and its size."""

    place: StoredAt
    size: int


def _remove_rows(rows: list[StoredFile]) -> list[Removed]:
    """Deletes trashed rows (and inline bytes) and releases their owners' quota, in the caller's
    transaction; returns the rows it deleted, whose bytes the caller deletes next."""
    removed: list[Removed] = []
    freed: dict[int, int] = {}
    for row in rows:
        if StoredFile.delete().where((StoredFile.seq == row.seq) & _trashed()).execute():
            InlineBlob.delete().where(InlineBlob.file == row.file_id).execute()
            removed.append(Removed(StoredAt(BlobLocation(row.region, row.file_id), bool(row.inline)), row.size))
            if row.owner_id is not None:
                freed[row.owner_id] = freed.get(row.owner_id, 0) + row.size
    for owner_id, size in freed.items():
        charge_quota(owner_id, -size, must_fit=False)
    return removed


def delete_forever(principal: Principal, file_id: str) -> StoredAt:
    """Deletes one trashed file's row and releases its quota; returns its bytes' place for the caller."""
    with StoredFile._meta.database.atomic():
        removed = _remove_rows([_owned_trashed(principal, file_id)])
    if not removed:
        raise _not_in_trash()
    return removed[0].place


def take_from_trash(account_id: int, batch: int = BATCH) -> list[Removed]:
    """Empties up to `batch` files of the account's trash (rows and quota); returns their bytes' places."""
    with StoredFile._meta.database.atomic():
        rows = list(StoredFile.select().where((StoredFile.owner == account_id) & _trashed())
                    .order_by(StoredFile.seq).limit(batch))
        return _remove_rows(rows)


def take_expired(cutoff: float, batch: int = BATCH) -> list[Removed]:
    """Removes up to `batch` files trashed before `cutoff` (rows and quota); returns their bytes' places."""
    with StoredFile._meta.database.atomic():
        rows = list(StoredFile.select().where(_trashed() & (StoredFile.deleted_at < cutoff))
                    .order_by(StoredFile.deleted_at).limit(batch))
        return _remove_rows(rows)
