"""An account's files as a tree for WebDAV: folders derived from names with '/', renames, replacements.

Synchronous like `service.py`: every method runs on the `lockr-db` thread, so each is one transaction
that no other request of this server interleaves with; each that reads before it writes first locks the
account's row (lock_account), so that nodes sharing a PostgreSQL database do not interleave either.
Methods return the blob locations to delete; the caller removes those bytes afterwards, on an I/O
thread (rows go first, so no row ever lacks its bytes).

A path is one file when rows carry that exact name (the API allows several rows with one name: the
newest is shown, and WebDAV's PUT, DELETE and MOVE act on all of them, as a path is one thing here);
a folder when a DavFolder row has that path or any name lies below it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import peewee

from lockr_local.errors import (
    ChecksumMismatch, Conflict, Forbidden, MethodNotAllowed, NotFound, PreconditionFailed, QuotaExceeded,
)
from lockr_local.server.blobstore import BlobLocation, Digests
from lockr_local.server.inline import copy_inline, insert_inline
from lockr_local.server.models import Account, DavFolder, StoredFile, lock_account
from lockr_local.server.security import new_id
from lockr_local.server.service import FileInfo, NewFile, Principal, Service, charge_quota
from lockr_local.server.trash import move_to_trash
from lockr_local.server.webdav import Quota, Resource


@dataclass(frozen=True)
class CopyItem:
    """One file of a COPY: its source, and the name and id the copy gets."""

    source: FileInfo
    name: str
    file_id: str


def _below(field: peewee.Field, folder: str) -> peewee.Expression:
    """Names strictly inside `folder` ("" = the whole account), as an index-friendly range."""
    if not folder:
        return field.is_null(False)
    return (field >= folder + "/") & (field < folder + "0")  # '0' is the character after '/'


def _mine(account_id: int) -> peewee.Expression:
    """The account's live files: files in the trash (trash.py) are not in the tree at all."""
    return (StoredFile.owner == account_id) & StoredFile.live()


def _in_tree(field: peewee.Field, path: str) -> peewee.Expression:
    return (field == path) | _below(field, path)


def checksum_mismatch(expected: dict[str, str], digests: Digests) -> ChecksumMismatch | None:
    """What is wrong when a PUT body's digests differ from its OC-Checksum header; None when they agree."""
    for kind, value in expected.items():
        actual = getattr(digests, kind)
        if actual != value:
            return ChecksumMismatch(f"The body's {kind.upper()} is {actual}, not {value} as OC-Checksum says; "
                                    "nothing was stored.")
    return None


def blob_files(rows: list[StoredFile]) -> list[BlobLocation]:
    """The blob files of rows being removed; inline files' bytes go with their rows (ON DELETE CASCADE)."""
    return [BlobLocation(row.region, row.file_id) for row in rows if not row.inline]


def file_resource(row: StoredFile | FileInfo) -> Resource:
    if isinstance(row, StoredFile):
        row = FileInfo.of(row)
    return Resource(name=row.name, is_dir=False, mtime=row.mtime if row.mtime is not None else row.created_at,
                    size=row.size, etag=row.sha256, content_type=row.type, sha1=row.sha1, md5=row.md5,
                    created=row.created_at)


class DavStore:
    """The WebDAV view of accounts, over the same rows, quotas and blobs as the API."""

    def __init__(self, service: Service) -> None:
        self.service = service

    # -- reading ------------------------------------------------------------------------------

    def _files(self, account_id: int, name: str) -> list[StoredFile]:
        return list(StoredFile.select().where(_mine(account_id) & (StoredFile.name == name))
                    .order_by(StoredFile.seq.desc()))

    def folder_exists(self, account_id: int, path: str) -> bool:
        if not path:
            return True
        if DavFolder.select().where((DavFolder.owner == account_id) & _in_tree(DavFolder.path, path)).exists():
            return True
        return StoredFile.select().where(_mine(account_id) & _below(StoredFile.name, path)).exists()

    def stat(self, account_id: int, name: str) -> Resource | None:
        """The file or folder at `name` ("" = the account root), or None."""
        if name:
            rows = self._files(account_id, name)
            if rows:
                return file_resource(rows[0])
        if not self.folder_exists(account_id, name):
            return None
        return Resource(name=name, is_dir=True, mtime=self._folder_mtime(account_id, name))

    def _folder_mtime(self, account_id: int, path: str) -> float:
        """The newest time of what is inside (as listings show it), else when the folder was made."""
        newest = (StoredFile.select(peewee.fn.MAX(peewee.fn.COALESCE(StoredFile.mtime, StoredFile.created_at)))
                  .where(_mine(account_id) & _below(StoredFile.name, path)).scalar())
        if newest is not None:
            return float(newest)
        row = DavFolder.get_or_none((DavFolder.owner == account_id) & (DavFolder.path == path))
        if row is not None:
            return row.created_at
        account = Account.get_or_none(Account.id == account_id)
        return account.created_at if account is not None else time.time()

    def children(self, account_id: int, folder: str) -> list[Resource]:
        """The files and folders directly inside `folder`, sorted by name."""
        prefix = folder + "/" if folder else ""
        files: dict[str, Resource] = {}
        folders: dict[str, float] = {}
        rows = (StoredFile.select().where(_mine(account_id) & _below(StoredFile.name, folder))
                .order_by(StoredFile.name, StoredFile.seq.desc()))
        for row in rows:
            rest = row.name[len(prefix):]
            head, slash, _ = rest.partition("/")
            if slash:
                mtime = row.mtime if row.mtime is not None else row.created_at
                folders[head] = max(folders.get(head, 0.0), mtime)
            elif row.name not in files:
                files[row.name] = file_resource(row)
        for entry in DavFolder.select().where((DavFolder.owner == account_id) & _below(DavFolder.path, folder)):
            folders.setdefault(entry.path[len(prefix):].partition("/")[0], entry.created_at)
        listing = list(files.values()) + [Resource(name=prefix + head, is_dir=True, mtime=mtime)
                                          for head, mtime in folders.items()]
        return sorted(listing, key=lambda r: r.name)

    def quota(self, account_id: int) -> Quota:
        account = self.service.account(account_id)
        used = account.used_bytes + account.reserved_bytes
        return Quota(used=account.used_bytes, available=max(0, account.quota - used))

    def file(self, account_id: int, name: str) -> FileInfo:
        rows = self._files(account_id, name)
        if not rows:
            raise NotFound(f"There is no file at {name!r}.")
        return FileInfo.of(rows[0])

    # -- checks -------------------------------------------------------------------------------

    def _check_parent(self, account_id: int, name: str) -> None:
        """RFC 4918: a resource is created only inside an existing folder (409 otherwise)."""
        parent = name.rpartition("/")[0]
        if parent and self._files(account_id, parent):
            raise Conflict(f"{parent!r} is a file, not a folder.")
        if not self.folder_exists(account_id, parent):
            raise Conflict(f"The folder {parent!r} does not exist; create it first (MKCOL).")

    def admit_put(self, principal: Principal, name: str, size: int | None) -> str:
        """A PUT's (or a LOCK's new empty file's) one database trip before its body: the region it lands in,
        then check_put's refusals."""
        region = self.service.upload_region(principal, None)
        self.check_put(principal, name, size)
        return region

    def check_put(self, principal: Principal, name: str, size: int | None) -> bool:
        """Refuses a PUT before its body is read: a folder in the way, no parent folder, the plan's
        object size, or a quota the new bytes would overflow (net of the file they replace).
        Returns whether a file is being replaced."""
        assert principal.account_id is not None
        account_id = principal.account_id
        existing = self._files(account_id, name)
        if not existing and self.folder_exists(account_id, name):
            raise MethodNotAllowed(f"{name!r} is a folder; PUT writes files.")
        self._check_parent(account_id, name)
        if size is not None:
            self.service.check_object_size(principal, size)
            freed = sum(row.size for row in existing)
            if size > freed:
                self.service.check_upload(principal, size - freed, None)
        return bool(existing)

    # -- writing ------------------------------------------------------------------------------

    def commit_put(self, principal: Principal, new: NewFile, data: bytes | None = None
                   ) -> tuple[FileInfo, bool, list[BlobLocation]]:
        """Lists durable bytes under their name, replacing what was there in the same transaction; with
        `data`, the bytes are stored in that transaction too (an inline file).

        Returns (file, replaced, blobs of the replaced rows to delete).
        """
        assert principal.account_id is not None
        account_id = principal.account_id
        db = StoredFile._meta.database
        with db.atomic():
            lock_account(account_id)
            old = self._files(account_id, new.name)
            if not old and self.folder_exists(account_id, new.name):
                raise MethodNotAllowed(f"{new.name!r} became a folder meanwhile; nothing was stored.")
            self._check_parent(account_id, new.name)
            self._charge(principal, new.size - sum(row.size for row in old))
            StoredFile.delete().where(StoredFile.seq.in_([row.seq for row in old])).execute()
            row = StoredFile.create(file_id=new.file_id, owner=account_id, name=new.name, size=new.size,
                                    content_type=new.type, region=new.region, sha256=new.sha256, sha1=new.sha1,
                                    md5=new.md5, crc32c=new.check.crc32c, crc32=new.check.crc32, mtime=new.mtime,
                                    created_at=time.time(), inline=data is not None)
            if data is not None:
                insert_inline(db, new.file_id, data)
                self.service.faults.hit("before_inline_commit")
        return FileInfo.of(row), bool(old), blob_files(old)

    def _charge(self, principal: Principal, delta: int) -> None:
        """Adds `delta` bytes to the account's usage; growth must fit the quota."""
        assert principal.account_id is not None
        if not charge_quota(principal.account_id, delta, must_fit=delta > 0):
            self.service.check_upload(principal, delta, None)
            raise QuotaExceeded()

    def make_folder(self, account_id: int, path: str) -> None:
        """MKCOL: 405 when something exists there, 409 without a parent folder."""
        with DavFolder._meta.database.atomic():
            lock_account(account_id)
            if not path or self._files(account_id, path) or self.folder_exists(account_id, path):
                raise MethodNotAllowed(f"{path or 'The account folder'!r} already exists.")
            self._check_parent(account_id, path)
            DavFolder.create(owner=account_id, path=path, created_at=time.time())

    def _keep_folder(self, account_id: int, path: str) -> None:
        """A folder stays when its last file leaves (as in a file system), so rclone can remove it later."""
        if path:
            DavFolder.insert(owner=account_id, path=path, created_at=time.time()).on_conflict_ignore().execute()

    def _remove(self, account_id: int, name: str, to_trash: bool = False) -> tuple[bool, list[BlobLocation]]:
        """Removes the file rows or the folder tree at `name`, releasing quota; returns (found, blobs).
        With `to_trash` the files go to the trash instead, keeping bytes and quota (no blobs returned)."""
        rows = self._files(account_id, name)
        is_folder = not rows and self.folder_exists(account_id, name)
        if is_folder:
            rows = list(StoredFile.select().where(_mine(account_id) & _below(StoredFile.name, name)))
            DavFolder.delete().where((DavFolder.owner == account_id) & _in_tree(DavFolder.path, name)).execute()
        if not rows and not is_folder:
            return False, []
        if to_trash:
            move_to_trash(rows)
            return True, []
        StoredFile.delete().where(StoredFile.seq.in_([row.seq for row in rows])).execute()
        freed = sum(row.size for row in rows)
        charge_quota(account_id, -freed, must_fit=False)
        return True, blob_files(rows)

    def delete(self, account_id: int, name: str) -> list[BlobLocation]:
        """DELETE a file (every row of that name) or a folder with everything in it: into the trash, unless
        `trash_retention` is 0. A replacement (PUT over a file, MOVE or COPY with Overwrite) is not a
        delete: what it replaces goes at once, as before."""
        if not name:
            raise Forbidden("The account folder itself cannot be deleted; delete what is inside it.")
        with StoredFile._meta.database.atomic():
            lock_account(account_id)
            found, blobs = self._remove(account_id, name, to_trash=self.service.settings.trash_retention > 0)
            if not found:
                raise NotFound(f"Nothing exists at {name!r}.")
            self._keep_folder(account_id, name.rpartition("/")[0])
        return blobs

    def _prepare_target(self, account_id: int, source: str, target: str, overwrite: bool
                        ) -> tuple[bool, list[BlobLocation]]:
        """Checks a MOVE/COPY target and clears it when allowed; returns (existed, blobs to delete)."""
        if not target:
            raise Forbidden("The account folder itself cannot be replaced.")
        if target == source or target.startswith(source + "/"):
            raise Forbidden("The destination is the source or lies inside it.")
        exists = bool(self._files(account_id, target)) or self.folder_exists(account_id, target)
        if exists and not overwrite:
            raise PreconditionFailed()
        self._check_parent(account_id, target)
        if not exists:
            return False, []
        return True, self._remove(account_id, target)[1]

    def move(self, account_id: int, source: str, target: str, overwrite: bool, mtime: float | None
             ) -> tuple[bool, list[BlobLocation]]:
        """MOVE renames rows (a folder: every name under it); no byte moves. Returns (replaced, blobs)."""
        if not source:
            raise Forbidden("The account folder itself cannot be moved.")
        with StoredFile._meta.database.atomic():
            lock_account(account_id)
            rows = self._files(account_id, source)
            if not rows and not self.folder_exists(account_id, source):
                raise NotFound(f"Nothing exists at {source!r}.")
            replaced, blobs = self._prepare_target(account_id, source, target, overwrite)
            if rows:
                changes: dict[str, object] = {"name": target}
                if mtime is not None:
                    changes["mtime"] = mtime
                StoredFile.update(**changes).where(StoredFile.seq.in_([r.seq for r in rows])).execute()
            else:
                self._rename_tree(account_id, source, target)
            self._keep_folder(account_id, source.rpartition("/")[0])
        return replaced, blobs

    def _rename_tree(self, account_id: int, source: str, target: str) -> None:
        cut = len(source)
        renamed = [(row.seq, target + row.name[cut:]) for row in
                   StoredFile.select(StoredFile.seq, StoredFile.name)
                   .where(_mine(account_id) & _below(StoredFile.name, source))]
        for seq, name in renamed:
            StoredFile.update(name=name).where(StoredFile.seq == seq).execute()
        folders = [(row.id, target + row.path[cut:]) for row in
                   DavFolder.select().where((DavFolder.owner == account_id) & _in_tree(DavFolder.path, source))]
        for folder_id, path in folders:
            DavFolder.update(path=path).where(DavFolder.id == folder_id).execute()
        if not folders:
            DavFolder.insert(owner=account_id, path=target, created_at=time.time()).on_conflict_ignore().execute()

    def plan_copy(self, account_id: int, source: str, target: str, depth: str) -> tuple[list[CopyItem], list[str]]:
        """What a COPY will create: (files with their new names and ids, folders to keep)."""
        rows = self._files(account_id, source)
        if rows:
            return [CopyItem(FileInfo.of(rows[0]), target, new_id())], []
        if not source or not self.folder_exists(account_id, source):
            raise NotFound(f"Nothing exists at {source!r}.")
        if depth == "0":
            return [], [target]
        items: dict[str, CopyItem] = {}
        for row in (StoredFile.select().where(_mine(account_id) & _below(StoredFile.name, source))
                    .order_by(StoredFile.seq.desc())):
            name = target + row.name[len(source):]
            items.setdefault(name, CopyItem(FileInfo.of(row), name, new_id()))
        folders = [target + row.path[len(source):] for row in
                   DavFolder.select().where((DavFolder.owner == account_id) & _in_tree(DavFolder.path, source))]
        return list(items.values()), folders or [target]

    def commit_copy(self, principal: Principal, source: str, target: str, overwrite: bool,
                    items: list[CopyItem], folders: list[str], mtime: float | None) -> tuple[bool, list[BlobLocation]]:
        """Lists copies whose bytes are already durable; returns (replaced, blobs to delete)."""
        assert principal.account_id is not None
        account_id = principal.account_id
        with StoredFile._meta.database.atomic():
            lock_account(account_id)
            replaced, blobs = self._prepare_target(account_id, source, target, overwrite)
            self._charge(principal, sum(item.source.size for item in items))
            now = time.time()
            for item in items:
                src = item.source
                StoredFile.create(file_id=item.file_id, owner=account_id, name=item.name, size=src.size,
                                  content_type=src.type, region=src.region, sha256=src.sha256, sha1=src.sha1,
                                  md5=src.md5, crc32c=src.check.crc32c, crc32=src.check.crc32,
                                  mtime=mtime if mtime is not None and len(items) == 1 else src.mtime, created_at=now,
                                  inline=src.inline)
                # An inline file's copy is its bytes copied within this transaction (no clone to make).
                if src.inline and not copy_inline(src.id, item.file_id):
                    raise NotFound(f"{src.name!r} was deleted meanwhile; nothing was copied.")
            for path in folders:
                DavFolder.insert(owner=account_id, path=path, created_at=now).on_conflict_ignore().execute()
        return replaced, blobs

    def set_mtime(self, account_id: int, name: str, mtime: float) -> None:
        """PROPPATCH of lastmodified: files keep it; folders have theirs derived, so it is accepted and dropped."""
        StoredFile.update(mtime=mtime).where(_mine(account_id) & (StoredFile.name == name)).execute()
