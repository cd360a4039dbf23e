"""Small files in one request with an Idempotency-Key: a retry after a cut answer stores one file, and an endpoint
that does not advertise Accept-Idempotency-Key gets today's uploads (direct below direct_limit, else sessions)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import pytest

from lockr_local.client import LockrClient
from tests.client.conftest import FAST_RETRY, Cli, random_file
from tests.cutproxy import CutProxy
from tests.helpers import Account, ThreadedServer

KIB = 1024
MIB = 1024 * KIB


@pytest.fixture
def proxy(server: ThreadedServer) -> Iterator[CutProxy]:
    cutting = CutProxy(int(server.url.rsplit(":", 1)[1]))
    yield cutting
    cutting.close()


def keys_sent(proxy: CutProxy) -> list[str]:
    """The Idempotency-Key of each connection's first request (the retry after a cut opens a new one)."""
    return [match.group(1).decode() for head in proxy.connection_heads
            if (match := re.search(rb"\r\nIdempotency-Key: ([^\r]+)\r\n", head))]


def test_a_retry_after_a_cut_answer_stores_one_file(proxy: CutProxy, account: Account, tmp_path: Path) -> None:
    """The server stores the file, then the connection drops before its answer reaches the client: the
    client's retry carries the same key and gets the first file back, not a second copy."""
    source = random_file(tmp_path / "note.bin", 10 * KIB)
    proxy.cut_downstream_at([1])  # the first byte of the first answer, then a reset
    with LockrClient(proxy.url, account.token, retry=FAST_RETRY) as client:
        info = client.upload(source)
        listed = client.list_files()
    assert proxy.cuts_done == 1
    assert [f.id for f in listed] == [info.id]
    keys = keys_sent(proxy)
    assert len(keys) == 2 and keys[0] == keys[1], keys  # one key, sent again on the retry


def test_each_upload_gets_a_fresh_key(proxy: CutProxy, account: Account, tmp_path: Path) -> None:
    """Two uploads of the same bytes are two files: the key is per upload, not per content."""
    source = random_file(tmp_path / "same.bin", 10 * KIB)
    with LockrClient(proxy.url, account.token, retry=FAST_RETRY) as client:
        client.http.headers["Connection"] = "close"  # one connection per request: each head is recorded
        first, second = client.upload(source), client.upload(source)
        assert first.id != second.id and len(client.list_files()) == 2
    keys = keys_sent(proxy)
    assert len(keys) == 2 and keys[0] != keys[1], keys


@pytest.mark.parametrize("advertised,session_expected", [(True, True), (False, False)],
                         ids=["advertised: a session", "not advertised: one POST as before"])
def test_a_file_above_small_file_max_goes_through_a_session_only_where_keys_are_kept(
        proxy: CutProxy, account: Account, tmp_path: Path, advertised: bool, session_expected: bool) -> None:
    """Below direct_limit but above small_file_max: where the endpoint keeps keys, larger files use sessions;
    where it does not advertise them, the client uploads as it always did (one POST below direct_limit)."""
    if not advertised:
        proxy.hide_response_header("Accept-Idempotency-Key")
    source = random_file(tmp_path / "photo.bin", MIB)
    sessions: list[object] = []
    with LockrClient(proxy.url, account.token, retry=FAST_RETRY, small_file_max=256 * KIB) as client:
        info = client.upload(source, on_session=sessions.append)
        assert client.keeps_idempotency_keys() is advertised
    assert info.size == MIB
    assert bool(sessions) is session_expected


def test_a_small_file_is_one_request_and_teaches_the_client_that_keys_are_kept(
        server: ThreadedServer, account: Account, tmp_path: Path) -> None:
    source = random_file(tmp_path / "a.bin", 10 * KIB)
    with LockrClient(server.url, account.token, retry=FAST_RETRY) as client:
        assert client.accepts_idempotency_key is None
        sessions: list[object] = []
        client.upload(source, on_session=sessions.append)
        assert sessions == [] and client.accepts_idempotency_key is True


def test_cli_upload_retried_after_a_cut_answer_lists_one_file(proxy: CutProxy, account: Account, cli: Cli,
                                                              tmp_path: Path) -> None:
    source = random_file(tmp_path / "report.txt", 10 * KIB)
    proxy.cut_downstream_at([1])
    up = cli.run("upload", str(source), "--endpoint", proxy.url, LOCKR_TOKEN=account.token)
    assert up.returncode == 0, up.stderr
    assert proxy.cuts_done == 1
    with LockrClient(proxy.url, account.token) as client:
        assert [f.name for f in client.list_files()] == ["report.txt"]
