"""The watcher is only a hint: periodic scans, inotify failures, queue overflows and a dead observer.

A real `lockr-local serve` subprocess, a real folder and the real watchdog observer (inotify); each
test ends by comparing the remote listing (names + SHA-256) with the local tree.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from lockr_local.sync.agent import status_path
from lockr_local.sync.status import read_status
from tests.helpers import REPO, ServerProcess, clean_env, create_account, wait_for
from tests.sync.support import Agents, assert_mirrored, write


class SyncProcess:
    """`lockr-local sync FOLDER` as a subprocess (optionally behind a command prefix); stop() returns stderr."""

    def __init__(self, folder: Path, env: dict[str, str], prefix: list[str] | None = None) -> None:
        self.folder = folder
        self.state_dir = Path(env["LOCKR_SYNC_STATE_DIR"])
        self.proc = subprocess.Popen([*(prefix or []), sys.executable, "-m", "lockr_local", "sync", str(folder)],
                                     env=clean_env(**env), cwd=REPO, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)

    def state(self) -> str | None:
        status = read_status(status_path(self.state_dir, self.folder))
        return status.state if status is not None and status.pid == self.proc.pid else None

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # in case a test left it stopped
            self.proc.terminate()
        _, err = self.proc.communicate(timeout=30)
        return err


@pytest.fixture
def sync_processes() -> Iterator[list[SyncProcess]]:
    started: list[SyncProcess] = []
    yield started
    for process in started:
        if process.proc.poll() is None:
            process.stop()


def test_without_inotify_a_change_is_found_by_the_periodic_scan(shared_server: ServerProcess, folder: Path,
                                                                tmp_path: Path,
                                                                sync_processes: list[SyncProcess]) -> None:
    """The agent runs in its own user namespace whose inotify instance limit is 0 (as when a desktop has
    used up fs.inotify.max_user_instances): watchdog cannot start, so only the periodic scan
    (sync_scan_interval 1.5 s here) can see a new file; the agent must neither crash nor spin."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    account = create_account(shared_server.url)
    write(folder / "a.txt", "before the start")
    env = {"LOCKR_ENDPOINT": shared_server.url, "LOCKR_TOKEN": account.token,
           "LOCKR_SYNC_STATE_DIR": str(tmp_path / "state"), "LOCKR_SYNC_SCAN_INTERVAL": "1.5"}
    no_inotify = ["unshare", "--user", "--map-root-user", "sh", "-c",
                  'echo 0 > /proc/sys/user/max_inotify_instances && exec "$@"', "sh"]
    agent = SyncProcess(folder, env, prefix=no_inotify)
    sync_processes.append(agent)
    assert_mirrored(shared_server.url, account, folder, under=folder.name)
    write(folder / "b.txt", "seen by no watcher")
    assert_mirrored(shared_server.url, account, folder, under=folder.name)
    write(folder / "c.txt", "and the next scan too")
    assert_mirrored(shared_server.url, account, folder, under=folder.name)
    assert agent.proc.poll() is None, "the agent exited"
    err = agent.stop()
    assert agent.proc.returncode == 0, err
    assert "inotify instance limit reached" in err and "relying on periodic scans" in err
    # One attempt at the start and few retries (5 s apart, then longer): not one per loop turn.
    assert err.count("cannot watch") <= 2, err


def test_an_inotify_queue_overflow_triggers_a_full_scan(shared_server: ServerProcess, folder: Path, tmp_path: Path,
                                                        sync_processes: list[SyncProcess]) -> None:
    """A real kernel overflow: the agent is frozen (SIGSTOP) while 20,000 events pile up in its inotify queue
    (the kernel keeps 16,384), then a file is created: its events are dropped, only IN_Q_OVERFLOW says
    something was lost. The periodic scan is 10 minutes away, so only the overflow's full scan finds it."""
    account = create_account(shared_server.url)
    write(folder / "a.txt", "a")
    write(folder / "b.txt", "b")
    env = {"LOCKR_ENDPOINT": shared_server.url, "LOCKR_TOKEN": account.token,
           "LOCKR_SYNC_STATE_DIR": str(tmp_path / "state")}
    agent = SyncProcess(folder, env)
    sync_processes.append(agent)
    assert_mirrored(shared_server.url, account, folder, under=folder.name)
    wait_for(lambda: agent.state() == "idle", message="the agent to settle")
    max_queued = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    agent.proc.send_signal(signal.SIGSTOP)
    try:
        for i in range(max_queued + 4000):  # alternating files: the kernel merges only repeats of the last event
            os.utime(folder / ("a.txt" if i % 2 else "b.txt"))
        write(folder / "late.txt", "created after the queue was full")
    finally:
        agent.proc.send_signal(signal.SIGCONT)
    assert_mirrored(shared_server.url, account, folder, under=folder.name)
    err = agent.stop()
    assert "Inotify queue overflowed" in err


def test_a_dead_observer_is_restarted_after_a_full_scan(shared_server: ServerProcess, folder: Path,
                                                        agents: Agents) -> None:
    """The observer thread is stopped from outside, as if it had crashed (a crash point): the agent notices,
    rescans everything (what changed meanwhile had no events) and watches again."""
    url, account = shared_server.url, create_account(shared_server.url)
    write(folder / "a.txt", "a")
    agent = agents.start(folder, url, account)  # scan_interval 30 s: no periodic scan during the test
    assert_mirrored(url, account, folder)
    wait_for(agent.is_idle, message="the first pass")
    scans = agent.full_scans
    dead = agent.watcher._observer
    assert dead is not None
    dead.stop()
    dead.join(5)
    write(folder / "while-dead.txt", "no observer saw this")
    assert_mirrored(url, account, folder)
    wait_for(lambda: agent.full_scans > scans, message="a full scan after the death")
    assert agent.watcher.alive and agent.watcher._observer is not dead
    scans = agent.full_scans
    write(folder / "after.txt", "seen by the new observer")
    assert_mirrored(url, account, folder)
    assert agent.full_scans == scans  # found through its events, not another full scan
