"""`SyncAgent`: owns the threads (watcher, sync loop, upload workers) and carries out the engine's plans."""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from lockr_local.errors import LockrError, Unauthorized
from lockr_local.sync import engine
from lockr_local.sync.engine import Adopt, DeleteRemote, GuardSettings, LocalFile, Plan, Upload
from lockr_local.sync.ignore import IgnoreRules
from lockr_local.sync.index import SyncIndex, default_state_dir, index_path
from lockr_local.sync.remote import RemoteStore, RemoteUnavailable, ResumeState
from lockr_local.sync.scan import ScanResult, folder_present, scan
from lockr_local.sync.status import RecentUpload, SyncStatus, write_status
from lockr_local.sync.watcher import DirtyPaths, FolderWatcher

log = logging.getLogger("lockr.sync")

# First delay before trying again to start a watcher that could not start (it doubles, up to the scan
# interval): periodic scans cover the folder meanwhile, and each attempt costs a recursive walk.
WATCH_RETRY = 5.0


@dataclass(frozen=True)
class AgentOptions:
    """How the agent behaves; the CLI fills these from the sync_* settings."""

    concurrency: int = 4
    scan_interval: float = 600.0
    debounce: float = 0.5
    settle: float = 1.0
    retry_unreadable: float = 10.0
    max_backoff: float = 60.0
    guard: GuardSettings = field(default_factory=GuardSettings)
    allow_deletions: bool = False
    state_dir: Path | None = None
    watch: bool = True


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


def status_path(state_dir: Path, folder: Path) -> Path:
    """The status file other processes read; keyed by the folder alone so `--status FOLDER` finds it."""
    digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    return state_dir / f"{folder.resolve().name or 'root'}-{digest}.status.json"


class SyncAgent:
    """Mirrors `folder` to `remote`. Thread-safe: start/stop/pause/resume/status from any thread."""

    def __init__(self, folder: Path, remote: RemoteStore, *, endpoint: str, region: str | None = None,
                 options: AgentOptions = AgentOptions()) -> None:
        self.folder = Path(os.path.abspath(folder))
        self.remote = remote
        self.endpoint = endpoint.rstrip("/")
        self.options = options
        state_dir = options.state_dir or default_state_dir()
        self.index = SyncIndex(index_path(state_dir, self.folder, self.endpoint, region),
                               folder=str(self.folder), endpoint=self.endpoint)
        self.status_file = status_path(state_dir, self.folder)
        self.rules = IgnoreRules(self.folder, excluded=_inside(state_dir, self.folder))
        self.dirty = DirtyPaths()
        self.watcher = FolderWatcher(self.folder, self.rules, self.dirty)
        self._lock = threading.RLock()
        self._status = SyncStatus(state="idle", folder=str(self.folder), endpoint=self.endpoint, pid=os.getpid())
        self._recent: collections.deque[RecentUpload] = collections.deque(maxlen=20)
        self._current: dict[str, tuple[int, int]] = {}
        self._deferred: dict[str, float] = {}
        self._unstable: set[str] = set()
        self._refused: list[str] = []
        self._identity: tuple[int, int] | None = None
        self._stop = threading.Event()
        self._paused = False
        self._busy = False
        self._thread: threading.Thread | None = None
        self._last_write = 0.0
        self.upload_count = 0
        self.full_scans = 0
        self._watching = False
        self._watch_retry_at = 0.0
        self._watch_delay = WATCH_RETRY
        if hasattr(remote, "on_health"):
            remote.on_health = self._on_health
        self._pool = ThreadPoolExecutor(max(1, options.concurrency), thread_name_prefix="lockr-upload")

    # ----- control -------------------------------------------------------------------------------
    def start(self) -> "SyncAgent":
        self._stop.clear()
        self._identity = _identity(self.folder)
        if self.options.watch and self._identity is not None:
            self._start_watcher()
        self.dirty.mark_full()
        self._thread = threading.Thread(target=self._run, name="lockr-sync", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops watching and uploading; an upload in flight is abandoned (its session resumes next time)."""
        self._stop.set()
        stop_event = getattr(self.remote, "stop_event", None)
        if stop_event is not None:
            stop_event.set()
        self.dirty.wake()
        self.watcher.stop()
        if self._thread is not None:
            self._thread.join(30)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._set(state="paused" if self._paused else "idle", current_file=None)
        self._publish(force=True)
        self.index.close()

    def pause(self) -> None:
        with self._lock:
            self._paused = True
        self._set(state="paused", paused_reason="paused by the user")

    def resume(self) -> None:
        with self._lock:
            self._paused = False
        self._set(state="idle", paused_reason=None)
        self.dirty.mark_full()

    def rescan(self) -> None:
        self.dirty.mark_full()

    def status(self) -> SyncStatus:
        with self._lock:
            current = next(iter(self._current.items()), None)
            return replace(self._status, queue_length=len(self.dirty) + len(self._deferred),
                           current_file=current[0] if current else None,
                           current_done=current[1][0] if current else 0,
                           current_size=current[1][1] if current else 0,
                           recent_uploads=tuple(reversed(self._recent)), updated=time.time())

    def is_idle(self) -> bool:
        """No pass running, nothing dirty or deferred (for tests and --once)."""
        with self._lock:
            return not self._busy and not self._deferred and len(self.dirty) == 0

    def _on_health(self, ok: bool, message: str) -> None:
        if self._stop.is_set():
            return
        if not ok:
            self._set(state="offline", last_error=message)
        elif self.status().state == "offline":
            self._set(state="syncing")

    def _set(self, **changes: object) -> None:
        with self._lock:
            self._status = replace(self._status, **changes)  # type: ignore[arg-type]
        self._publish(force=True)

    def _publish(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_write < 0.5:
            return
        self._last_write = now
        try:
            write_status(self.status_file, self.status())
        except OSError as exc:
            log.debug("cannot write the status file %s: %s", self.status_file, exc)

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
                self.watcher.stop()
                self._watching = False
                self._watch_retry_at, self._watch_delay = 0.0, WATCH_RETRY
                full = True
            if self.options.watch and identity is not None and not self.watcher.alive:
                if self._watching:
                    # The observer died (an inotify error, a crash in its thread): events since are lost.
                    log.warning("the watcher of %s stopped; rescanning and restarting it", self.folder)
                    self._watching = False
                    full = True
                if now >= self._watch_retry_at and self._start_watcher():
                    full = True  # nothing watched the folder since it stopped (or since the last attempt)
            if not full and not paths and not due:
                wake = [next_full - now, 0.5] + [at - now for at in self._deferred.values()]
                self.dirty.wait(max(0.02, min(wake)))
                continue
            scope = None if full else frozenset(paths | due)
            try:
                result = self.run_pass(scope)
            except RemoteUnavailable as exc:
                if self._stop.is_set():
                    break
                self._set(state="offline", last_error=str(exc))
                log.warning("offline: %s; retrying in %.0fs", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.options.max_backoff)
                self.dirty.mark_full()
                continue
            except Unauthorized as exc:
                self._set(state="error", last_error=exc.message)
                log.error("the endpoint refused the token: %s", exc.message)
                self._stop.wait(self.options.max_backoff)
                self.dirty.mark_full()
                continue
            except (LockrError, OSError) as exc:
                message = exc.message if isinstance(exc, LockrError) else str(exc)
                self._set(state="error", last_error=message)
                log.error("sync pass failed: %s", message)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.options.max_backoff)
                self.dirty.mark_full()
                continue
            except Exception as exc:  # the thread boundary: a bug must not silently end syncing
                log.exception("unexpected failure in a sync pass")
                self._set(state="error", last_error=f"internal error: {exc!r}")
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

    def _start_watcher(self) -> bool:
        """Starts the watcher; after a failure, the next attempt waits longer (up to the scan interval)."""
        self._watching = self.watcher.start()
        if self._watching:
            self._watch_delay = WATCH_RETRY
        else:
            self._watch_retry_at = time.monotonic() + self._watch_delay
            self._watch_delay = min(2 * self._watch_delay, max(WATCH_RETRY, self.options.scan_interval))
        return self._watching

    def run_pass(self, scope: frozenset[str] | None = None, *, execute: bool = True) -> Plan:
        """One reconciliation: scan, list the remote, plan, and (with execute) carry the plan out."""
        with self._lock:
            self._busy = True
            self._refused = []
        try:
            entries = self.index.entries()
            local = scan(self.folder, self.rules, entries, scope=scope, settle=self.options.settle)
            remote = self.remote.list_files() if local.folder_present else []
            plan = engine.plan(local.files, entries, remote, folder_present=local.folder_present, scope=scope,
                               pending_deletes=self.index.pending_deletes(),
                               is_ignored=self.rules.ignores, guard=self.options.guard,
                               allow_deletions=self.options.allow_deletions)
            plan = self._hold_back(plan, local)
            if execute:
                if plan.uploads or plan.deletes:
                    self._set(state="syncing")
                self._execute(plan)
                self._finish(plan, local)
            return plan
        finally:
            with self._lock:
                self._busy = False
            self._publish(force=True)

    def _hold_back(self, plan: Plan, local: ScanResult) -> Plan:
        """Files still being written or unreadable are not uploaded now but looked at again later."""
        waiting = local.unstable | set(local.unreadable)
        if not waiting:
            with self._lock:
                self._unstable = set()
            return plan
        now = time.monotonic()
        with self._lock:
            self._unstable = set(local.unstable)
            for path in local.unstable:
                self._deferred[path] = now + self.options.settle / 2
            for path in local.unreadable:
                self._deferred[path] = now + self.options.retry_unreadable
        plan.uploads = [u for u in plan.uploads if u.path not in waiting]
        plan.adopts = [a for a in plan.adopts if a.path not in waiting]
        for path, reason in local.unreadable.items():
            plan.skips.append(engine.Skip(path, f"cannot be read ({reason}); retrying"))
        return plan

    def _finish(self, plan: Plan, local: ScanResult) -> None:
        skipped = tuple(f"{s.path}: {s.reason}" for s in plan.skips)
        if not local.folder_present or plan.guard is not None:
            assert plan.guard is not None
            log.warning("deletions paused: %s", plan.guard.reason)
            self._set(state="paused", paused_reason=plan.guard.reason, skipped=skipped)
            return
        with self._lock:
            user_paused = self._paused
            refused = list(self._refused)
        if refused:
            self._set(state="error", last_error=refused[-1], skipped=skipped)
        else:
            self._set(state="paused" if user_paused else "idle", paused_reason=None, last_sync=time.time(),
                      skipped=skipped)

    # ----- carrying out a plan -------------------------------------------------------------------
    def _execute(self, plan: Plan) -> None:
        for forget in plan.forgets:
            self.index.forget(forget.path)
        for adopt in plan.adopts:
            self._adopt(adopt)
        errors: list[BaseException] = []
        futures = [self._pool.submit(self._upload, action) for action in plan.uploads]
        futures += [self._pool.submit(self._delete, action) for action in plan.deletes]
        for future in futures:
            exc = future.exception()
            if exc is not None:
                errors.append(exc)
        if errors:
            # Unreachable endpoints and refused tokens end the pass; the loop decides how to wait.
            for exc in errors:
                if isinstance(exc, (RemoteUnavailable, Unauthorized)):
                    raise exc
            raise errors[0]

    def _adopt(self, action: Adopt) -> None:
        local = LocalFile(action.path, action.size, action.mtime_ns, action.sha256)
        self.index.record_synced(local, action.remote_id, action.replaces, forget=action.renamed_from)
        for old_id in action.replaces:
            self._delete(DeleteRemote(action.path, old_id, "replaced"))

    def _delete(self, action: DeleteRemote) -> None:
        if self._stop.is_set():
            return
        self.remote.delete(action.remote_id)
        self.index.delete_done(action.remote_id)
        log.info("deleted remotely: %s (%s)", action.path, action.reason)

    def _upload(self, action: Upload) -> None:
        if self._stop.is_set():
            return
        path = self.folder / action.path
        try:
            before = os.stat(path)
        except OSError:
            self.dirty.mark(action.path)  # gone or replaced since the scan: look again
            return
        if (before.st_size, before.st_mtime_ns) != (action.size, action.mtime_ns):
            self.dirty.mark(action.path)
            return
        local = LocalFile(action.path, action.size, action.mtime_ns, action.sha256)
        resume = ResumeState(action.resume_url, action.resume_offset) if action.resume_url else None

        def on_session(state: ResumeState) -> None:
            self.index.record_session(local, state.session_url, state.offset)

        def progress(done: int) -> None:
            with self._lock:
                self._current[action.path] = (done, action.size)
            self._publish()

        with self._lock:
            self._current[action.path] = (action.resume_offset, action.size)
        try:
            entry = self.remote.upload(path, action.path, action.size, resume=resume, on_session=on_session,
                                       progress=progress)
        except OSError as exc:
            with self._lock:
                self._deferred[action.path] = time.monotonic() + self.options.retry_unreadable
            self._set(last_error=f"{action.path}: {exc.strerror or exc}")
            return
        except LockrError as exc:
            if isinstance(exc, Unauthorized):
                raise
            # Refused for this file only (too large, quota, name): report it, try again on the next full scan.
            with self._lock:
                self._refused.append(f"{action.path}: {exc.message}")
            log.error("upload of %s refused: %s", action.path, exc.message)
            return
        finally:
            with self._lock:
                self._current.pop(action.path, None)
        try:
            after = os.stat(path)
            same = (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
        except OSError:
            same = False
        if not same or (entry.sha256 and entry.sha256 != action.sha256):
            # Changed while uploading: keep what was stored as the current copy, hash again, upload again.
            log.info("%s changed during its upload; uploading it again", action.path)
            torn = LocalFile(action.path, entry.size, -1, entry.sha256)
            self.index.record_synced(torn, entry.id, action.replaces, forget=action.renamed_from)
            self.dirty.mark(action.path)
        else:
            self.index.record_synced(local, entry.id, action.replaces, forget=action.renamed_from)
        with self._lock:
            self.upload_count += 1
            self._recent.append(RecentUpload(action.path, entry.size, entry.id, f"{self.endpoint}/download/{entry.id}",
                                             time.time()))
        log.info("uploaded %s (%s)", action.path, action.reason)
        for old_id in action.replaces:
            self._delete(DeleteRemote(action.path, old_id, "replaced by the new upload"))

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
        self._pool.shutdown(wait=True)
        self.index.close()
