"""forgetfs keeps exactly what was made durable: fsynced bytes and fsynced directory entries survive a power
cut, the rest is lost as each fault mode says; SQLite (WAL, synchronous=FULL) runs on it unchanged."""

from __future__ import annotations

import mmap
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.powercut.forgetfs import MODES, PAGE
from tests.powercut.mount import PowerCutMount


def write_file(path: Path, data: bytes, sync: bool = True) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def durable_file(mount: PowerCutMount, name: str, data: bytes) -> Path:
    path = mount.mountpoint / name
    write_file(path, data)
    sync_dir(path.parent)
    return path


@pytest.mark.parametrize("mode", MODES)
def test_fsynced_file_in_fsynced_directory_survives_every_fault_mode(power_mount, mode):
    path = durable_file(power_mount, "kept.bin", b"durable bytes")
    power_mount.cut(mode, seed=1)
    assert path.read_bytes() == b"durable bytes"


def test_write_without_fsync_is_lost_in_a_cut(power_mount):
    path = durable_file(power_mount, "file.bin", b"old")
    write_file(path, b"new and longer", sync=False)
    assert path.read_bytes() == b"new and longer"
    report = power_mount.cut("drop")
    assert path.read_bytes() == b"old"
    assert report["pending_writes"] >= 1 and report["kept_writes"] == 0


def test_fdatasync_makes_a_write_durable(power_mount):
    path = durable_file(power_mount, "file.bin", b"old")
    fd = os.open(path, os.O_WRONLY)
    os.pwrite(fd, b"NEW", 0)
    os.fdatasync(fd)
    os.pwrite(fd, b"!", 3)  # after the sync: lost
    os.close(fd)
    power_mount.cut("drop")
    assert path.read_bytes() == b"NEW"


def test_new_file_fsynced_without_its_directory_is_gone_after_a_cut(power_mount):
    write_file(power_mount.mountpoint / "orphan.bin", b"synced bytes, unsynced name")
    power_mount.cut("drop")
    assert not (power_mount.mountpoint / "orphan.bin").exists()


def test_new_directory_needs_its_parent_synced(power_mount):
    root = power_mount.mountpoint
    (root / "a" / "b").mkdir(parents=True)
    write_file(root / "a" / "b" / "f", b"x")
    sync_dir(root / "a" / "b")
    sync_dir(root / "a")  # the root is never synced: a/ is lost, and everything under it
    power_mount.cut("drop")
    assert os.listdir(root) == []


def test_rename_without_directory_fsync_leaves_the_old_name(power_mount):
    old = durable_file(power_mount, "old.bin", b"payload")
    os.rename(old, power_mount.mountpoint / "new.bin")
    power_mount.cut("drop")
    assert sorted(os.listdir(power_mount.mountpoint)) == ["old.bin"]
    assert old.read_bytes() == b"payload"


def test_rename_across_directories_is_committed_whole_by_the_target_fsync(power_mount):
    root = power_mount.mountpoint
    for name in ("tmp", "objects"):
        (root / name).mkdir()
    sync_dir(root)
    write_file(root / "tmp" / "x", b"blob")  # created in tmp/, which is never synced
    os.replace(root / "tmp" / "x", root / "objects" / "x")
    sync_dir(root / "objects")
    power_mount.cut("drop")
    assert (root / "objects" / "x").read_bytes() == b"blob"
    assert os.listdir(root / "tmp") == []


def test_unlink_without_directory_fsync_comes_back(power_mount):
    path = durable_file(power_mount, "doomed.bin", b"still here")
    path.unlink()
    power_mount.cut("drop")
    assert path.read_bytes() == b"still here"


def test_hard_link_names_share_the_bytes_and_their_durability(power_mount):
    first = durable_file(power_mount, "first", b"shared")
    second = power_mount.mountpoint / "second"
    os.link(first, second)
    sync_dir(power_mount.mountpoint)
    first.unlink()  # not synced: comes back
    assert not first.exists()
    power_mount.cut("drop")
    assert first.read_bytes() == second.read_bytes() == b"shared"
    assert os.stat(first).st_ino == os.stat(second).st_ino and os.stat(first).st_nlink == 2


def test_unlinked_open_file_keeps_working_until_closed(power_mount):
    path = durable_file(power_mount, "open.bin", b"abc")
    fd = os.open(path, os.O_RDWR)
    try:
        path.unlink()
        os.pwrite(fd, b"defg", 3)
        os.ftruncate(fd, 5)
        os.fsync(fd)
        assert os.pread(fd, 10, 0) == b"abcde"
    finally:
        os.close(fd)


def test_mmap_writes_flushed_with_msync_survive_a_cut(power_mount):
    path = durable_file(power_mount, "mapped.bin", bytes(2 * PAGE))
    with path.open("r+b") as handle, mmap.mmap(handle.fileno(), 2 * PAGE) as mapped:
        mapped[PAGE:PAGE + 5] = b"hello"
        mapped.flush()  # msync(MS_SYNC): the dirty page is written back, then fsynced
    power_mount.cut("drop")
    assert path.read_bytes()[PAGE:PAGE + 5] == b"hello"


BLOCK = 1000


def appended_blocks(mount: PowerCutMount, blocks: int) -> tuple[Path, bytes]:
    """A durable empty file, then `blocks` unsynced appends of BLOCK bytes each (distinct bytes per block)."""
    path = mount.mountpoint / "log.bin"
    if not path.exists():
        durable_file(mount, "log.bin", b"")
    data = b"".join(bytes([65 + i % 26]) * BLOCK for i in range(blocks))
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    os.fsync(fd)
    for i in range(blocks):
        os.write(fd, data[i * BLOCK:(i + 1) * BLOCK])
    os.close(fd)
    return path, data


def test_prefix_mode_keeps_an_in_order_prefix_of_the_unsynced_writes(power_mount):
    lengths = set()
    for seed in range(8):
        path, data = appended_blocks(power_mount, 20)
        report = power_mount.cut("prefix", seed=seed)
        after = path.read_bytes()
        # The kernel splits a write that crosses a page boundary in two: a prefix ends at a write or a page.
        assert data.startswith(after), f"seed {seed}: not a prefix of the writes"
        assert len(after) % BLOCK == 0 or len(after) % PAGE == 0, f"seed {seed}: a write was cut inside"
        assert (report["kept_writes"] == 0) == (after == b"")
        lengths.add(len(after))
    assert len(lengths) > 2, f"prefix mode kept the same amount every time: {lengths}"


def test_torn_mode_cuts_one_write_short_inside_its_range(power_mount):
    path, data = appended_blocks(power_mount, 10)
    report = power_mount.cut("torn", seed=3)
    after = path.read_bytes()
    torn = report["torn"]
    assert torn is not None and torn["length"] == BLOCK and 0 <= torn["kept"] < BLOCK
    assert data.startswith(after)  # earlier writes whole, the torn one a prefix of its bytes, nothing after
    assert len(after) == torn["offset"] + torn["kept"]


def test_pages_mode_keeps_a_random_subset_of_dirty_pages(power_mount):
    pages = 16
    path = durable_file(power_mount, "pages.bin", b"a" * pages * PAGE)
    fd = os.open(path, os.O_WRONLY)
    for page in range(pages):
        os.pwrite(fd, b"b" * PAGE, page * PAGE)
    os.close(fd)
    power_mount.cut("pages", seed=5)
    after = path.read_bytes()
    assert len(after) == pages * PAGE
    kinds = [after[i * PAGE:(i + 1) * PAGE] for i in range(pages)]
    assert all(kind in (b"a" * PAGE, b"b" * PAGE) for kind in kinds), "a page was neither the old nor the new one"
    order = "".join("b" if kind[0:1] == b"b" else "a" for kind in kinds)
    assert "ab" in order and "ba" in order, f"not reordered: {order}"


SQLITE_WRITER = textwrap.dedent("""
    import sqlite3, sys
    db = sqlite3.connect(sys.argv[1], isolation_level=None)
    db.execute("PRAGMA journal_mode=wal")
    db.execute("PRAGMA synchronous=full")
    db.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, body BLOB)")
    start = db.execute("SELECT coalesce(max(id), 0) FROM t").fetchone()[0]
    for i in range(start + 1, start + 100000):
        db.execute("BEGIN")
        db.execute("INSERT INTO t VALUES (?, randomblob(3000))", (i,))
        if i % 7 == 0:
            db.execute("DELETE FROM t WHERE id = ?", (i - 3,))
        db.execute("COMMIT")
        print(i, flush=True)
""")


@pytest.mark.parametrize("mode", MODES)
def test_sqlite_wal_commits_survive_a_kill_and_a_cut(power_mount, mode):
    """The writer is SIGKILLed mid-stream, then the power is cut: every COMMIT it reported is there."""
    db_path = power_mount.mountpoint / "store.db"
    committed: list[int] = []
    for round_ in range(3):
        writer = subprocess.Popen([sys.executable, "-c", SQLITE_WRITER, str(db_path)], stdout=subprocess.PIPE,
                                  text=True)
        assert writer.stdout is not None
        for line in writer.stdout:
            committed.append(int(line))
            if len(committed) >= 40 * (round_ + 1):
                break
        writer.send_signal(signal.SIGKILL)
        committed += [int(line) for line in writer.stdout.read().split()]  # printed before it died
        writer.wait()
        power_mount.cut(mode, seed=round_)
        db = sqlite3.connect(db_path)
        try:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            ids = {row[0] for row in db.execute("SELECT id FROM t")}
        finally:
            db.close()
        never_deleted = {i for i in committed if (i + 3) % 7}
        assert never_deleted - ids == set(), f"{mode}: committed rows lost: {sorted(never_deleted - ids)[:10]}"
        # Each round's writer may have committed one row it did not live to report; nothing else is there.
        assert len(ids - set(committed)) <= round_ + 1, f"rows never committed: {sorted(ids - set(committed))}"
