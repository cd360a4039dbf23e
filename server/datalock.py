"""An exclusive lock on the data folder, so that one server process owns a store at a time."""

from __future__ import annotations

import fcntl
import os
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
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
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
