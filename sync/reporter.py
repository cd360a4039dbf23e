"""`StatusReporter`: the agent's live `SyncStatus` (state, transfers in flight, recent uploads) and its file.

Thread-safe: the sync loop, the upload threads and the remote's health listener all report here, and
`snapshot()` is what `SyncAgent.status()` hands the tray. Every change of state rewrites the status file
at once; progress rewrites it at most twice a second.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from lockr_local.sync.status import PauseCause, RecentUpload, SyncState, SyncStatus, write_status

log = logging.getLogger("lockr.sync")

RECENT_KEPT = 20  # recent uploads in the status (the tray lists the newest of them)
PROGRESS_WRITE_INTERVAL = 0.5


def status_path(state_dir: Path, folder: Path) -> Path:
    """The status file other processes read; keyed by the folder alone so `--status FOLDER` finds it."""
    digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    return state_dir / f"{folder.resolve().name or 'root'}-{digest}.status.json"


class StatusReporter:
    """Holds the status between snapshots; each method is one transition the agent makes."""

    def __init__(self, status_file: Path, *, folder: str, endpoint: str, queue_length: Callable[[], int]) -> None:
        self.status_file = status_file
        self._queue_length = queue_length
        self._lock = threading.Lock()
        self._status = SyncStatus(state=SyncState.IDLE, folder=folder, endpoint=endpoint, pid=os.getpid())
        self._recent: collections.deque[RecentUpload] = collections.deque(maxlen=RECENT_KEPT)
        self._current: dict[str, tuple[int, int]] = {}
        self._last_write = 0.0
        self.upload_count = 0

    # ----- reading -------------------------------------------------------------------------------
    def snapshot(self) -> SyncStatus:
        queue_length = self._queue_length()
        with self._lock:
            current = next(iter(self._current.items()), None)
            return replace(self._status, queue_length=queue_length,
                           current_file=current[0] if current else None,
                           current_done=current[1][0] if current else 0,
                           current_size=current[1][1] if current else 0,
                           recent_uploads=tuple(reversed(self._recent)), updated=time.time())

    @property
    def state(self) -> SyncState:
        with self._lock:
            return self._status.state

    # ----- transitions ---------------------------------------------------------------------------
    def syncing(self) -> None:
        self._update(lambda s: replace(s, state=SyncState.SYNCING))

    def offline(self, message: str) -> None:
        self._update(lambda s: replace(s, state=SyncState.OFFLINE, last_error=message))

    def failed(self, message: str, skipped: tuple[str, ...] | None = None) -> None:
        self._update(lambda s: replace(s, state=SyncState.ERROR, last_error=message,
                                       skipped=s.skipped if skipped is None else skipped))

    def paused(self, reason: str, cause: PauseCause, skipped: tuple[str, ...] | None = None) -> None:
        self._update(lambda s: replace(s, state=SyncState.PAUSED, paused_reason=reason, paused_by=cause,
                                       skipped=s.skipped if skipped is None else skipped))

    def resumed(self) -> None:
        self._update(lambda s: replace(s, state=SyncState.IDLE, paused_reason=None, paused_by=None))

    def pass_done(self, *, user_paused: bool, skipped: tuple[str, ...]) -> None:
        """A pass ended with nothing refused and no guard: in sync (or paused, when the user paused meanwhile)."""
        self._update(lambda s: replace(s, state=SyncState.PAUSED if user_paused else SyncState.IDLE,
                                       paused_reason=None, paused_by=None, last_sync=time.time(), skipped=skipped))

    def stopped(self, *, user_paused: bool) -> None:
        self._update(lambda s: replace(s, state=SyncState.PAUSED if user_paused else SyncState.IDLE,
                                       current_file=None))

    def health(self, ok: bool, message: str) -> None:
        """The remote's health listener: offline when it fails, syncing again once it answers."""
        if not ok:
            self.offline(message)
        elif self.state is SyncState.OFFLINE:
            self.syncing()

    def note_error(self, message: str) -> None:
        """A problem worth showing that changes no state (a file that could not be read: retried later)."""
        self._update(lambda s: replace(s, last_error=message))

    # ----- transfers -----------------------------------------------------------------------------
    def transfer(self, path: str, done: int, size: int) -> None:
        with self._lock:
            self._current[path] = (done, size)
        self.publish()

    def transfer_ended(self, path: str) -> None:
        with self._lock:
            self._current.pop(path, None)

    def uploaded(self, upload: RecentUpload) -> None:
        with self._lock:
            self.upload_count += 1
            self._recent.append(upload)

    # ----- the status file -----------------------------------------------------------------------
    def publish(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_write < PROGRESS_WRITE_INTERVAL:
            return
        self._last_write = now
        try:
            write_status(self.status_file, self.snapshot())
        except OSError as exc:
            log.debug("cannot write the status file %s: %s", self.status_file, exc)

    def _update(self, change: Callable[[SyncStatus], SyncStatus]) -> None:
        with self._lock:
            self._status = change(self._status)
        self.publish(force=True)
