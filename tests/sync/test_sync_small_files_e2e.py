"""Small files end to end: one request per file where the endpoint keeps Idempotency-Keys, sessions where it does
not; several uploads in flight at once without losing, doubling or blocking files.

The app in a thread (its access log is read) or a `lockr-local serve` subprocess, a real folder, real agents.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lockr_local.sync.index import SyncIndex, index_path
from tests.cutproxy import CutProxy
from tests.helpers import create_account, wait_for
from tests.sync.support import AccessLog, Agents, assert_mirrored, remote_files, write

KIB = 1024


def small_tree(folder: Path, count: int, size: int = 10 * KIB) -> None:
    for i in range(count):
        write(folder / f"d{i % 3}" / f"f{i:03}.bin", os.urandom(size))


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_the_agent_uploads_each_small_file_in_one_request(server_factory: Any, access_log: AccessLog, folder: Path,
                                                          agents: Agents) -> None:
    server = server_factory()
    account = create_account(server.url)
    small_tree(folder, 30)
    agent = agents.start(folder, server.url, account)
    assert_mirrored(server.url, account, folder)
    wait_for(agent.is_idle, message="the agent to settle")
    ours = [a for a in access_log.answered if a.who == account.username]
    uploads = [a for a in ours if a.path.startswith("/api/v1/upload")]
    assert [(a.method, a.path, a.status) for a in uploads] == [("POST", "/api/v1/upload", 201)] * 30
    assert agent.upload_count == 30


def test_without_the_advertisement_the_agent_keeps_its_sessions(server_factory: Any, access_log: AccessLog,
                                                                folder: Path, agents: Agents) -> None:
    """An endpoint that does not say it keeps Idempotency-Keys gets what every endpoint got before: a session
    per file (a lost answer to a keyless POST could leave a duplicate)."""
    server = server_factory()
    account = create_account(server.url)
    small_tree(folder, 3)
    with CutProxy(port_of(server.url)) as proxy:
        proxy.hide_response_header("Accept-Idempotency-Key")
        agent = agents.start(folder, proxy.url, account)
        assert_mirrored(server.url, account, folder)
        wait_for(agent.is_idle, message="the agent to settle")
    ours = [(a.method, a.path.rsplit("/", 1)[0]) for a in access_log.answered
            if a.path.startswith("/api/v1/upload")]
    assert sorted(ours) == [("POST", "/api/v1/upload")] * 3 + [("PUT", "/api/v1/upload/session")] * 3, ours


def test_many_uploads_in_flight_lose_and_double_nothing_on_few_connections(server_factory: Any, folder: Path,
                                                                           agents: Agents) -> None:
    """200 small files, 8 at a time: each is stored once, and 8 kept-alive connections carry them all."""
    server = server_factory()
    account = create_account(server.url)
    small_tree(folder, 200, size=2 * KIB)
    with CutProxy(port_of(server.url)) as proxy:
        agent = agents.start(folder, proxy.url, account, concurrency=8)
        assert_mirrored(server.url, account, folder, timeout=30)  # each name once: a double would be a list
        wait_for(agent.is_idle, message="the agent to settle")
        assert agent.upload_count == 200
        assert len(proxy.connection_heads) <= 8, len(proxy.connection_heads)


def test_a_file_the_server_refuses_does_not_stop_the_others(server_factory: Any, folder: Path,
                                                            agents: Agents) -> None:
    server = server_factory(account_max_object=20_000)
    account = create_account(server.url)
    small_tree(folder, 20)
    write(folder / "d1" / "too-big.bin", os.urandom(30_000))
    agent = agents.start(folder, server.url, account, concurrency=4)
    wait_for(lambda: agent.upload_count == 20 and agent.is_idle(), message="the 20 other files")
    assert "too-big.bin" in (agent.status().last_error or "")
    names = {f["name"] for f in remote_files(server.url, account)}
    assert len(names) == 20 and "d1/too-big.bin" not in names


def test_pause_lets_uploads_in_flight_end_and_starts_no_more(server_factory: Any, folder: Path,
                                                             agents: Agents) -> None:
    """A bandwidth limit keeps each upload in flight a while; pausing mid-pass ends those that started
    (stored and recorded) and starts none of the rest until resume."""
    server = server_factory()
    account = create_account(server.url)
    small_tree(folder, 20)
    agent = agents.start(folder, server.url, account, concurrency=4, throttle=40_000)
    wait_for(lambda: agent.upload_count >= 2, message="the first uploads")
    agent.pause()
    wait_for(agent.is_idle, message="the pass to end")
    done = agent.upload_count
    assert done < 20
    assert len(remote_files(server.url, account)) == done  # nothing half-done or unrecorded
    agent.remote.throttle.limit = 0  # type: ignore[attr-defined]
    agent.resume()
    assert_mirrored(server.url, account, folder)
    wait_for(agent.is_idle, message="the agent to settle")
    assert agent.upload_count == 20


def test_stop_waits_for_small_uploads_in_flight_and_records_them(server_factory: Any, folder: Path,
                                                                 agents: Agents) -> None:
    """Every file the server stored before stop() returned is in the agent's index: none was cut off after
    its bytes were sent, to be found later as a copy the agent did not know it made."""
    server = server_factory()
    account = create_account(server.url)
    small_tree(folder, 20)
    agent = agents.start(folder, server.url, account, concurrency=4, throttle=40_000)
    wait_for(lambda: agent.upload_count >= 2, message="the first uploads")
    agent.stop()
    stored = {f["id"] for f in remote_files(server.url, account)}
    index = SyncIndex(index_path(agents.state_dir, folder, server.url, None))
    try:
        recorded = {e.remote_id for e in index.entries().values() if e.remote_id}
    finally:
        index.close()
    assert stored and stored == recorded
    again = agents.start(folder, server.url, account)
    assert_mirrored(server.url, account, folder)
    wait_for(again.is_idle, message="the second agent to settle")
    assert again.upload_count == 20 - len(stored)


def test_remote_deletions_start_once_the_pass_has_no_upload_left_in_flight(
        server_factory: Any, access_log: AccessLog, folder: Path, agents: Agents) -> None:
    """Files deleted and others added in one pass: every DELETE starts after the last upload answered."""
    server = server_factory()
    account = create_account(server.url)
    for i in range(6):
        write(folder / f"old{i}.bin", os.urandom(10 * KIB))
    agent = agents.start(folder, server.url, account, concurrency=4, scan_interval=3600.0, watch=False)
    assert_mirrored(server.url, account, folder)
    wait_for(agent.is_idle, message="the first pass")
    for i in range(6):
        (folder / f"old{i}.bin").unlink()
        write(folder / f"new{i}.bin", os.urandom(10 * KIB))
        os.utime(folder / f"new{i}.bin", (1e9, 1e9))  # settled: uploaded in the same pass as the deletions
    access_log.answered.clear()
    agent.rescan()
    assert_mirrored(server.url, account, folder)
    wait_for(agent.is_idle, message="the second pass")
    uploads = [a for a in access_log.answered if a.path == "/api/v1/upload"]
    deletes = [a for a in access_log.answered if a.method == "DELETE"]
    assert len(uploads) == 6 and len(deletes) == 6
    assert min(d.at - d.seconds for d in deletes) >= max(u.at for u in uploads)
