"""Retries end to end: 5xx answers from a reverse proxy and 429 bursts from the server itself.

A real server (a `lockr-local serve` subprocess, or the app in a thread where its access log is read), a
real folder and the real watchdog observer; each test ends by comparing the remote listing (names +
SHA-256) with the local tree.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.errorproxy import ErrorProxy
from tests.helpers import ServerProcess, create_account, wait_for
from tests.sync.support import AccessLog, Agents, assert_mirrored, write

RETRY_DELAY = 0.05  # the client's first retry delay in these tests; it doubles on each failure


@pytest.mark.parametrize("status", [503, 500])
def test_5xx_answers_are_retried_with_backoff_reported_and_end_in_sync(shared_server: ServerProcess, folder: Path,
                                                                      agents: Agents, status: int) -> None:
    """nginx in front of a restarting server answers 503 (or 500) for a while: the client retries with growing
    delays, then gives up on that pass (the agent shows "offline" and the error), backs off, and syncs."""
    account = create_account(shared_server.url)
    for i in range(3):
        write(folder / f"f{i}.txt", f"file {i}")
    with ErrorProxy(shared_server.port, status=status) as proxy:
        proxy.fail_next(6)  # 1 request + 4 retries fail (the pass gives up), then the next pass's first
        agent = agents.start(folder, proxy.url, account, retry_delay=RETRY_DELAY)
        wait_for(lambda: agent.status().state == "offline", message="the agent to report the endpoint offline")
        assert str(status) in (agent.status().last_error or "")
        assert_mirrored(shared_server.url, account, folder)
        wait_for(lambda: agent.status().state == "idle", message="the agent to settle")
    assert len(proxy.failed) == 6
    assert all(f.request_line.startswith("GET /api/v1/files") for f in proxy.failed)
    gaps = [later.at - earlier.at for earlier, later in zip(proxy.failed, proxy.failed[1:])]
    for retry, gap in enumerate(gaps[:4]):  # the client's retries: 0.05, 0.1, 0.2, 0.4 s, each +-20%
        assert gap >= 0.8 * RETRY_DELAY * 2 ** retry, gaps
    assert gaps[4] >= 1.0, gaps  # then the agent's own backoff between passes (max_backoff 1 s here)


def test_5xx_answers_to_chunks_mid_upload_are_retried_in_the_same_session(shared_server: ServerProcess,
                                                                         folder: Path, agents: Agents) -> None:
    """A 1 MiB file in 256 KiB chunks; the proxy fails the second chunk and the status query that follows
    it: the client asks the session where it stopped and goes on from there, without a new session and
    without sending the first chunk again."""
    account = create_account(shared_server.url)
    write(folder / "big.bin", os.urandom(1024 * 1024))
    with ErrorProxy(shared_server.port) as proxy:
        proxy.fail_next(2, method="PUT", after=1)
        agent = agents.start(folder, proxy.url, account, chunk=256 * 1024, retry_delay=RETRY_DELAY)
        assert_mirrored(shared_server.url, account, folder)
        wait_for(agent.is_idle, message="the agent to settle")
    assert [f.request_line.split()[0] for f in proxy.failed] == ["PUT", "PUT"]
    assert sum(1 for line, _ in proxy.requests if line.startswith("POST /api/v1/upload/session")) == 1
    ranges = [content_range for line, content_range in proxy.requests if line.startswith("PUT ")]
    assert ranges.count("bytes 0-262143/1048576") == 1  # the stored chunk is not sent again
    assert ranges.count("bytes 262144-524287/1048576") == 2  # the failed one is, once
    assert agent.upload_count == 1 and agent.status().last_error is None


def test_rate_limit_bursts_are_honoured(server_factory: Any, access_log: AccessLog, folder: Path,
                                        agents: Agents) -> None:
    """3 files (a listing, then one POST each: small files go in one request) against 2 requests/s with a burst of 2: as
    long as the agent asks faster than that (5x slower than an idle machine still does), the server answers
    429 with Retry-After: 1, and the agent's next request comes no sooner. One upload at a time, so the
    agent's requests are in sequence and "the next request" is well defined."""
    server = server_factory(rate_account=2, rate_account_burst=2)
    account = create_account(server.url)
    for i in range(3):
        write(folder / f"f{i}.txt", f"file {i}")
    agent = agents.start(folder, server.url, account, concurrency=1)
    wait_for(lambda: agent.upload_count == 3 and agent.is_idle(), timeout=30, message="all 3 uploads")
    ours = [a for a in access_log.answered if a.who == account.username]
    assert len(ours) >= 7, ours  # the server's access log saw the agent's requests
    limited = [i for i, a in enumerate(ours) if a.status == 429]
    assert limited, "the server never answered 429: the test did not provoke a burst"
    for i in limited:
        assert i + 1 < len(ours), "the agent gave up after a 429"
        waited = ours[i + 1].at - ours[i].at
        assert waited >= 0.95, f"the agent came back {waited:.2f}s after a 429 with Retry-After: 1"
    assert agent.status().state == "idle" and agent.status().last_error is None
    assert_mirrored(server.url, account, folder, interval=1.0)
