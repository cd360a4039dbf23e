"""Which paths are never synced: built-in temp/system files plus the folder's `.lockrignore` (gitignore syntax)."""

from __future__ import annotations

from pathlib import Path

import pathspec

IGNORE_FILE = ".lockrignore"

# Temp and system files no one wants mirrored: Office lock files, OS metadata, editor swap/backup files,
# partial downloads of browsers and download tools, and the agent's own temp files.
BUILTIN_PATTERNS: tuple[str, ...] = (
    "*.tmp", "*.temp", "~$*", ".~lock.*#", ".DS_Store", "._*", "Thumbs.db", "desktop.ini",
    ".*.swp", ".*.swo", ".*.swx", "*~", ".#*", "#*#", "4913",
    "*.part", "*.crdownload", "*.partial", "*.download", ".lockr-*",
    ".Trash-*/", ".Trashes/", "$RECYCLE.BIN/", "System Volume Information/", "lost+found/",
)


class IgnoreRules:
    """Built-in patterns plus `.lockrignore` at the folder's root; reloaded when that file changes.

    `excluded` are folders (relative, '/'-joined) never synced whatever `.lockrignore` says, such as
    the agent's own state folder when the synced folder contains it (syncing a home folder).
    """

    def __init__(self, root: Path, extra: tuple[str, ...] = (), excluded: tuple[str, ...] = ()) -> None:
        self.root = root
        self.extra = extra
        self.excluded = excluded
        self._stamp: tuple[int, int] | None = None
        self._spec = self._build([])
        self.reload()

    def _build(self, user_lines: list[str]) -> pathspec.PathSpec:
        return pathspec.GitIgnoreSpec.from_lines([*BUILTIN_PATTERNS, *self.extra, *user_lines])

    def reload(self) -> bool:
        """Re-reads `.lockrignore` if it changed; True when the rules changed."""
        path = self.root / IGNORE_FILE
        try:
            stat = path.stat()
            stamp: tuple[int, int] | None = (stat.st_size, stat.st_mtime_ns)
        except OSError:
            stamp = None
        if stamp == self._stamp:
            return False
        lines: list[str] = []
        if stamp is not None:
            try:
                lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                lines = []
        self._stamp = stamp
        self._spec = self._build(lines)
        return True

    def ignores(self, path: str, is_dir: bool = False) -> bool:
        """`path` is relative to the root with '/' separators; folders are matched with a trailing '/'."""
        if not path:
            return False
        if any(path == folder or path.startswith(folder + "/") for folder in self.excluded):
            return True
        candidate = path + "/" if is_dir else path
        if self._spec.match_file(candidate):
            return True
        # A file inside an ignored folder is ignored too (gitignore semantics).
        parts = path.split("/")
        return any(self._spec.match_file("/".join(parts[:i]) + "/") for i in range(1, len(parts)))
