"""Guest uploads (files no account owns): listing and removal for the admin, and the rows that expire
after `guest_retention` (the sweep and the order of rows and bytes: retention.py).

Row functions run on the database thread."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import peewee

from lockr_local.errors import BadRequest, NotFound
from lockr_local.server.blobstore import BlobLocation
from lockr_local.server.filebytes import StoredAt
from lockr_local.server.models import InlineBlob, StoredFile
from lockr_local.server.retention import BATCH

# The access log shows ids cut to 8 characters (logsafe.py): that much of an id picks a guest file.
MIN_PREFIX = 8


@dataclass(frozen=True)
class GuestFile:
    file_id: str
    name: str
    size: int
    region: str
    created_at: float
    inline: bool

    @property
    def place(self) -> StoredAt:
        return StoredAt(BlobLocation(self.region, self.file_id), self.inline)

    @staticmethod
    def of(row: StoredFile) -> "GuestFile":
        return GuestFile(row.file_id, row.name, row.size, row.region, row.created_at, bool(row.inline))


def _guest() -> peewee.Expression:
    return StoredFile.owner.is_null()


def list_guest_files() -> list[GuestFile]:
    """Every guest upload, oldest first."""
    return [GuestFile.of(row) for row in StoredFile.select().where(_guest()).order_by(StoredFile.seq)]


def find_guest_file(id_or_prefix: str) -> GuestFile:
    """The guest upload with this id, or the only one whose id starts with it (at least 8 characters)."""
    text = id_or_prefix.strip().lower()
    if len(text) < MIN_PREFIX or not all(c in "0123456789abcdef" for c in text):
        raise BadRequest(f"{id_or_prefix!r} is not a file id (32 hex characters, or the first {MIN_PREFIX} or "
                         "more of one, as 'lockr-local guest list' and the access log show).")
    rows = list(StoredFile.select().where(_guest() & StoredFile.file_id.startswith(text)).limit(2))
    if not rows:
        raise NotFound(f"No guest upload has the id {id_or_prefix}; 'lockr-local guest list' shows them.")
    if len(rows) > 1:
        raise BadRequest(f"More than one guest upload has an id starting with {id_or_prefix}; give more of it.")
    return GuestFile.of(rows[0])


def remove_rows(files: Iterable[GuestFile]) -> list[GuestFile]:
    """Deletes the rows (and inline bytes) of those of `files` that are still guest uploads; returns them.
    A file registered into an account in the meantime is left alone."""
    db = StoredFile._meta.database
    removed = []
    with db.atomic():
        for file in files:
            query = StoredFile.delete().where((StoredFile.file_id == file.file_id) & _guest())
            if query.execute():
                InlineBlob.delete().where(InlineBlob.file == file.file_id).execute()
                removed.append(file)
    return removed


def take_expired(cutoff: float, batch: int = BATCH) -> list[GuestFile]:
    """Deletes the rows of guest uploads made before `cutoff` (up to `batch` per call); returns them."""
    rows = StoredFile.select().where(_guest() & (StoredFile.created_at < cutoff)).order_by(StoredFile.seq)
    return remove_rows([GuestFile.of(row) for row in rows.limit(batch)])
