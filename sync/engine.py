"""Pure sync planning: local scan + local index + remote listing (+ dirty paths) -> the actions to take.

Nothing here touches the disk, the network or a clock: the agent gathers the inputs and carries out
the plan, so every decision can be unit-tested with synthetic inputs.

Mirror semantics, in the order the rules are applied:
- Remote names are the files' paths relative to the synced folder, joined with '/', under the synced
  folder's remote folder (`remote_folder`, "" for the account's top level): `docs/b.txt` of a folder
  mapped to `laptop` is `laptop/docs/b.txt`, so two synced folders never share a remote name. A synced
  file whose remote copy lies elsewhere (the remote folder was changed) is uploaded again under its
  new name, the old copy deleted once that completed, as a rename is.
- A new local file is uploaded. A changed one is uploaded first; its old remote copy is deleted only
  after the new upload completed (`Upload.replaces`), so the remote never lacks the file.
- Renames: the lockr API has neither rename nor copy, so a rename (or move) is an upload under the new
  name followed by deleting the old copy once the new one is complete. The engine pairs a vanished
  path with a new path of the same size and SHA-256 and plans exactly that, so a rename is never seen
  as a deletion (it does not count towards the deletion guard, and a directory move of many files is
  never paused). The bytes are sent again: without a server-side copy there is no way around it.
- A file deleted locally is deleted remotely, by the id the agent recorded when it uploaded it.
- Remote files the agent did not create (ids not in its index) are left alone, with one exception:
  a remote file with exactly the path's name, size and SHA-256 is adopted instead of uploading the
  same bytes again (this is what makes a lost index, or a crash between an upload's completion and
  its recording, end without duplicates).
- A file still being written (`unstable`) or that cannot be read (`unreadable`) is present but not
  ready: nothing is uploaded or adopted for it now (an unreadable one is reported as skipped), and it
  is never taken for deleted; the agent looks at it again later.
- Deletion guard: a missing folder, an empty folder whose index is not empty (an unmounted drive), or
  more remote deletions in one pass than `GuardSettings` allows, pauses deletions and reports why;
  uploads still happen, nothing is deleted until the user confirms (`allow_deletions=True`).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Callable, Collection, Iterable, Mapping


@dataclass(frozen=True)
class LocalFile:
    """A regular file found by a scan: its path relative to the folder ('/'-joined, NFC) and content."""

    path: str
    size: int
    mtime_ns: int
    sha256: str


@dataclass(frozen=True)
class IndexEntry:
    """What the agent last synced for a path, and any upload it has in flight for it."""

    path: str
    size: int
    mtime_ns: int
    sha256: str
    remote_id: str | None = None
    session_url: str | None = None
    session_offset: int = 0
    pending_sha256: str | None = None


@dataclass(frozen=True)
class RemoteEntry:
    """One file of the remote listing."""

    name: str
    id: str
    size: int
    sha256: str
    download_url: str = ""


@dataclass(frozen=True)
class GuardSettings:
    """Limits on remote deletions in one pass before the agent pauses and asks."""

    max_count: int = 1000
    max_share: float = 0.5
    # The share rule only applies from this many deletions on, so deleting 3 of 4 files is fine.
    share_min_count: int = 10


@dataclass(frozen=True)
class Upload:
    path: str
    size: int
    mtime_ns: int
    sha256: str
    reason: str
    replaces: tuple[str, ...] = ()
    renamed_from: str | None = None
    resume_url: str | None = None
    resume_offset: int = 0
    # The name it is stored under: `path` under the remote folder ("" = `path` itself).
    remote_name: str = ""

    @property
    def name(self) -> str:
        return self.remote_name or self.path


@dataclass(frozen=True)
class Adopt:
    """Record an existing remote copy as this path's synced version (no bytes sent)."""

    path: str
    size: int
    mtime_ns: int
    sha256: str
    remote_id: str
    replaces: tuple[str, ...] = ()
    renamed_from: str | None = None


@dataclass(frozen=True)
class DeleteRemote:
    path: str
    remote_id: str
    reason: str


@dataclass(frozen=True)
class ForgetIndex:
    """Drop a path from the index without touching the remote (already gone, or now ignored)."""

    path: str
    reason: str


@dataclass(frozen=True)
class Skip:
    path: str
    reason: str


@dataclass(frozen=True)
class PauseForDeletionGuard:
    reason: str
    withheld: int


Action = Upload | Adopt | DeleteRemote | ForgetIndex | Skip | PauseForDeletionGuard


@dataclass
class Plan:
    uploads: list[Upload] = field(default_factory=list)
    adopts: list[Adopt] = field(default_factory=list)
    deletes: list[DeleteRemote] = field(default_factory=list)
    forgets: list[ForgetIndex] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    guard: PauseForDeletionGuard | None = None

    @property
    def actions(self) -> list[Action]:
        found: list[Action] = [*self.adopts, *self.forgets, *self.uploads, *self.deletes, *self.skips]
        if self.guard is not None:
            found.append(self.guard)
        return found

    @property
    def in_sync(self) -> bool:
        """True when the remote already matches the folder (skipped files are reported, not pending)."""
        return not (self.uploads or self.adopts or self.deletes or self.guard)

    def summary(self) -> str:
        parts = []
        for label, items in (("to upload", self.uploads), ("to adopt", self.adopts),
                             ("to delete remotely", self.deletes), ("skipped", self.skips)):
            if items:
                parts.append(f"{len(items)} {label}")
        if self.guard is not None:
            parts.append(f"deletions paused: {self.guard.reason}")
        return ", ".join(parts) or "in sync"


def remote_name_problem(path: str) -> str | None:
    """Why a relative path cannot be a lockr object name, or None (mirrors lockr_local.names)."""
    from lockr_local.errors import InvalidName
    from lockr_local.names import normalize_name

    try:
        normalize_name(path)
    except InvalidName as exc:
        return exc.message
    return None


def remote_name(path: str, remote_folder: str = "") -> str:
    """The remote name of a synced path: under the remote folder, or the path itself at the top level."""
    return f"{remote_folder}/{path}" if remote_folder else path


def in_remote_folder(name: str, remote_folder: str) -> bool:
    return not remote_folder or name.startswith(remote_folder + "/")


def in_scope(path: str, scope: frozenset[str] | None) -> bool:
    """A path is in scope when it or one of its parent folders was marked dirty (None = everything)."""
    if scope is None:
        return True
    if path in scope or "" in scope:
        return True
    parts = path.split("/")
    return any("/".join(parts[:i]) in scope for i in range(1, len(parts)))


def plan(local: Mapping[str, LocalFile], index: Mapping[str, IndexEntry], remote: Iterable[RemoteEntry], *,
         folder_present: bool = True, scope: frozenset[str] | None = None,
         pending_deletes: Mapping[str, str] | None = None,
         is_ignored: Callable[[str], bool] = lambda path: False,
         guard: GuardSettings = GuardSettings(), allow_deletions: bool = False,
         unstable: Collection[str] = frozenset(), unreadable: Mapping[str, str] | None = None,
         remote_folder: str = "") -> Plan:
    """Decides what to do so the remote mirrors `local` under `remote_folder` ("" = the top level).

    `local` holds the scan of every in-scope path (scope None = a full scan); `index` the whole index;
    `remote` the whole remote listing (files outside `remote_folder` are never adopted); `pending_deletes` maps remote ids already replaced by a newer
    upload (their deletion was interrupted) to their paths; `unstable` and `unreadable` (path -> why)
    are the scanned paths not ready to be read now.
    """
    unreadable = unreadable or {}
    result = Plan()
    if not folder_present:
        withheld = sum(1 for entry in index.values() if entry.remote_id)
        result.guard = PauseForDeletionGuard("the folder is missing (unmounted or removed); nothing is deleted "
                                             "until it is back", withheld)
        return result

    remote_by_id = {entry.id: entry for entry in remote}
    owned_ids = {entry.remote_id for entry in index.values() if entry.remote_id}
    owned_ids.update((pending_deletes or {}).keys())
    adoptable: dict[tuple[str, int, str], str] = {}
    for listed in remote_by_id.values():
        if listed.id not in owned_ids and in_remote_folder(listed.name, remote_folder):
            adoptable.setdefault((unicodedata.normalize("NFC", listed.name), listed.size, listed.sha256), listed.id)

    for remote_id, path in sorted((pending_deletes or {}).items(), key=lambda item: item[1]):
        if remote_id in remote_by_id:
            result.deletes.append(DeleteRemote(path, remote_id, "replaced by a newer upload"))

    # Paths that need bytes on the remote, and index entries whose local file vanished.
    needs_upload: list[tuple[LocalFile, IndexEntry | None, str]] = []
    vanished: list[IndexEntry] = []
    for path in sorted(set(local) | {p for p in index if in_scope(p, scope)}):
        here = local.get(path)
        known = index.get(path)
        if here is None:
            assert known is not None
            if is_ignored(path):
                result.forgets.append(ForgetIndex(path, "now ignored; the remote copy is kept"))
            elif known.remote_id and known.remote_id in remote_by_id:
                vanished.append(known)
            else:
                result.forgets.append(ForgetIndex(path, "deleted locally and not on the remote"))
            continue
        problem = remote_name_problem(remote_name(path, remote_folder))
        if problem is not None:
            result.skips.append(Skip(path, problem))
            continue
        if path in unstable or path in unreadable:
            continue  # not ready: looked at again on a later pass
        if known is None:
            needs_upload.append((here, None, "new"))
        elif known.remote_id is None:
            needs_upload.append((here, known, "not uploaded yet"))
        elif known.remote_id not in remote_by_id:
            needs_upload.append((here, known, "missing on the remote"))
        elif known.sha256 != here.sha256 or known.size != here.size:
            needs_upload.append((here, known, "changed"))
        elif unicodedata.normalize("NFC", remote_by_id[known.remote_id].name) != remote_name(path, remote_folder):
            needs_upload.append((here, known, f"moved to the remote folder {remote_folder or '(top level)'}"))
        elif known.mtime_ns != here.mtime_ns:
            # Touched but identical: record the new mtime so the next scan need not hash it again.
            result.adopts.append(Adopt(path, here.size, here.mtime_ns, here.sha256, known.remote_id))

    # Pair vanished paths with new content of the same size and hash: renames and moves.
    vanished_by_content: dict[tuple[int, str], list[IndexEntry]] = {}
    for entry in vanished:
        vanished_by_content.setdefault((entry.size, entry.sha256), []).append(entry)
    for here, known, reason in needs_upload:
        replaces: list[str] = []
        renamed_from = None
        if known is not None and known.remote_id and known.remote_id in remote_by_id:
            replaces.append(known.remote_id)
        candidates = vanished_by_content.get((here.size, here.sha256))
        if known is None and candidates:
            old = _closest(here.path, candidates)
            candidates.remove(old)
            assert old.remote_id is not None
            replaces.append(old.remote_id)
            renamed_from = old.path
            reason = f"renamed from {old.path}"
        name = remote_name(here.path, remote_folder)
        adopt_id = adoptable.pop((name, here.size, here.sha256), None)
        if adopt_id is not None:
            result.adopts.append(Adopt(here.path, here.size, here.mtime_ns, here.sha256, adopt_id,
                                       tuple(replaces), renamed_from))
            continue
        resume_url = None
        resume_offset = 0
        if known is not None and known.session_url and known.pending_sha256 == here.sha256:
            resume_url, resume_offset = known.session_url, known.session_offset
        result.uploads.append(Upload(here.path, here.size, here.mtime_ns, here.sha256, reason, tuple(replaces),
                                     renamed_from, resume_url, resume_offset, name if remote_folder else ""))

    deletions = [DeleteRemote(entry.path, entry.remote_id, "deleted locally")
                 for group in vanished_by_content.values() for entry in group if entry.remote_id]
    deletions.sort(key=lambda action: action.path)
    tracked = sum(1 for entry in index.values() if entry.remote_id)
    paused_because = None
    if deletions and not allow_deletions:
        if scope is None and not local and tracked:
            paused_because = "the folder is empty (an unmounted drive?)"
        elif len(deletions) > guard.max_count:
            paused_because = f"{len(deletions)} remote deletions in one pass exceed the limit of {guard.max_count}"
        elif len(deletions) >= guard.share_min_count and len(deletions) > guard.max_share * tracked:
            paused_because = (f"{len(deletions)} of {tracked} synced files would be deleted remotely "
                              f"(more than {guard.max_share:.0%})")
    if paused_because is not None:
        result.guard = PauseForDeletionGuard(paused_because + "; confirm with --allow-deletions", len(deletions))
    else:
        result.deletes.extend(deletions)
    for path, why in unreadable.items():
        result.skips.append(Skip(path, f"cannot be read ({why}); retrying"))
    return result


def _closest(path: str, candidates: list[IndexEntry]) -> IndexEntry:
    """Among identical vanished files, the one whose name is most like the new one (a rename's source)."""
    base = path.rsplit("/", 1)[-1]
    folder = path.rpartition("/")[0]

    def score(entry: IndexEntry) -> tuple[int, int, str]:
        old_base = entry.path.rsplit("/", 1)[-1]
        old_folder = entry.path.rpartition("/")[0]
        return (0 if old_base.lower() == base.lower() else 1, 0 if old_folder == folder else 1, entry.path)

    return min(candidates, key=score)
