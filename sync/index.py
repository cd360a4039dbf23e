"""The local state database of one synced folder: what was synced, by which remote id, and uploads in flight.

Kept outside the folder (in the platform's user state directory) so it is never synced itself and
survives the folder being unmounted. Its own peewee database, unrelated to the server's models.
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any, TypeVar, cast

import peewee

from lockr_local.sync.engine import IndexEntry, LocalFile

SCHEMA_VERSION = 1


def default_state_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_state_dir("lockr-local", appauthor=False)) / "sync"


def index_path(state_dir: Path, folder: Path, endpoint: str, region: str | None) -> Path:
    """One database per (folder, endpoint, region): the remote ids only mean something on that endpoint."""
    key = f"{folder.resolve()}\n{endpoint.rstrip('/')}\n{region or ''}"
    return state_dir / f"{folder.name or 'root'}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.db"


class _Entry(peewee.Model):
    path = peewee.TextField(primary_key=True)
    size = peewee.BigIntegerField()
    mtime_ns = peewee.BigIntegerField()
    sha256 = peewee.CharField(max_length=64)
    remote_id = peewee.CharField(max_length=64, null=True)
    session_url = peewee.TextField(null=True)
    session_offset = peewee.BigIntegerField(default=0)
    pending_sha256 = peewee.CharField(max_length=64, null=True)

    class Meta:
        table_name = "entry"


class _PendingDelete(peewee.Model):
    remote_id = peewee.CharField(max_length=64, primary_key=True)
    path = peewee.TextField()
    since = peewee.FloatField()

    class Meta:
        table_name = "pending_delete"


class _MetaRow(peewee.Model):
    key = peewee.CharField(primary_key=True)
    value = peewee.TextField()

    class Meta:
        table_name = "meta"


ModelT = TypeVar("ModelT", bound=peewee.Model)


def _bound(model: type[ModelT], database: peewee.Database) -> type[ModelT]:
    """A subclass of `model` bound to this index's own database, so two indexes can be open in one process
    (binding the declared model itself would move every open index to the newest database)."""
    meta = type("Meta", (), {"database": database, "table_name": model._meta.table_name})
    return cast("type[ModelT]", type(model.__name__, (model,), {"Meta": meta, "__module__": __name__}))


class SyncIndex:
    """Thread-safe access to the index; every write is one transaction."""

    def __init__(self, path: Path, *, folder: str = "", endpoint: str = "") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = peewee.SqliteDatabase(str(path), pragmas={"journal_mode": "wal", "synchronous": "normal",
                                                             "busy_timeout": 10000}, check_same_thread=False)
        self._lock = threading.RLock()
        self._Entry = _bound(_Entry, self._db)
        self._PendingDelete = _bound(_PendingDelete, self._db)
        self._Meta = _bound(_MetaRow, self._db)
        with self._lock:
            self._db.connect(reuse_if_open=True)
            self._db.create_tables([self._Entry, self._PendingDelete, self._Meta])
            with self._db.atomic():
                for key, value in (("schema", str(SCHEMA_VERSION)), ("folder", folder), ("endpoint", endpoint)):
                    self._Meta.insert(key=key, value=value).on_conflict_replace().execute()

    def meta(self, key: str) -> str | None:
        with self._lock:
            row = self._Meta.get_or_none(self._Meta.key == key)
            return None if row is None else str(row.value)

    def set_meta(self, key: str, value: str) -> None:
        with self._lock, self._db.atomic():
            self._Meta.insert(key=key, value=value).on_conflict_replace().execute()

    def close(self) -> None:
        with self._lock:
            if not self._db.is_closed():
                self._db.close()

    @staticmethod
    def _entry(row: Any) -> IndexEntry:
        return IndexEntry(row.path, row.size, row.mtime_ns, row.sha256, row.remote_id, row.session_url,
                          row.session_offset, row.pending_sha256)

    def entries(self) -> dict[str, IndexEntry]:
        with self._lock:
            return {row.path: self._entry(row) for row in self._Entry.select()}

    def get(self, path: str) -> IndexEntry | None:
        with self._lock:
            row = self._Entry.get_or_none(self._Entry.path == path)
            return None if row is None else self._entry(row)

    def pending_deletes(self) -> dict[str, str]:
        with self._lock:
            return {row.remote_id: row.path for row in self._PendingDelete.select()}

    def record_synced(self, local: LocalFile, remote_id: str, replaces: tuple[str, ...] = (),
                      forget: str | None = None) -> None:
        """The path's synced version is now `remote_id`; the ids it replaces are queued for deletion."""
        with self._lock, self._db.atomic():
            self._Entry.insert(path=local.path, size=local.size, mtime_ns=local.mtime_ns, sha256=local.sha256,
                               remote_id=remote_id, session_url=None, session_offset=0,
                               pending_sha256=None).on_conflict_replace().execute()
            for old_id in replaces:
                if old_id != remote_id:
                    self._PendingDelete.insert(remote_id=old_id, path=forget or local.path,
                                               since=time.time()).on_conflict_replace().execute()
            if forget and forget != local.path:
                self._Entry.delete().where(self._Entry.path == forget).execute()

    def record_session(self, local: LocalFile, session_url: str, offset: int) -> None:
        """An upload session is open for this content; kept so a restart resumes it."""
        with self._lock, self._db.atomic():
            row = self._Entry.get_or_none(self._Entry.path == local.path)
            if row is None:
                # Not synced yet: the entry exists only to carry the session (remote_id stays empty).
                self._Entry.insert(path=local.path, size=local.size, mtime_ns=local.mtime_ns, sha256=local.sha256,
                                   remote_id=None, session_url=session_url, session_offset=offset,
                                   pending_sha256=local.sha256).execute()
            else:
                self._Entry.update(session_url=session_url, session_offset=offset,
                                   pending_sha256=local.sha256).where(self._Entry.path == local.path).execute()

    def clear_session(self, path: str) -> None:
        with self._lock, self._db.atomic():
            self._Entry.update(session_url=None, session_offset=0, pending_sha256=None).where(
                self._Entry.path == path).execute()
            self._Entry.delete().where((self._Entry.path == path) & self._Entry.remote_id.is_null()).execute()

    def forget(self, path: str) -> None:
        with self._lock, self._db.atomic():
            self._Entry.delete().where(self._Entry.path == path).execute()

    def delete_done(self, remote_id: str) -> None:
        """The remote copy `remote_id` is gone: drop it from pending deletes and from any entry."""
        with self._lock, self._db.atomic():
            self._PendingDelete.delete().where(self._PendingDelete.remote_id == remote_id).execute()
            self._Entry.delete().where(self._Entry.remote_id == remote_id).execute()
