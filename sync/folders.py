"""The remote folder of a synced folder: its default, its validation, and the refusal of overlapping folders.

Each synced folder lives under a remote folder of its own (`docs/b.txt` of a folder mapped to `laptop` is
the remote file `laptop/docs/b.txt`), so two synced folders holding the same relative path make two remote
files, and WebDAV shows both. The mapping is recorded in each folder's index (its `meta` table), which is
what lets a new sync see the folders already synced from this machine and refuse one that would share
files with them: the same or nested remote folders on one endpoint, or nested local folders.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from lockr_local.errors import ClientError, InvalidName
from lockr_local.names import normalize_name

# How the index records the mapping (sync/index.py's meta table).
REMOTE_FOLDER_KEY = "remote_folder"


class FolderOverlap(ClientError):
    """A synced folder whose remote or local folder overlaps one already synced from this machine."""

    code = "folder_overlap"


@dataclass(frozen=True)
class SyncedFolder:
    """A folder synced from this machine, as its index records it."""

    folder: str
    endpoint: str
    remote_folder: str
    index: Path


def default_remote_folder(folder: Path) -> str:
    """The local folder's own name (the drive's root has none: then the top level)."""
    return clean_remote_folder(Path(os.path.abspath(folder)).name)


def clean_remote_folder(text: str) -> str:
    """A remote folder as the user typed it -> its canonical form: "" (or "/") is the account's top level;
    surrounding slashes are dropped; the rest must be a valid lockr name (InvalidName says why not)."""
    stripped = text.strip().strip("/")
    if not stripped:
        return ""
    try:
        return normalize_name(stripped)
    except InvalidName as exc:
        raise InvalidName(f"The remote folder {text!r} cannot be used: {exc.message}") from exc


def _read_index(index: Path) -> tuple[dict[str, str], bool]:
    """An index's meta table and whether it holds entries, read-only (a running agent may have it open)."""
    with sqlite3.connect(f"file:{index}?mode=ro", uri=True, timeout=5) as db:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        has_entries = db.execute("SELECT 1 FROM entry LIMIT 1").fetchone() is not None
    return meta, has_entries


def resolve_remote_folder(index: Path, folder: Path, chosen: str | None) -> str:
    """The remote folder of a synced folder: the one chosen; else the one its index recorded; else, for an
    index from before remote folders (entries but no record), the top level where its files already are;
    else (a folder synced for the first time) the local folder's name."""
    if chosen is not None:
        return clean_remote_folder(chosen)
    if index.exists():
        try:
            meta, has_entries = _read_index(index)
        except sqlite3.Error:
            meta, has_entries = {}, False
        if REMOTE_FOLDER_KEY in meta:
            return meta[REMOTE_FOLDER_KEY]
        if has_entries:
            return ""
    return default_remote_folder(folder)


def synced_folders(state_dir: Path) -> list[SyncedFolder]:
    """Every folder whose index in `state_dir` records a remote folder (indexes of older versions record
    none: their files lie at the top level, where they were)."""
    found: list[SyncedFolder] = []
    for index in sorted(state_dir.glob("*.db")) if state_dir.is_dir() else []:
        try:
            meta, _ = _read_index(index)
        except sqlite3.Error:
            continue  # not an index, or one being created: nothing to compare with
        if meta.get("folder") and REMOTE_FOLDER_KEY in meta:
            found.append(SyncedFolder(meta["folder"], meta.get("endpoint", "").rstrip("/"), meta[REMOTE_FOLDER_KEY],
                                      index))
    return found


def _nested(a: str, b: str, sep: str) -> bool:
    """The same, or one inside the other ("" holds everything)."""
    return a == b or not a or not b or a.startswith(b + sep) or b.startswith(a + sep)


def check_overlap(state_dir: Path, folder: Path, endpoint: str, remote_folder: str) -> None:
    """Refuses (FolderOverlap) a synced folder whose files would mix with another's: on the same endpoint,
    the same or nested remote folders (one agent would take the other's files for its own or delete them),
    or nested local folders (a file would be synced twice). Folders that no longer exist are not counted."""
    here = str(Path(os.path.abspath(folder)))
    endpoint = endpoint.rstrip("/")
    for other in synced_folders(state_dir):
        if other.endpoint != endpoint or other.folder == here or not os.path.isdir(other.folder):
            continue
        release = (f"Choose another remote folder with --remote-folder NAME (the setup page's \"Remote folder\"), "
                   f"or, if {other.folder} is no longer synced, remove its state file {other.index}.")
        if _nested(here, other.folder, os.sep):
            raise FolderOverlap(f"{here} and {other.folder}, already synced to {endpoint}, are inside one "
                                f"another: their files would be synced twice. Sync only one of them. "
                                f"(If {other.folder} is no longer synced, remove its state file {other.index}.)")
        if _nested(remote_folder, other.remote_folder, "/"):
            mine = remote_folder or "(the top level)"
            theirs = other.remote_folder or "(the top level)"
            raise FolderOverlap(f"The remote folder {mine} overlaps {theirs}, where {other.folder} is already "
                                f"synced on {endpoint}: the two folders' files would mix. {release}")
