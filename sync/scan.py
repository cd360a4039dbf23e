"""Local scans: walk the folder (or the dirty part of it) into LocalFile values, hashing only what changed."""

from __future__ import annotations

import hashlib
import os
import stat as stat_module
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from lockr_local.sync.engine import IndexEntry, LocalFile, in_scope
from lockr_local.sync.ignore import IgnoreRules

HASH_CHUNK = 1024 * 1024


@dataclass
class ScanResult:
    files: dict[str, LocalFile] = field(default_factory=dict)
    # Present but not ready: still being written (mtime too recent, or changed while hashed).
    unstable: set[str] = field(default_factory=set)
    # Present but unreadable (permissions, locks): reported and retried, never treated as deleted.
    unreadable: dict[str, str] = field(default_factory=dict)
    skipped_links: set[str] = field(default_factory=set)
    folder_present: bool = True


def relative(root: Path, path: str | os.PathLike[str]) -> str | None:
    """The '/'-joined NFC path of `path` inside `root`, or None when it is outside (or the root itself)."""
    try:
        rel = Path(os.path.abspath(path)).relative_to(root)
    except ValueError:
        return None
    text = rel.as_posix()
    if text in ("", "."):
        return ""
    return unicodedata.normalize("NFC", text)


def hash_file(path: Path) -> tuple[str, int, int] | None:
    """(sha256, size, mtime_ns) of a file, or None when it changed while being read."""
    before = path.stat()
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    after = path.stat()
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        return None
    return digest.hexdigest(), after.st_size, after.st_mtime_ns


def folder_present(root: Path) -> bool:
    """False when the folder is gone or is no longer a directory (an unmounted drive leaves nothing)."""
    try:
        return stat_module.S_ISDIR(os.stat(root).st_mode)
    except OSError:
        return False


def scan(root: Path, rules: IgnoreRules, index: Mapping[str, IndexEntry], *, scope: frozenset[str] | None = None,
         settle: float = 1.0, now: float | None = None) -> ScanResult:
    """Scans `root`: everything (scope None) or only the dirty paths and the folders among them."""
    result = ScanResult()
    if not folder_present(root):
        result.folder_present = False
        return result
    rules.reload()
    now = time.time() if now is None else now
    for rel, entry_stat in _walk(root, rules, scope, result):
        known = index.get(rel)
        if now - entry_stat.st_mtime_ns / 1e9 < settle:
            result.unstable.add(rel)
            result.files[rel] = LocalFile(rel, entry_stat.st_size, entry_stat.st_mtime_ns, "")
            continue
        if (known is not None and known.size == entry_stat.st_size and known.mtime_ns == entry_stat.st_mtime_ns
                and known.sha256):
            result.files[rel] = LocalFile(rel, known.size, known.mtime_ns, known.sha256)
            continue
        try:
            hashed = hash_file(root / rel)
        except OSError as exc:
            result.unreadable[rel] = exc.strerror or str(exc)
            result.files[rel] = LocalFile(rel, entry_stat.st_size, entry_stat.st_mtime_ns, "")
            continue
        if hashed is None:
            result.unstable.add(rel)
            result.files[rel] = LocalFile(rel, entry_stat.st_size, entry_stat.st_mtime_ns, "")
            continue
        result.files[rel] = LocalFile(rel, hashed[1], hashed[2], hashed[0])
    return result


def _walk(root: Path, rules: IgnoreRules, scope: frozenset[str] | None,
          result: ScanResult) -> Iterable[tuple[str, os.stat_result]]:
    """Regular files under root that are in scope and not ignored; symlinks are never followed."""
    if scope is None or "" in scope:
        starts = [""]
    else:
        # The shortest dirty paths cover their children; each is either a file, a folder or gone.
        starts = sorted(p for p in scope if not in_scope(p, frozenset(scope - {p})))
    for start in starts:
        yield from _walk_from(root, start, rules, result)


def _walk_from(root: Path, start: str, rules: IgnoreRules,
               result: ScanResult) -> Iterable[tuple[str, os.stat_result]]:
    if start:
        if rules.ignores(start) or any(rules.ignores("/".join(start.split("/")[:i]), True)
                                       for i in range(1, start.count("/") + 1)):
            return
        try:
            st = os.lstat(root / start)
        except OSError:
            return
        if stat_module.S_ISLNK(st.st_mode):
            result.skipped_links.add(start)
            return
        if stat_module.S_ISREG(st.st_mode):
            yield start, st
            return
        if not stat_module.S_ISDIR(st.st_mode) or rules.ignores(start, True):
            return
    pending = [start]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(root / folder if folder else root) as entries:
                children = list(entries)
        except OSError as exc:
            if folder:
                result.unreadable[folder + "/"] = exc.strerror or str(exc)
            continue
        for child in children:
            rel = unicodedata.normalize("NFC", f"{folder}/{child.name}" if folder else child.name)
            try:
                if child.is_symlink():
                    result.skipped_links.add(rel)
                    continue
                if child.is_dir(follow_symlinks=False):
                    if not rules.ignores(rel, True):
                        pending.append(rel)
                    continue
                if not child.is_file(follow_symlinks=False) or rules.ignores(rel):
                    continue
                yield rel, child.stat(follow_symlinks=False)
            except OSError:
                continue
