"""The server's memory: the large bodies streaming in at once share one buffer budget (bodybudget.py), so
twenty uploads at once cost the server a few MiB rather than a few MiB each; a server on SQLite does not
load the PostgreSQL driver."""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from lockr_local.server.bodybudget import MAX_SHARE, SHARE_QUANTUM, BodyBudget
from tests.helpers import ServerProcess, create_account, upload, wait_for

MiB = 2**20


@pytest.mark.parametrize("budget, streaming, share", [
    (4 * MiB, 0, MAX_SHARE),  # the first body's head: alone
    (4 * MiB, 1, MAX_SHARE),
    (4 * MiB, 4, MAX_SHARE),
    (4 * MiB, 5, 768 * 1024),  # 819 KiB, down to a whole quantum
    (4 * MiB, 16, 256 * 1024),
    (4 * MiB, 20, 192 * 1024),
    (4 * MiB, 1000, SHARE_QUANTUM),  # never below the quantum
    (64 * MiB, 2, MAX_SHARE),  # never above 1 MiB
    (0, 1, SHARE_QUANTUM),
])
def test_each_streaming_body_gets_its_share_of_the_budget(budget: int, streaming: int, share: int) -> None:
    bodies = BodyBudget(budget)
    bodies.streaming = streaming
    assert bodies.share() == share


def open_upload(url: str, token: str, length: int, sent: bytes) -> socket.socket:
    """A direct upload announcing `length` bytes of which only `sent` have gone out (yet)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(f"POST /api/v1/upload HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
                 f"x-file-name: cut.bin\r\nContent-Length: {length}\r\n\r\n".encode() + sent)
    return sock


def test_every_large_body_leaves_the_budget_when_its_request_ends(server: Any) -> None:
    # A count that missed an ending would shrink every later upload's reads for good.
    bodies = server.ctx.bodies
    account = create_account(server.url)
    data = os.urandom(3 * MiB)
    assert upload(server.url, data, "whole.bin", account=account).status_code == 201
    chunked = requests.post(f"{server.url}/api/v1/upload", data=iter([data[:MiB], data[MiB:]]), timeout=60,
                            headers={**account.auth, "x-file-name": "chunked.bin"})
    assert chunked.status_code == 201 and chunked.json()["size"] == len(data)
    refused = open_upload(server.url, "not-a-token", len(data), data[:MiB])
    assert refused.recv(100).startswith(b"HTTP/1.1 401")
    refused.close()
    assert wait_for(lambda: bodies.streaming == 0, message="every body has left the budget")
    cut = open_upload(server.url, account.token, len(data), data[:MiB])
    assert wait_for(lambda: bodies.streaming == 1, message="the cut upload streaming")
    assert bodies.share() == MAX_SHARE
    cut.close()
    assert wait_for(lambda: bodies.streaming == 0, message="the cut upload has left the budget")


def status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith(field + ":"))
    return int(line.split()[1])


def can_reset_peak(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as refs:
            refs.write("5")  # VmHWM := VmRSS (Linux 4.0+)
        return True
    except OSError:
        return False


CLIENTS = 20
SIZE = 16 * MiB
# Measured on the 2-core build VM (peak resident memory over the idle server's): 1 MiB buffers for every
# body (before the budget) 77-82 MiB; the 4 MiB budget 4-7 MiB.
GROWTH_LIMIT = 20 * MiB


def test_twenty_concurrent_uploads_grow_the_server_by_its_buffer_budget_not_per_upload(tmp_path: Path) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("reads the server's peak memory from /proc")
    # A budget set small, so that what it bounds stands out from what 20 uploads at 1 MiB each would hold.
    server = ServerProcess(tmp_path / "data", env={"LOCKR_UPLOAD_BUFFERS": "4MiB"}).start()
    try:
        assert server.proc is not None
        pid = server.proc.pid
        if not can_reset_peak(pid):
            pytest.skip("/proc/PID/clear_refs cannot reset the peak here")
        account = create_account(server.url)
        body = os.urandom(SIZE)
        assert upload(server.url, body, "warm-up.bin", account=account).status_code == 201  # threads, imports
        idle = status_kib(pid, "VmRSS") * 1024
        can_reset_peak(pid)

        def send(index: int) -> Any:
            return upload(server.url, body, f"concurrent-{index}.bin", account=account)

        with ThreadPoolExecutor(CLIENTS) as clients:
            answers = list(clients.map(send, range(CLIENTS)))
        growth = status_kib(pid, "VmHWM") * 1024 - idle
        assert [answer.status_code for answer in answers] == [201] * CLIENTS
        print(f"idle {idle / MiB:.1f} MiB, peak growth {growth / MiB:.1f} MiB")
        assert growth < GROWTH_LIMIT, f"{CLIENTS} concurrent uploads grew the server by {growth / MiB:.1f} MiB"
    finally:
        server.stop()


def test_a_server_on_sqlite_leaves_the_postgresql_driver_out_of_its_memory(tmp_path: Path) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("reads the server's mappings from /proc")
    if importlib.util.find_spec("psycopg") is None:
        pytest.skip("psycopg is not installed: nothing to leave out")
    server = ServerProcess(tmp_path / "data").start()
    try:
        assert server.proc is not None
        assert create_account(server.url).token  # the database is in use
        with open(f"/proc/{server.proc.pid}/maps") as maps:
            loaded = [line.split()[-1] for line in maps if "psycopg" in line]
        assert loaded == []
    finally:
        server.stop()
