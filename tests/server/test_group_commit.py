"""Group commit: concurrent small uploads share one database commit, each keeps its own answer, and a crash
right after a shared commit loses nothing (server/groupcommit.py)."""

from __future__ import annotations

import asyncio
import threading
from contextlib import contextmanager
from typing import Any, Iterator

import peewee
import pytest
import requests

from lockr_local.server.db import Database
from lockr_local.server.faults import Faults
from lockr_local.server.groupcommit import GroupCommit
from lockr_local.server.metrics import Metrics
from lockr_local.server.models import Meta

from tests.helpers import Account, ServerProcess, create_account, error_code, upload, wait_for
from tests.server.test_durability import fsck, stored_files
from tests.server.test_metrics import scrape, value

pytestmark = pytest.mark.both_databases

SIZE = 10 * 1024  # stored inline (inline_max is 64 KiB)


def body(tag: str) -> bytes:
    return tag.encode().ljust(SIZE, b".")


def listed(url: str, account: Account) -> dict[str, dict[str, Any]]:
    files = requests.get(f"{url}/api/v1/files?limit=1000", headers=account.auth, timeout=30).json()["files"]
    return {f["name"]: f for f in files}


def used(url: str, account: Account) -> int:
    return int(requests.get(f"{url}/api/v1/account", headers=account.auth, timeout=30).json()["used"])


@contextmanager
def database_thread_held(server: Any) -> Iterator[None]:
    """Keeps the server's database thread busy until the block ends, as a slow commit under load does: the
    uploads that finish their bodies meanwhile wait for it together."""
    started, release = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        release.wait(30)

    holder = threading.Thread(target=server.ctx.db.run_sync, args=(hold,))
    holder.start()
    assert started.wait(10)
    try:
        yield
    finally:
        release.set()
        holder.join(30)


def send_all(requests_to_send: list[Any]) -> list[requests.Response]:
    """Sends each (callable) request on its own connection, all at once; the answers in the same order."""
    answers: list[Any] = [None] * len(requests_to_send)

    def send(index: int) -> None:
        answers[index] = requests_to_send[index]()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests_to_send))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers


def test_concurrent_small_uploads_share_commits_and_all_are_stored(server_factory: Any) -> None:
    server = server_factory(metrics=True)
    account = create_account(server.url)
    connections, per_connection = 8, 25
    answers: dict[str, requests.Response] = {}

    def client(number: int) -> None:
        with requests.Session() as session:
            for index in range(per_connection):
                name = f"c{number}-{index}.bin"
                answers[name] = upload(server.url, body(name), name, account=account, session=session)

    group = server.ctx.ingest.group
    clients = []
    with database_thread_held(server):
        # The first upload of every connection waits for the database thread together: one group at least.
        for number in range(connections):
            clients.append(threading.Thread(target=client, args=(number,)))
            clients[-1].start()
        wait_for(lambda: group.waiting == connections, message="every connection's first upload waiting")
    for thread in clients:
        thread.join(120)

    uploads = connections * per_connection
    assert sorted(a.status_code for a in answers.values()) == [201] * uploads
    files = listed(server.url, account)
    assert sorted(files) == sorted(answers)
    assert {name: files[name]["id"] for name in files} == {name: a.json()["id"] for name, a in answers.items()}
    assert used(server.url, account) == uploads * SIZE
    for name in ("c0-0.bin", "c7-0.bin", f"c3-{per_connection - 1}.bin"):
        download = requests.get(answers[name].json()["downloadUrl"], headers=account.auth, timeout=30)
        assert download.content == body(name)
    samples = scrape(server.url)
    assert value(samples, "lockr_db_group_commit_size_sum") == uploads
    commits = value(samples, "lockr_db_group_commit_size_count")
    assert commits <= uploads - connections + 1, "the first uploads of the 8 connections shared one commit"
    assert value(samples, "lockr_db_group_commit_size_bucket", le="4.0") < commits  # a group of 8


def test_a_failing_upload_in_a_group_fails_alone(server_factory: Any) -> None:
    server = server_factory(metrics=True)
    full, other = create_account(server.url), create_account(server.url)
    full_id = server.ctx.db.run_sync(server.ctx.service.account_by_username, full.username).id
    server.ctx.db.run_sync(server.ctx.service.set_quota, full_id, 3 * SIZE + SIZE // 2)  # room for 3 of 4
    key = {"Idempotency-Key": '"group-key"'}
    first = upload(server.url, body("keyed"), "keyed.bin", headers=key, account=other)
    assert first.status_code == 201

    def sender(name: str, account: Account | None, headers: dict[str, str] | None = None) -> Any:
        return lambda: upload(server.url, body(name), name, headers=headers, account=account)

    quota_names = [f"q{i}.bin" for i in range(4)]
    group = [sender(name, full) for name in quota_names]
    group += [sender("intruder.bin", None, {"Authorization": "Bearer not-a-token"}),
              sender("good-1.bin", other), sender("good-2.bin", other),
              sender("keyed.bin", other, key)]  # the same key, another body: 422 after its row was inserted
    before = scrape(server.url)
    with database_thread_held(server):
        answers: list[requests.Response] = []
        sending = threading.Thread(target=lambda: answers.extend(send_all(group)))
        sending.start()
        wait_for(lambda: server.ctx.ingest.group.waiting == len(group), message="the whole group waiting")
    sending.join(60)

    statuses = [a.status_code for a in answers]
    quota = statuses[:4]
    assert sorted(quota) == [201, 201, 201, 403], statuses
    assert error_code(answers[quota.index(403)]) == "quota_exceeded"
    assert statuses[4:] == [401, 201, 201, 422], [a.text for a in answers[4:]]
    assert error_code(answers[4]) == "unauthorized" and error_code(answers[7]) == "idempotency_key_reused"

    stored = [name for name, status in zip(quota_names, quota) if status == 201]
    assert sorted(listed(server.url, full)) == sorted(stored)
    assert used(server.url, full) == 3 * SIZE
    assert sorted(listed(server.url, other)) == ["good-1.bin", "good-2.bin", "keyed.bin"]
    assert used(server.url, other) == 3 * SIZE
    kept = listed(server.url, other)["keyed.bin"]
    assert kept["id"] == first.json()["id"]
    assert requests.get(kept["downloadUrl"], headers=other.auth, timeout=30).content == body("keyed")
    for answer, name in [(answers[5], "good-1.bin"), *[(a, n) for a, n in zip(answers, quota_names)
                                                       if a.status_code == 201]]:
        assert requests.get(answer.json()["downloadUrl"], timeout=30,
                            headers=(other if name.startswith("good") else full).auth).content == body(name)
    after = scrape(server.url)
    assert value(after, "lockr_db_group_commit_size_count") - value(before, "lockr_db_group_commit_size_count") == 1
    assert value(after, "lockr_db_group_commit_size_sum") - value(before, "lockr_db_group_commit_size_sum") == 8


def test_a_crash_right_after_a_group_commit_loses_nothing_and_retries_find_their_files(tmp_path: Any) -> None:
    data = tmp_path / "data"
    crashing = ServerProcess(data, env={"LOCKR_CRASH_POINT": "after_group_commit"}).start()
    account = create_account(crashing.url)
    acknowledged: dict[str, str] = {}  # name -> id, answered 201 before the crash
    cut: dict[str, str] = {}  # name -> its Idempotency-Key, sent when the server died

    def client(number: int) -> None:
        with requests.Session() as session:
            for index in range(500):
                name, key = f"c{number}-{index}.bin", f'"key-{number}-{index}"'
                try:
                    answer = upload(crashing.url, body(name), name, headers={"Idempotency-Key": key},
                                    account=account, session=session)
                except requests.ConnectionError:
                    cut[name] = key
                    return
                assert answer.status_code == 201, answer.text
                acknowledged[name] = answer.json()["id"]

    clients = [threading.Thread(target=client, args=(number,)) for number in range(8)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(120)
    assert crashing.proc is not None and crashing.proc.wait(timeout=10) == -9, "the crash point was reached"
    crashing.proc = None
    assert len(cut) == 8

    restarted = ServerProcess(data).start()
    try:
        files = listed(restarted.url, account)
        assert set(acknowledged) <= set(files)
        assert {name: files[name]["id"] for name in acknowledged} == acknowledged
        assert set(files) - set(acknowledged) <= set(cut)
        assert len(set(files) - set(acknowledged)) >= 2, "the cut group's uploads committed together"
        for name, file in files.items():
            download = requests.get(file["downloadUrl"].replace(crashing.url, restarted.url), headers=account.auth,
                                    timeout=30)
            assert download.content == body(name)
        committed_before_retry = {name: files[name]["id"] for name in set(files) - set(acknowledged)}
        for name, key in cut.items():
            retry = upload(restarted.url, body(name), name, headers={"Idempotency-Key": key}, account=account)
            assert retry.status_code == 201, retry.text
            if name in committed_before_retry:
                assert retry.json()["id"] == committed_before_retry[name]
        final = listed(restarted.url, account)
        assert sorted(final) == sorted([*acknowledged, *cut])
        assert used(restarted.url, account) == len(final) * SIZE
    finally:
        restarted.stop()
    assert stored_files(data) == len(acknowledged) + len(cut)
    report = fsck(data, "--verify")
    assert report.returncode == 0, report.stdout
    assert report.stdout.strip().endswith("clean")


def test_a_record_that_meets_a_database_error_in_a_group_runs_again_alone_after_the_commit(tmp_path: Any) -> None:
    # A database error other than a constraint (PostgreSQL's deadlock between two nodes that lock two accounts
    # in opposite orders) is raised by the record itself here: two nodes cannot be made to deadlock on cue.
    db = Database(f"sqlite:///{tmp_path / 'lockr.db'}")
    group = GroupCommit(db, Faults(""), Metrics())
    runs: list[tuple[str, bool]] = []  # (record, inside the group's transaction)

    def record(name: str, fails: type[Exception] | None = None) -> str:
        runs.append((name, db.peewee.in_transaction()))
        Meta.insert(key=name, value="stored").execute()
        if fails is not None and [n for n, _ in runs].count(name) == 1:
            raise fails(f"{name} failed")
        return name

    async def main() -> list[Any]:
        release = threading.Event()
        held = db.start(lambda: release.wait(30))
        recording = asyncio.gather(group.run(record, "a"), group.run(record, "deadlocked", peewee.OperationalError),
                                   group.run(record, "refused", ValueError), group.run(record, "d"),
                                   return_exceptions=True)
        while group.waiting < 4:
            await asyncio.sleep(0.01)
        release.set()
        await held
        return await recording

    try:
        results = asyncio.run(main())
        assert results[0] == "a" and results[1] == "deadlocked" and results[3] == "d"
        assert isinstance(results[2], ValueError)
        assert runs == [("a", True), ("deadlocked", True), ("refused", True), ("d", True), ("deadlocked", False)]
        assert db.run_sync(lambda: sorted(m.key for m in Meta.select().where(Meta.value == "stored"))) == [
            "a", "d", "deadlocked"]
        assert (group.metrics.group_commit_size.count, group.metrics.group_commit_size.total) == (1, 4)
    finally:
        db.close()
