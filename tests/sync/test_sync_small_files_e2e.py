"""Small files end to end: one request per file where the endpoint keeps Idempotency-Keys, sessions where it does
not; several uploads in flight at once without losing, doubling or blocking files.

The app in a thread (its access log is read) or a `lockr-local serve` subprocess, a real folder, real agents.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.cutproxy import CutProxy
from tests.helpers import create_account, wait_for
from tests.sync.support import AccessLog, Agents, assert_mirrored, write

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
