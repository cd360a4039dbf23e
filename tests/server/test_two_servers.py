"""Two servers in one process are independent: each has its own database, threads and shutdown."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import requests

from lockr_local.server import writeback
from tests.helpers import create_account, upload


def test_an_account_on_one_server_is_not_on_the_other_and_both_serve_at_once(server_factory):
    first, second = server_factory(), server_factory()
    alice = create_account(first.url, "alice")
    assert requests.get(f"{first.url}/api/v1/account", headers=alice.auth).status_code == 200
    assert requests.get(f"{second.url}/api/v1/account", headers=alice.auth).status_code == 401
    login = requests.post(f"{second.url}/api/v1/login", json={"identifier": "alice", "password": alice.password})
    assert login.status_code == 401
    bob = create_account(second.url, "bob")

    def upload_many(url: str, account, tag: str) -> list[int]:
        return [upload(url, f"{tag} {i}".encode() * 50, f"{tag}-{i}.txt", account=account).status_code
                for i in range(20)]

    with ThreadPoolExecutor(2) as pool:
        statuses = list(pool.map(upload_many, [first.url, second.url], [alice, bob], ["a", "b"]))
    assert statuses == [[201] * 20, [201] * 20]
    listed = {url: sorted(f["name"] for f in requests.get(f"{url}/api/v1/files", headers=account.auth).json()["files"])
              for url, account in ((first.url, alice), (second.url, bob))}
    assert listed[first.url] == sorted(f"a-{i}.txt" for i in range(20))
    assert listed[second.url] == sorted(f"b-{i}.txt" for i in range(20))
    assert requests.get(f"{first.url}/api/v1/files", headers=bob.auth).status_code == 401


def test_stopping_one_server_leaves_the_other_serving(server_factory):
    first, second = server_factory(), server_factory()
    account = create_account(second.url)
    first.stop()
    assert upload(second.url, b"still here", "after.txt", account=account).status_code == 201
    assert requests.get(f"{second.url}/api/v1/account", headers=account.auth).json()["used"] == len(b"still here")


def test_a_stopped_server_leaves_none_of_its_threads_alive(server_factory, monkeypatch):
    # Where sync_file_range is missing, flush threads push big uploads to the disk: pretend so, so that the
    # upload below starts every kind of thread a server has (Linux flushes on the writer's own thread).
    monkeypatch.setattr(writeback, "_sync_file_range", None)
    before = set(threading.enumerate())
    server = server_factory(inline_max=0)
    account = create_account(server.url)
    assert upload(server.url, os.urandom(3 * writeback.FLUSH_EVERY), "big.bin", account=account).status_code == 201
    started = {thread.name.rsplit("_", 1)[0] for thread in set(threading.enumerate()) - before}
    assert {"lockr-db", "lockr-io", "lockr-kdf", "lockr-hash", "lockr-flush"} <= started, started

    server.stop()
    left = sorted(thread.name for thread in set(threading.enumerate()) - before if thread.name.startswith("lockr"))
    assert left == []
