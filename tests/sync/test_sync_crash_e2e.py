"""`lockr-local sync` killed with SIGKILL mid-upload: the next run resumes from the server's offset.

A real `lockr-local serve` subprocess and real `lockr-local sync` subprocesses, through a counting TCP
proxy (tests/cutproxy.py) that tells how many bytes each run sent.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from lockr_local.sync.index import index_path
from tests.cutproxy import CutProxy
from tests.helpers import REPO, ServerProcess, clean_env, create_account, stored_offset, wait_for
from tests.sync.support import assert_mirrored, remote_files, run_cli, write

MIB = 1024 * 1024


def pending_session(database: Path, path: str) -> str | None:
    """The session URL the agent recorded for `path` in its state database (read-only, as another process)."""
    if not database.exists():
        return None
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    try:
        row = connection.execute("SELECT session_url FROM entry WHERE path = ?", (path,)).fetchone()
    except sqlite3.OperationalError:
        return None  # the agent has not created its tables yet
    finally:
        connection.close()
    return row[0] if row else None


@pytest.fixture
def proxy(shared_server: ServerProcess) -> Iterator[CutProxy]:
    counting = CutProxy(shared_server.port)
    yield counting
    counting.close()


def test_sync_killed_mid_upload_resumes_from_the_server_offset_without_duplicate(
        shared_server: ServerProcess, proxy: CutProxy, folder: Path, tmp_path: Path) -> None:
    """--bwlimit stretches the upload over ~5 s: SIGKILL lands a quarter of the way, the server keeps
    what it got, and the next run sends only the rest."""
    account = create_account(shared_server.url)
    size = 2 * MIB + 300_000
    write(folder / "big.bin", os.urandom(size))
    state_dir = tmp_path / "state"
    env = {"LOCKR_ENDPOINT": proxy.url, "LOCKR_TOKEN": account.token, "LOCKR_SYNC_STATE_DIR": str(state_dir),
           "LOCKR_SMALL_FILE_MAX": "0"}  # through a session, which the killed run leaves to resume
    database = index_path(state_dir, folder, proxy.url, None)
    first = subprocess.Popen([sys.executable, "-m", "lockr_local", "sync", str(folder), "--bwlimit", "400000"],
                             env=clean_env(**env), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        session_url = wait_for(lambda: pending_session(database, "big.bin"), timeout=20,
                               message="the agent to record its upload session")
        wait_for(lambda: proxy.sent_upstream >= 600_000, timeout=20, message="a quarter of the file to be sent")
    finally:
        first.kill()  # SIGKILL: no clean stop, no chance to record anything more
        first.wait()
    offset = wait_for(lambda: stored_offset(session_url, size), message="the server to keep the bytes it got")
    assert 0 < offset < size
    assert remote_files(shared_server.url, account) == []

    sent_before = proxy.sent_upstream
    second = run_cli("sync", str(folder), "--once", env=env)
    assert second.returncode == 0, second.stderr
    resent = proxy.sent_upstream - sent_before
    # The rest of the file, plus a few requests' headers (listing, status query, final chunk): not the file again.
    assert size - offset <= resent < size - offset + 32 * 1024, (resent, offset)
    assert [f["name"] for f in remote_files(shared_server.url, account)] == [f"{folder.name}/big.bin"]
    assert_mirrored(shared_server.url, account, folder, under=folder.name)
    assert pending_session(database, "big.bin") is None
