"""An exclusive lock on the data folder, so that one server process owns a store at a time."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from lockr_local.errors import Conflict


class DataDirLock:
    """flock() on DATA_DIR/lockr.lock; released by the OS when the process dies, even by SIGKILL."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "lockr.lock"
        self._fd: int | None = None

    def acquire(self) -> "DataDirLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _lock_exclusive(fd)
        except BlockingIOError as exc:
            os.close(fd)
            raise Conflict(f"Another lockr-local server is using {self.path.parent}; stop it first, "
                           "or give this one its own --data-dir.") from exc
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _lock_exclusive(fd: int) -> None:
    """Takes an exclusive, non-blocking lock held until the descriptor closes (or the process dies)."""
    if sys.platform == "win32":  # the packaged Windows build: msvcrt locks a byte range instead of flock
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError as exc:  # EACCES or EDEADLOCK: another process holds it
            raise BlockingIOError(str(exc)) from exc
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
