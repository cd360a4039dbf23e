"""The store is its owner's alone: folders 0700 and files 0600 whatever the umask, and the check that
finds what others may read in an existing store."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from lockr_local.server.durable import durable_mkdir

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
# Bits that let anyone but the owner read, write or enter.
_OTHERS = 0o077


def make_private_dir(path: Path) -> Path:
    """Creates the folder `path` 0700, durably (missing parents as the umask says): the database, file ids (which
    are download capabilities) and small files' bytes live below it. An existing folder is left as it is;
    `fsck` reports it when others may enter it."""
    if not path.is_dir():
        # Never looser than 0700 at any moment (the umask only takes bits away); a power cut right after
        # the first upload must not lose the new store.
        durable_mkdir(path, PRIVATE_DIR)
        os.chmod(path, PRIVATE_DIR)  # exactly 0700, whatever the umask took away
    return path


def create_private_file(path: Path) -> None:
    """Creates `path` empty and 0600 unless it exists. SQLite gives the -wal and -shm files it makes the
    mode of the database file, so creating the database this way keeps all three private."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class LoosePath:
    """A folder or file of the store that others may read, write or enter."""

    path: Path
    mode: int

    def describe(self) -> str:
        kind = "folder" if stat.S_ISDIR(self.mode) else "file"
        wanted = PRIVATE_DIR if kind == "folder" else PRIVATE_FILE
        return f"{kind} {self.path} is {stat.S_IMODE(self.mode):04o}, should be {wanted:04o}"


def loose_permissions(roots: Iterable[Path], *, shallow: bool = False) -> list[LoosePath]:
    """The roots (the data folder, region folders, the database's files) and every file under them
    whose mode lets others in; `shallow` looks at the files directly in each root only (the database and
    the secret, not every blob). Folders inside a private root need no check: nobody else gets that far."""
    found: list[LoosePath] = []
    for path in _walk(roots, shallow):
        try:
            mode = path.lstat().st_mode
        except OSError:  # removed while we looked (a temp file, a reaped session)
            continue
        if stat.S_ISLNK(mode):
            continue
        if stat.S_IMODE(mode) & _OTHERS:
            found.append(LoosePath(path, mode))
    return found


def tighten(loose: Iterable[LoosePath]) -> None:
    """Makes the given folders 0700 and files 0600 (what `fsck --repair` does with the report)."""
    for entry in loose:
        os.chmod(entry.path, PRIVATE_DIR if stat.S_ISDIR(entry.mode) else PRIVATE_FILE)


def fix_command(roots: Iterable[Path]) -> str:
    """The shell command a person runs to make the store private again."""
    return "chmod -R go-rwx " + " ".join(f"'{root}'" for root in _outermost(roots) if root.exists())


def _outermost(roots: Iterable[Path]) -> list[Path]:
    """The roots that are not inside another root (a region in data_dir is walked with it)."""
    unique = sorted({Path(root) for root in roots}, key=lambda p: len(p.parts))
    kept: list[Path] = []
    for root in unique:
        if not any(root == k or k in root.parents for k in kept):
            kept.append(root)
    return kept


def _walk(roots: Iterable[Path], shallow: bool) -> Iterator[Path]:
    """Each outermost root, then the files below it (directly in it when shallow)."""
    for root in _outermost(roots):
        if not root.exists():
            continue
        yield root
        if root.is_dir():
            for folder, _dirs, files in os.walk(root):
                for name in files:
                    yield Path(folder) / name
                if shallow:
                    break
