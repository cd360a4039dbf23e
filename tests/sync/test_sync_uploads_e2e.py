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

import pytest

from tests.helpers import ServerProcess, create_account, upload, wait_for
from tests.sync.support import Agents, assert_mirrored, remote_files, remote_tree, write

MIB = 1024 * 1024


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("keeps_mtime", [False, True], ids=["new-mtime", "mtime-restored"])
def test_a_file_changed_during_its_upload_is_uploaded_again_and_the_torn_copy_removed(
        shared_server: ServerProcess, folder: Path, agents: Agents, keeps_mtime: bool) -> None:
    """The throttle sends the first MiB at once, then holds the upload ~1 s before reading the rest: the
    test rewrites the whole file in that window, so the server stores old head + new tail (a torn copy).

    With the mtime restored afterwards (as `cp -p`, rsync or unzip do), size and mtime look unchanged, so
    only the agent's check of the stored SHA-256 against the scanned one can notice."""
    url, account = shared_server.url, create_account(shared_server.url)
    old = os.urandom(MIB + 200_000)
    write(folder / "report.bin", old)
    mtime_ns = (folder / "report.bin").stat().st_mtime_ns
    agent = agents.start(folder, url, account, throttle=500_000)
    wait_for(lambda: agent.remote.bytes_sent >= MIB, message="the first MiB to be sent")  # type: ignore[attr-defined]
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
    assert agent.upload_count == 2
    torn = old[:MIB] + new[MIB:]
    assert sha256(torn) not in {f["sha256"] for f in remote_files(url, account)}


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
