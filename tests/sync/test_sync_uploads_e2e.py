"""Uploads end to end: a file changed while it uploads, replacing a file, foreign remote files, the bandwidth limit.

A real `lockr-local serve` subprocess, a real folder and the real watchdog observer; each test ends by
comparing the remote listing (names + SHA-256) with the local tree.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ServerProcess, create_account, upload, wait_for
from tests.sync.support import AccessLog, Agents, assert_mirrored, remote_files, remote_tree, run_cli, write

MIB = 1024 * 1024


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("keeps_mtime", [False, True], ids=["new-mtime", "mtime-restored"])
def test_a_file_changed_during_its_upload_is_uploaded_again_and_the_torn_copy_removed(
        shared_server: ServerProcess, folder: Path, agents: Agents, keeps_mtime: bool) -> None:
    """The bandwidth limit keeps the upload going for ~2 s: half way through, the test rewrites the whole
    file, so the server stores old head + new tail (a torn copy).

    With the mtime restored afterwards (as `cp -p`, rsync or unzip do), size and mtime look unchanged, so
    only the agent's check of the stored SHA-256 against the scanned one can notice."""
    url, account = shared_server.url, create_account(shared_server.url)
    old = os.urandom(MIB + 200_000)
    write(folder / "report.bin", old)
    mtime_ns = (folder / "report.bin").stat().st_mtime_ns
    agent = agents.start(folder, url, account, throttle=500_000)
    wait_for(lambda: agent.remote.bytes_sent >= 600_000,  # type: ignore[attr-defined]
             message="half of the file to be sent")
    assert agent.status().current_file == "report.bin"
    new = os.urandom(len(old))
    with (folder / "report.bin").open("r+b") as handle:  # rewritten in place, as a database would
        handle.write(new)
    if keeps_mtime:
        os.utime(folder / "report.bin", ns=(mtime_ns, mtime_ns))
    agent.remote.throttle.limit = 0  # type: ignore[attr-defined]  # only the first upload needed holding open
    assert_mirrored(url, account, folder, timeout=20)
    names = [f["name"] for f in remote_files(url, account)]
    assert names == ["report.bin"]  # the torn copy was deleted once the complete one was stored
    assert remote_tree(url, account)["report.bin"] == sha256(new) != sha256(old)
    wait_for(agent.is_idle, message="the agent to settle")
    assert agent.upload_count == 2  # the torn copy, then the new version


def test_remote_files_the_agent_did_not_create_are_left_alone(shared_server: ServerProcess, folder: Path,
                                                              agents: Agents) -> None:
    """Files uploaded through the API under the same names (one with the very name of a local file) survive
    the agent's uploads and its deletions, even with deletions confirmed (--allow-deletions)."""
    url, account = shared_server.url, create_account(shared_server.url)
    theirs = {"foreign.txt": b"uploaded from a browser", "docs/notes.txt": b"uploaded by a script",
              "a.txt": b"their a.txt, not ours"}
    for name, data in theirs.items():
        assert upload(url, data, name=name, account=account).status_code == 201
    write(folder / "a.txt", "our a.txt")
    write(folder / "docs" / "d.txt", "our doc")
    agent = agents.start(folder, url, account, allow_deletions=True)
    wait_for(lambda: sorted(f["name"] for f in remote_files(url, account)) ==
             ["a.txt", "a.txt", "docs/d.txt", "docs/notes.txt", "foreign.txt"], message="our two files uploaded")
    (folder / "a.txt").unlink()
    shutil.rmtree(folder / "docs")
    expected = {name: sha256(data) for name, data in theirs.items()}
    wait_for(lambda: remote_tree(url, account) == expected, message="only our copies to be deleted")
    wait_for(agent.is_idle, message="the agent to settle")
    assert remote_tree(url, account) == expected


def test_a_changed_file_stays_listed_until_its_new_copy_is_complete(shared_server: ServerProcess, folder: Path,
                                                                    agents: Agents) -> None:
    """The new version uploads slowly (bandwidth limit) while the test lists the remote without pause: the
    name is never missing, and the old copy goes only after the new one is there."""
    url, account = shared_server.url, create_account(shared_server.url)
    old, new = os.urandom(10_000), os.urandom(MIB + 200_000)
    write(folder / "doc.bin", old)
    agent = agents.start(folder, url, account, throttle=500_000)
    assert_mirrored(url, account, folder)
    wait_for(agent.is_idle, message="the first upload to settle")
    seen: list[list[str]] = []  # the SHA-256s listed under doc.bin, one list per listing
    done = threading.Event()

    def watch_listing() -> None:
        while not done.is_set():
            seen.append(sorted(f["sha256"] for f in remote_files(url, account) if f["name"] == "doc.bin"))

    watcher = threading.Thread(target=watch_listing)
    watcher.start()
    try:
        write(folder / "doc.bin", new)
        wait_for(lambda: seen and seen[-1] == [sha256(new)], timeout=20, message="only the new copy listed")
    finally:
        done.set()
        watcher.join()
    assert all(seen), f"{sum(1 for s in seen if not s)} of {len(seen)} listings without doc.bin"
    states = [tuple(s) for s in seen]
    first_new = next(i for i, s in enumerate(states) if sha256(new) in s)
    assert all(s == (sha256(old),) for s in states[:first_new])
    assert len(states[:first_new]) >= 10, "the listing was not watched during the upload"
    assert_mirrored(url, account, folder)


def test_the_bandwidth_limit_caps_the_upload_rate(server: Any, access_log: AccessLog, folder: Path,
                                                  tmp_path: Path) -> None:
    """`--bwlimit 400000` on a 1.2 MB file: past the first second's allowance (400 kB) the bytes flow at
    400 kB/s, so the server spends at least 2 s receiving them (its own access log times the request;
    only a lower bound, which a loaded machine cannot break)."""
    account = create_account(server.url)
    size, limit = 1_200_000, 400_000
    write(folder / "big.bin", os.urandom(size))
    env = {"LOCKR_ENDPOINT": server.url, "LOCKR_TOKEN": account.token, "LOCKR_SYNC_STATE_DIR": str(tmp_path / "state")}
    result = run_cli("sync", str(folder), "--once", "--bwlimit", str(limit), env=env)
    assert result.returncode == 0, result.stderr
    assert_mirrored(server.url, account, folder, under=folder.name)
    receiving = sum(a.seconds for a in access_log.answered if a.method in ("PUT", "POST") and "upload" in a.path)
    assert receiving >= 0.95 * (size - limit) / limit, f"{size} bytes received in {receiving:.2f}s"


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The largest number of (start, end) intervals that overlap at one instant."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    current = best = 0
    for _, step in edges:  # at equal times an end (-1) sorts before a start: touching is not overlapping
        current += step
        best = max(best, current)
    return best


@pytest.mark.parametrize("concurrency", [1, 3])
def test_concurrency_sets_how_many_files_upload_at_once(server: Any, access_log: AccessLog, folder: Path,
                                                        tmp_path: Path, concurrency: int) -> None:
    """`--concurrency N` with a bandwidth limit (so each upload lasts): the server sees at most one upload
    body at a time with N=1, and several at once with N=3 (each upload, one POST per small file, timed by its
    access log)."""
    account = create_account(server.url)
    for i in range(6):  # 900 kB: the first second's allowance (500 kB) leaves ~3 files to pace
        write(folder / f"f{i}.bin", os.urandom(150_000))
    env = {"LOCKR_ENDPOINT": server.url, "LOCKR_TOKEN": account.token, "LOCKR_SYNC_STATE_DIR": str(tmp_path / "state")}
    result = run_cli("sync", str(folder), "--once", "--bwlimit", "500000", "--concurrency", str(concurrency), env=env)
    assert result.returncode == 0, result.stderr
    assert_mirrored(server.url, account, folder, under=folder.name)
    bodies = [(a.at - a.seconds, a.at) for a in access_log.answered if a.path == "/api/v1/upload"]
    assert len(bodies) == 6
    if concurrency == 1:
        assert most_at_once(bodies) == 1
    else:
        assert most_at_once(bodies) >= 2
