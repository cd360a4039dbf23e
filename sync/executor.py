"""`PlanExecutor`: carries out the engine's plans: index bookkeeping, uploads and remote deletions on a pool
of upload threads (`concurrency` in flight, each on a kept-alive connection of the client), each upload
checked against the file as it is once the bytes are stored.

Order: adoptions and forgets first, then every upload, then the deletions, once no upload is left in flight
(a rename or a changed file is never missing remotely, even if the agent stops half way). The lockr API has
no folders to create: a file's name carries its path. A paused or stopping agent starts nothing new; what is
in flight ends (small files complete; a session upload stopped by `stop()` resumes next time)."""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from lockr_local.errors import LockrError, Unauthorized
from lockr_local.sync.engine import Adopt, DeleteRemote, LocalFile, Plan, Upload
from lockr_local.sync.index import SyncIndex
from lockr_local.sync.remote import RemoteStore, RemoteUnavailable, ResumeState
from lockr_local.sync.reporter import StatusReporter
from lockr_local.sync.status import RecentUpload
from lockr_local.sync.watcher import DirtyPaths

log = logging.getLogger("lockr.sync")


def make_durable(root: Path, rel: str) -> None:
    """fsyncs the file `rel` and every folder from its own up to `root`, so its content and its name are on
    the disk before the agent uploads it and records it as synced: after a power cut the index must not
    say "synced" for a file the disk no longer has, or the next pass takes the file for deleted and deletes
    the remote copy, then the only one left."""
    if os.name == "nt":  # Windows flushes only through a handle opened for writing; NTFS journals names
        return
    fd = os.open(root / rel, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    parts = rel.split("/")[:-1]
    for depth in range(len(parts), -1, -1):
        _fsync_folder(root.joinpath(*parts[:depth]))


def make_deletion_durable(root: Path, rel: str) -> None:
    """fsyncs the nearest folder that still holds the vanished `rel`, so the local deletion the agent is about
    to mirror cannot be undone by a power cut (the file would come back and be uploaded again)."""
    if os.name == "nt":
        return
    parts = rel.split("/")[:-1]
    for depth in range(len(parts), -1, -1):
        try:
            _fsync_folder(root.joinpath(*parts[:depth]))
            return
        except FileNotFoundError:
            continue


def _fsync_folder(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PlanExecutor:
    """Owns the upload threads. `run(plan)` blocks until the plan is carried out and returns the files the
    endpoint refused (this file only: too large, over quota); an unreachable endpoint or a refused token
    raises, ending the pass."""

    def __init__(self, folder: Path, remote: RemoteStore, index: SyncIndex, reporter: StatusReporter,
                 dirty: DirtyPaths, *, concurrency: int, stopping: threading.Event,
                 retry_later: Callable[[str], None], paused: Callable[[], bool] = lambda: False) -> None:
        self.folder = folder
        self.remote = remote
        self.index = index
        self.reporter = reporter
        self.dirty = dirty
        self._stopping = stopping
        self._paused = paused  # the user paused: nothing new starts (resuming rescans the folder)
        self._retry_later = retry_later  # a file that could not be read: looked at again after a while
        self._lock = threading.Lock()
        self._refused: list[str] = []
        self._pool = ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="lockr-upload")

    def run(self, plan: Plan) -> list[str]:
        with self._lock:
            self._refused = []
        for forget in plan.forgets:
            self.index.forget(forget.path)
        for adopt in plan.adopts:
            self._adopt(adopt)
        errors = self._run_all(self._upload, plan.uploads)
        if not errors:
            errors = self._run_all(self._delete, plan.deletes)
        if errors:
            # Unreachable endpoints and refused tokens end the pass; the loop decides how to wait.
            for exc in errors:
                if isinstance(exc, (RemoteUnavailable, Unauthorized)):
                    raise exc
            raise errors[0]
        with self._lock:
            return list(self._refused)

    def _run_all(self, step: Callable[[Any], None], actions: list[Any]) -> list[BaseException]:
        """Runs `step` on every action, `concurrency` at a time; waits for them all and returns what they
        raised. One file's failure does not stop the others, but an unreachable endpoint or a refused token
        does: every action not yet started would meet the same after its retries (forty files behind a dead
        server took minutes, showing "syncing" between them), so they are left for the next pass."""
        ended = threading.Event()

        def run(action: Any) -> None:
            if ended.is_set():
                return
            try:
                step(action)
            except (RemoteUnavailable, Unauthorized):
                ended.set()
                raise

        futures = [self._pool.submit(run, action) for action in actions]
        return [exc for exc in (future.exception() for future in futures) if exc is not None]

    def _holding(self) -> bool:
        return self._stopping.is_set() or self._paused()

    def shutdown(self, cancel: bool = False) -> None:
        self._pool.shutdown(wait=True, cancel_futures=cancel)

    def _adopt(self, action: Adopt) -> None:
        local = LocalFile(action.path, action.size, action.mtime_ns, action.sha256)
        try:
            make_durable(self.folder, action.path)
        except OSError:
            self.dirty.mark(action.path)  # gone or unreadable since the scan: look again
            return
        self.index.record_synced(local, action.remote_id, action.replaces, forget=action.renamed_from)
        for old_id in action.replaces:
            self._delete(DeleteRemote(action.path, old_id, "replaced"))

    def _delete(self, action: DeleteRemote) -> None:
        if self._holding():
            return
        if not os.path.lexists(self.folder / action.path):
            make_deletion_durable(self.folder, action.path)
        self.remote.delete(action.remote_id)
        self.index.delete_done(action.remote_id)
        log.info("deleted remotely: %s (%s)", action.path, action.reason)

    def _upload(self, action: Upload) -> None:
        if self._holding():
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
        try:
            make_durable(self.folder, action.path)
        except OSError:
            self.dirty.mark(action.path)
            return
        local = LocalFile(action.path, action.size, action.mtime_ns, action.sha256)
        resume = ResumeState(action.resume_url, action.resume_offset) if action.resume_url else None

        def on_session(state: ResumeState) -> None:
            self.index.record_session(local, state.session_url, state.offset)

        def progress(done: int) -> None:
            self.reporter.transfer(action.path, done, action.size)

        self.reporter.transfer(action.path, action.resume_offset, action.size)
        try:
            entry = self.remote.upload(path, action.name, action.size, resume=resume, on_session=on_session,
                                       progress=progress)
        except OSError as exc:
            self._retry_later(action.path)
            self.reporter.note_error(f"{action.path}: {exc.strerror or exc}")
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
            self.reporter.transfer_ended(action.path)
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
        # The link as the endpoint gives it: another lockr endpoint may lay its URLs out differently.
        self.reporter.uploaded(RecentUpload(action.path, entry.size, entry.id, entry.download_url, time.time()))
        log.info("uploaded %s (%s)", action.path, action.reason)
        for old_id in action.replaces:
            self._delete(DeleteRemote(action.path, old_id, "replaced by the new upload"))
