"""Uploads end to end: a file changed while it uploads, replacing a file, foreign remote files, the bandwidth limit.

A real `lockr-local serve` subprocess, a real folder and the real watchdog observer; each test ends by
comparing the remote listing (names + SHA-256) with the local tree.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.helpers import ServerProcess, create_account, wait_for
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
