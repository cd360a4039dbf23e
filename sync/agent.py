"""`SyncAgent`: owns the threads (the watcher, the sync loop) and runs passes: scan, list, plan, execute.

What it delegates: planning to the pure `engine`, carrying plans out (the upload threads) to
`executor.PlanExecutor`, its status to `reporter.StatusReporter`, the endpoint to a `remote.RemoteStore`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from lockr_local.errors import LockrError, Unauthorized
from lockr_local.sync import engine
from lockr_local.sync.engine import Plan
from lockr_local.sync.executor import PlanExecutor
from lockr_local.sync.folders import REMOTE_FOLDER_KEY, check_overlap, resolve_remote_folder
from lockr_local.sync.ignore import IgnoreRules
from lockr_local.sync.index import SyncIndex, default_state_dir, index_path
from lockr_local.sync.options import AgentOptions, agent_options
from lockr_local.sync.remote import RemoteStore, RemoteUnavailable, Throttle, make_remote
from lockr_local.sync.reporter import StatusReporter, status_path
from lockr_local.sync.scan import ScanResult, folder_present, scan
from lockr_local.sync.status import PauseCause, SyncStatus
from lockr_local.sync.watcher import DirtyPaths, FolderWatcher, KeptWatcher

if TYPE_CHECKING:
    from lockr_local.config import Settings

__all__ = ["AgentOptions", "SyncAgent", "status_path"]

log = logging.getLogger("lockr.sync")

USER_PAUSE = "paused by the user"


def _identity(folder: Path) -> tuple[int, int] | None:
    """(device, inode) of the folder, or None when it is not there: a change means it was swapped out."""
    if not folder_present(folder):
        return None
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _inside(state_dir: Path, folder: Path) -> tuple[str, ...]:
    """The state folder's path relative to the synced folder when it lies inside it (a synced home
    folder holds ~/.local/state), so the agent never syncs its own ever-changing database."""
    try:
        rel = state_dir.resolve().relative_to(folder.resolve())
    except ValueError:
        return ()
    return (rel.as_posix(),) if rel.parts else ()


class SyncAgent:
    """Mirrors `folder` to `remote`. Thread-safe: start/stop/pause/resume/status from any thread."""

    def __init__(self, folder: Path, remote: RemoteStore, *, endpoint: str, region: str | None = None,
                 options: AgentOptions = AgentOptions(), remote_folder: str | None = "") -> None:
        """`remote_folder`: where the folder's files go on the remote ("" = the top level); None = the one
        this folder's index recorded, else the folder's own name for a folder synced for the first time,
        else the top level (an index from before remote folders: its files stay where they are)."""
        self.folder = Path(os.path.abspath(folder))
        self.remote = remote
        self.endpoint = endpoint.rstrip("/")
        self.options = options
        state_dir = options.state_dir or default_state_dir()
        database = index_path(state_dir, self.folder, self.endpoint, region)
        self.remote_folder = resolve_remote_folder(database, self.folder, remote_folder)
        self.index = SyncIndex(database, folder=str(self.folder), endpoint=self.endpoint)
        self.index.set_meta(REMOTE_FOLDER_KEY, self.remote_folder)
        self.rules = IgnoreRules(self.folder, excluded=_inside(state_dir, self.folder))
        self.dirty = DirtyPaths()
        self.watcher = FolderWatcher(self.folder, self.rules, self.dirty)
        self.reporter = StatusReporter(status_path(state_dir, self.folder), folder=str(self.folder),
                                       endpoint=self.endpoint, queue_length=self._queue_length)
        self._lock = threading.RLock()
        # Paths scanned while not ready (still being written, unreadable) -> when to look at them again.
        self._deferred: dict[str, float] = {}
        self._unstable: set[str] = set()
        self._identity: tuple[int, int] | None = None
        self._stop = threading.Event()
        self._paused = False
        self._busy = False
        self._thread: threading.Thread | None = None
        self.full_scans = 0
        self._kept_watcher = KeptWatcher(self.watcher, options.scan_interval)
        self.executor = PlanExecutor(self.folder, remote, self.index, self.reporter, self.dirty,
                                     concurrency=options.concurrency, stopping=self._stop,
                                     retry_later=self._retry_unreadable, paused=lambda: self._paused)
        remote.watch_health(self._on_health)

    @classmethod
    def from_settings(cls, folder: Path, endpoint: str, token: str | None, settings: "Settings", *,
                      region: str | None = None, allow_deletions: bool = False, once: bool = False,
                      remote_folder: str | None = None) -> "SyncAgent":
        """The agent the sync_* settings describe, over `LockrClient` (the CLI's and the tray's). The remote
        folder defaults as in __init__ (None); one that overlaps another folder synced from this machine
        is refused with FolderOverlap before anything is recorded."""
        options = agent_options(settings, allow_deletions=allow_deletions, once=once)
        state_dir = options.state_dir or default_state_dir()
        absolute = Path(os.path.abspath(folder))
        remote_folder = resolve_remote_folder(index_path(state_dir, absolute, endpoint.rstrip("/"), region),
                                              absolute, remote_folder)
        check_overlap(state_dir, absolute, endpoint, remote_folder)
        remote = make_remote(endpoint, token, region=region, throttle=Throttle(settings.sync_bandwidth_limit),
                             small_file_max=settings.small_file_max, concurrency=settings.sync_concurrency)
        return cls(folder, remote, endpoint=endpoint, region=region, options=options, remote_folder=remote_folder)

    # ----- control -------------------------------------------------------------------------------
    def start(self) -> "SyncAgent":
        self._stop.clear()
        self._identity = _identity(self.folder)
        if self.options.watch and self._identity is not None:
            self._kept_watcher.start()
        self.dirty.mark_full()
        self._thread = threading.Thread(target=self._run, name="lockr-sync", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops watching and uploading: nothing new starts, small files in flight complete, and a session upload
        in flight is abandoned (it resumes next time); returns once no upload is left running."""
        self._stop.set()
        self.remote.cancel()
        self.dirty.wake()
        self.watcher.stop()
        if self._thread is not None:
            self._thread.join(30)
        self.executor.shutdown(cancel=True)
        self.reporter.stopped(user_paused=self._paused)
        self.index.close()

    def pause(self) -> None:
        """Nothing new starts (the rest of a pass is left for `resume`, which rescans); uploads in flight end."""
        with self._lock:
            self._paused = True
        self.reporter.paused(USER_PAUSE, PauseCause.USER)

    def resume(self) -> None:
        with self._lock:
            self._paused = False
        self.reporter.resumed()
        self.dirty.mark_full()

    def rescan(self) -> None:
        self.dirty.mark_full()

    def status(self) -> SyncStatus:
        return self.reporter.snapshot()

    @property
    def upload_count(self) -> int:
        return self.reporter.upload_count

    def is_idle(self) -> bool:
        """No pass running, nothing dirty or deferred (for tests and --once)."""
        with self._lock:
            return not self._busy and not self._deferred and len(self.dirty) == 0

    def _queue_length(self) -> int:
        with self._lock:
            return len(self.dirty) + len(self._deferred)

    def _on_health(self, ok: bool, message: str) -> None:
        if not self._stop.is_set():
            self.reporter.health(ok, message)

    def _retry_unreadable(self, path: str) -> None:
        with self._lock:
            self._deferred[path] = time.monotonic() + self.options.retry_unreadable

    # ----- the loop ------------------------------------------------------------------------------
    def _run(self) -> None:
        next_full = time.monotonic() + self.options.scan_interval
        backoff = 1.0
        while not self._stop.is_set():
            if self._paused:
                self.dirty.wait(0.5)
                continue
            now = time.monotonic()
            full, paths = self.dirty.take(self.options.debounce)
            with self._lock:
                due = {p for p, at in self._deferred.items() if at <= now}
                for path in due:
                    del self._deferred[path]
            if now >= next_full:
                full = True
            identity = _identity(self.folder)
            if identity != self._identity:
                # Removed, unmounted, replaced or back: the watcher (if any) watches the wrong thing now.
                log.info("the folder %s changed identity (%s -> %s)", self.folder, self._identity, identity)
                self._identity = identity
                self._kept_watcher.reset()
                full = True
            if self.options.watch and identity is not None and self._kept_watcher.missed_events(now):
                full = True
            if not full and not paths and not due:
                with self._lock:
                    wake = [next_full - now, 0.5] + [at - now for at in self._deferred.values()]
                self.dirty.wait(max(0.02, min(wake)))
                continue
            scope = None if full else frozenset(paths | due)
            try:
                result = self.run_pass(scope)
            except RemoteUnavailable as exc:
                if self._stop.is_set():
                    break
                self.reporter.offline(str(exc))
                log.warning("offline: %s; retrying in %.0fs", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.options.max_backoff)
                self.dirty.mark_full()
                continue
            except Unauthorized as exc:
                self.reporter.failed(exc.message)
                log.error("the endpoint refused the token: %s", exc.message)
                self._stop.wait(self.options.max_backoff)
                self.dirty.mark_full()
                continue
            except (LockrError, OSError) as exc:
                message = exc.message if isinstance(exc, LockrError) else str(exc)
                self.reporter.failed(message)
                log.error("sync pass failed: %s", message)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.options.max_backoff)
                self.dirty.mark_full()
                continue
            except Exception as exc:  # the thread boundary: a bug must not silently end syncing
                log.exception("unexpected failure in a sync pass")
                self.reporter.failed(f"internal error: {exc!r}")
                self._stop.wait(self.options.max_backoff)
                self.dirty.mark_full()
                continue
            backoff = 1.0
            if scope is None:
                self.full_scans += 1
                next_full = time.monotonic() + self.options.scan_interval
            if result.guard is not None:
                # Re-check soon: the drive may come back, or the user may confirm.
                next_full = min(next_full, time.monotonic() + 2.0)

    def run_pass(self, scope: frozenset[str] | None = None, *, execute: bool = True) -> Plan:
        """One reconciliation: scan, list the remote, plan, and (with execute) carry the plan out."""
        with self._lock:
            self._busy = True
        try:
            entries = self.index.entries()
            local = scan(self.folder, self.rules, entries, scope=scope, settle=self.options.settle)
            remote = self.remote.list_files() if local.folder_present else []
            self._defer_not_ready(local)
            plan = engine.plan(local.files, entries, remote, folder_present=local.folder_present, scope=scope,
                               remote_folder=self.remote_folder,
                               pending_deletes=self.index.pending_deletes(),
                               is_ignored=self.rules.ignores, guard=self.options.guard,
                               allow_deletions=self.options.allow_deletions,
                               unstable=local.unstable, unreadable=local.unreadable)
            if execute:
                if plan.uploads or plan.deletes:
                    self.reporter.syncing()
                refused = self.executor.run(plan)
                self._finish(plan, local, refused)
            return plan
        finally:
            with self._lock:
                self._busy = False
            self.reporter.publish(force=True)

    def _defer_not_ready(self, local: ScanResult) -> None:
        """Files still being written are looked at again once they may have settled, unreadable ones later."""
        now = time.monotonic()
        with self._lock:
            self._unstable = set(local.unstable)
            for path in local.unstable:
                self._deferred[path] = now + self.options.settle / 2
            for path in local.unreadable:
                self._deferred[path] = now + self.options.retry_unreadable

    def _finish(self, plan: Plan, local: ScanResult, refused: list[str]) -> None:
        skipped = tuple(f"{s.path}: {s.reason}" for s in plan.skips)
        if not local.folder_present or plan.guard is not None:
            assert plan.guard is not None
            log.warning("deletions paused: %s", plan.guard.reason)
            self.reporter.paused(plan.guard.reason, PauseCause.GUARD, skipped)
        elif refused:
            self.reporter.failed(refused[-1], skipped)
        else:
            with self._lock:
                user_paused = self._paused
            self.reporter.pass_done(user_paused=user_paused, skipped=skipped)

    # ----- one-shot use --------------------------------------------------------------------------
    def reconcile(self, timeout: float = 600.0) -> Plan:
        """`--once`: passes until nothing is left to do (waiting for files still being written), then a
        final check that plans nothing; returns that check's plan."""
        deadline = time.monotonic() + timeout
        self.run_pass(None)
        while time.monotonic() < deadline and not self._stop.is_set():
            with self._lock:
                waiting = bool(self._unstable)
                self._deferred.clear()
            full, paths = self.dirty.take(0.0)
            if not waiting and not full and not paths:
                break
            self._stop.wait(self.options.settle / 2)
            self.run_pass(None)
        return self.run_pass(None, execute=False)

    def close(self) -> None:
        self.executor.shutdown()
        self.index.close()
