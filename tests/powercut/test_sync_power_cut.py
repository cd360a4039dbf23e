"""The sync agent under power cuts: its state folder and the synced folder on forgetfs, a real server on the
normal disk. The short mode of the sync power-cut harness, and deterministic replays of what it is for."""

from __future__ import annotations

import hashlib
import os
import random
import time
from pathlib import Path

import pytest

from tests.helpers import ServerProcess, create_account
from tests.powercut.forgetfs import MODES
from tests.powercut.mount import PowerCutMount, fuse_missing
from tests.powercut.sync_harness import SyncCutConfig, SyncPowerCutHarness, fsync_dir
from tests.sync.support import remote_tree, run_cli


def durable_write(path: Path, data: bytes) -> None:
    """What an application that saves properly does: the bytes and the name on the disk."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    fsync_dir(path.parent)


def settled(path: Path) -> None:
    """An mtime in the past: the agent does not wait for the file to settle."""
    past = time.time() - 10
    os.utime(path, (past, past))


@pytest.fixture
def synced(power_mount: PowerCutMount, tmp_path: Path):
    """A server on the normal disk, and a synced folder and the agent's state folder on forgetfs, both
    made durable (they existed long before: their creation is not what is tested)."""
    server = ServerProcess(tmp_path / "server").start()
    try:
        account = create_account(server.url, "syncer")
        folder = power_mount.mountpoint / "folder"
        folder.mkdir()
        (power_mount.mountpoint / "state").mkdir()
        fsync_dir(power_mount.mountpoint)
        durable_write(folder / "keep.txt", b"an older file, long on the disk")
        settled(folder / "keep.txt")
        env = {"LOCKR_ENDPOINT": server.url, "LOCKR_TOKEN": account.token,
               "LOCKR_SYNC_STATE_DIR": str(power_mount.mountpoint / "state")}
        yield server, account, folder, env
    finally:
        server.kill()


def sync_once(folder: Path, env: dict[str, str]) -> None:
    # At the top level (--remote-folder /), so that remote names are the folder's own paths.
    done = run_cli("sync", str(folder), "--once", "--remote-folder", "/", env=env)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("mode", MODES)
def test_sync_keeps_the_remote_copy_of_a_new_file_through_a_power_cut(synced, power_mount, mode):
    """A new file its program never fsynced is uploaded, the agent stops cleanly (its index is on the
    disk), the power goes: the remote copy must stay. Before the fix the disk lost the file, the index
    still said "synced", and the next pass deleted the remote copy, the only one left."""
    server, account, folder, env = synced
    data = b"written, never fsynced by its program"
    (folder / "new.txt").write_bytes(data)
    settled(folder / "new.txt")
    sync_once(folder, env)
    expected = {"keep.txt": hashlib.sha256(b"an older file, long on the disk").hexdigest(),
                "new.txt": hashlib.sha256(data).hexdigest()}
    assert remote_tree(server.url, account) == expected
    power_mount.cut(mode, seed=3)
    sync_once(folder, env)
    assert remote_tree(server.url, account) == expected
    assert (folder / "new.txt").read_bytes() == data  # made durable before it was uploaded


def test_sync_mirrors_only_a_durable_local_deletion(synced, power_mount):
    """A file deleted locally (the unlink not yet on the disk) is deleted remotely; the power goes: the
    deletion must hold locally, or the file comes back and is uploaded again."""
    server, account, folder, env = synced
    durable_write(folder / "gone.txt", b"deleted soon")
    settled(folder / "gone.txt")
    sync_once(folder, env)
    (folder / "gone.txt").unlink()
    sync_once(folder, env)
    assert sorted(remote_tree(server.url, account)) == ["keep.txt"]
    power_mount.cut("drop", seed=3)
    assert not (folder / "gone.txt").exists()
    sync_once(folder, env)
    assert sorted(remote_tree(server.url, account)) == ["keep.txt"]


def test_sync_agent_never_deletes_or_resends_through_kills_and_power_cuts(tmp_path):
    """The short mode of the harness: rounds of user changes, the agent SIGKILLed mid-sync and the power
    cut in each fault mode in turn, then a restart checked (tests/powercut/sync_harness.py)."""
    reason = fuse_missing()
    if reason:
        pytest.skip(reason)
    seed = int(os.environ.get("LOCKR_SOAK_SEED") or random.SystemRandom().randrange(2**32))
    harness = SyncPowerCutHarness(SyncCutConfig(tmp_path, seed, rounds=2 * len(MODES)))
    figures = harness.run()
    log = (tmp_path / "agent.log").read_text()[-3000:]
    assert harness.failures == [], f"seed {seed}: {harness.failures}\n{log}"
    assert figures.cuts == {mode: 2 for mode in MODES}
    assert figures.remote_files_checked > 0 and figures.adopted_or_resumed > 0
