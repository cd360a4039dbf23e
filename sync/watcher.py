"""Watchdog events -> a debounced set of dirty paths (a hint only: the scan decides what changed).

Overflows (the kernel's inotify queue, or more dirty paths than we keep) and observer failures turn
into a request for a full scan, so a lost event can delay a change but never lose it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from lockr_local.sync.ignore import IGNORE_FILE, IgnoreRules
from lockr_local.sync.scan import relative

log = logging.getLogger("lockr.sync.watcher")

# First delay before trying again to start a watcher that could not start (it doubles, up to the scan
# interval): periodic scans cover the folder meanwhile, and each attempt costs a recursive walk.
WATCH_RETRY = 5.0


class DirtyPaths:
    """Thread-safe: paths marked by events with the time of their last event, plus a full-scan flag."""

    def __init__(self, max_paths: int = 20000, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_paths = max_paths
        self._clock = clock
        self._paths: dict[str, float] = {}
        self._full_since: float | None = None
        self._cond = threading.Condition()

    def mark(self, path: str) -> None:
        with self._cond:
            if self._full_since is None:
                self._paths[path] = self._clock()
                if len(self._paths) > self.max_paths:
                    log.info("more than %d changed paths pending; switching to a full scan", self.max_paths)
                    self._full_since = self._clock()
                    self._paths.clear()
            else:
                # During an event storm, keep pushing the full scan back until things are quiet.
                self._full_since = self._clock()
            self._cond.notify_all()

    def mark_full(self, debounce: bool = False) -> None:
        with self._cond:
            self._full_since = self._clock() if debounce else float("-inf")
            self._paths.clear()
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._paths) + (1 if self._full_since is not None else 0)

    def take(self, quiet: float) -> tuple[bool, frozenset[str]]:
        """(full scan wanted, paths quiet for `quiet` seconds); both are removed from the set."""
        with self._cond:
            now = self._clock()
            if self._full_since is not None and now - self._full_since >= quiet:
                self._full_since = None
                self._paths.clear()
                return True, frozenset()
            ready = frozenset(p for p, stamp in self._paths.items() if now - stamp >= quiet)
            for path in ready:
                del self._paths[path]
            return False, ready

    def wait(self, timeout: float) -> None:
        """Sleeps until something is marked or `timeout` passes."""
        with self._cond:
            self._cond.wait(timeout)

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: "FolderWatcher") -> None:
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        if event.is_directory and event.event_type == "modified":
            return  # a folder's own mtime; its children report their changes themselves
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if raw:
                self.watcher.mark(os.fsdecode(raw))


class _OverflowLog(logging.Handler):
    """watchdog only logs inotify queue overflows; we listen for that log line and rescan."""

    def __init__(self, dirty: DirtyPaths) -> None:
        super().__init__(logging.WARNING)
        self.dirty = dirty

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.dirty.mark_full(debounce=True)


class FolderWatcher:
    """Runs a watchdog observer on the folder and feeds a DirtyPaths."""

    def __init__(self, root: Path, rules: IgnoreRules, dirty: DirtyPaths) -> None:
        self.root = root
        self.rules = rules
        self.dirty = dirty
        self._observer: BaseObserver | None = None
        self._overflow_log = _OverflowLog(dirty)

    def mark(self, absolute: str) -> None:
        rel = relative(self.root, absolute)
        if rel is None:
            return
        if rel == "":
            self.dirty.mark_full(debounce=True)  # the folder itself moved or vanished
            return
        if rel == IGNORE_FILE:
            self.dirty.mark_full(debounce=True)  # new rules may un-ignore anything
            return
        if self.rules.ignores(rel):
            return
        self.dirty.mark(rel)

    def start(self) -> bool:
        """Starts watching; False when the folder cannot be watched (inotify instance or watch limits, a
        vanished folder): the agent then relies on its periodic scans and tries again later."""
        self.stop()
        logging.getLogger("watchdog").addHandler(self._overflow_log)
        observer: BaseObserver | None = None
        try:
            # watchdog's inotify observer opens its inotify instance in the constructor: EMFILE comes from here.
            observer = Observer()
            observer.name = "lockr-watch"
            observer.daemon = True
            observer.schedule(_Handler(self), str(self.root), recursive=True)
            observer.start()
        except OSError as exc:
            log.warning("cannot watch %s (%s); relying on periodic scans", self.root, exc)
            logging.getLogger("watchdog").removeHandler(self._overflow_log)
            if observer is not None:
                _discard(observer)  # or every retry would leak an inotify instance and its thread
            return False
        self._observer = observer
        return True

    @property
    def alive(self) -> bool:
        return self._observer is not None and self._observer.is_alive()

    def stop(self) -> None:
        logging.getLogger("watchdog").removeHandler(self._overflow_log)
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(5)
            self._observer = None


class KeptWatcher:
    """Keeps a FolderWatcher running for the sync loop: restarts one that died, and retries one that could
    not start after a delay that doubles (up to `max_delay`). Not thread-safe: the loop alone calls it."""

    def __init__(self, watcher: FolderWatcher, max_delay: float) -> None:
        self.watcher = watcher
        self.max_delay = max(WATCH_RETRY, max_delay)
        self._watching = False
        self._retry_at = 0.0
        self._delay = WATCH_RETRY

    def start(self) -> bool:
        """Starts the watcher; after a failure, the next attempt waits longer."""
        self._watching = self.watcher.start()
        if self._watching:
            self._delay = WATCH_RETRY
        else:
            self._retry_at = time.monotonic() + self._delay
            self._delay = min(2 * self._delay, self.max_delay)
        return self._watching

    def reset(self) -> None:
        """The folder was swapped out (removed, unmounted, replaced, back): the watcher watches the wrong thing."""
        self.watcher.stop()
        self._watching = False
        self._retry_at, self._delay = 0.0, WATCH_RETRY

    def missed_events(self, now: float) -> bool:
        """Restarts a dead watcher when due; True when events may have been lost (a full scan is needed)."""
        if self.watcher.alive:
            return False
        missed = False
        if self._watching:
            # The observer died (an inotify error, a crash in its thread): events since are lost.
            log.warning("the watcher of %s stopped; rescanning and restarting it", self.watcher.root)
            self._watching = False
            missed = True
        if now >= self._retry_at and self.start():
            missed = True  # nothing watched the folder since it stopped (or since the last attempt)
        return missed


def _discard(observer: BaseObserver) -> None:
    """Releases what a half-started observer holds (its inotify instance and reader thread)."""
    try:
        observer.stop()
        if observer.is_alive():
            observer.join(5)
    except (OSError, RuntimeError) as exc:
        log.debug("discarding a failed observer: %s", exc)
