"""The small-upload fast path (one database trip after the body), shared body watchdogs and read sizes."""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Any

import pytest
import requests

from tornado.httputil import HTTPHeaders

from lockr_local.server.httpserver import streams_large_body
from lockr_local.server.models import StoredFile
from tests.helpers import create_account, error_code, upload, wait_for

SMALL = os.urandom(10 * 1024)


def listed_names(base_url: str, auth: dict[str, str]) -> list[str]:
    return sorted(f["name"] for f in requests.get(f"{base_url}/api/v1/files", headers=auth).json()["files"])


def test_small_uploads_refused_by_the_burst_limit_store_nothing(server_factory: Any) -> None:
    srv = server_factory(rate_account=0.01, rate_account_burst=6)
    account = create_account(srv.url)  # signing up spends nothing of the account's allowance
    answers = [upload(srv.url, SMALL, f"burst-{index}.bin", account=account) for index in range(8)]
    stored = [a.json()["name"] for a in answers if a.status_code == 201]
    limited = [a for a in answers if a.status_code == 429]
    assert limited, [a.status_code for a in answers]
    assert error_code(limited[0]) == "rate_limited" and int(limited[0].headers["Retry-After"]) >= 1
    srv.ctx.auth.limiter._buckets.clear()  # refill, so that the listing itself is not refused
    assert listed_names(srv.url, account.auth) == sorted(stored)
    assert requests.get(f"{srv.url}/api/v1/account", headers=account.auth).json()["used"] == len(SMALL) * len(stored)


@pytest.mark.parametrize("token, code", [
    ("not-a-token", "unauthorized"),
    ("", "unauthorized"),
])
def test_small_upload_with_a_wrong_token_gets_401_and_stores_nothing(server: Any, token: str, code: str) -> None:
    owner = create_account(server.url)
    answer = requests.post(f"{server.url}/api/v1/upload", data=SMALL,
                           headers={"Authorization": f"Bearer {token}", "x-file-name": "sneaky.bin"})
    assert answer.status_code == 401 and error_code(answer) == code
    assert listed_names(server.url, owner.auth) == []
    assert server.ctx.db.run_sync(lambda: StoredFile.select().count()) == 0


def test_small_upload_to_an_unknown_region_gets_400_and_stores_nothing(server: Any) -> None:
    account = create_account(server.url)
    answer = upload(server.url, SMALL, "lost.bin", account=account, headers={"x-upload-region": "mars-1"})
    assert answer.status_code == 400
    assert listed_names(server.url, account.auth) == []


def test_small_upload_lands_in_the_asked_region(server_factory: Any, tmp_path: Any) -> None:
    srv = server_factory(regions=f"local={tmp_path / 'local'},eu-west1={tmp_path / 'eu'}")
    account = create_account(srv.url)
    asked = upload(srv.url, SMALL, "eu.bin", account=account, headers={"x-upload-region": "eu-west1"})
    default = upload(srv.url, SMALL, "home.bin", account=account)
    assert (asked.status_code, default.status_code) == (201, 201)
    assert asked.json()["region"] == "eu-west1" and default.json()["region"] == "local"
    assert requests.get(asked.json()["downloadUrl"], headers=account.auth).content == SMALL


def test_every_body_watchdog_is_released_when_its_request_ends(server: Any) -> None:
    account = create_account(server.url)
    with requests.Session() as session:
        for index in range(20):
            assert upload(server.url, SMALL, f"w-{index}.bin", account=account, session=session).status_code == 201
        assert upload(server.url, os.urandom(3 * 2**20), "big.bin", account=account,
                      session=session).status_code == 201
        refused = requests.post(f"{server.url}/api/v1/upload", data=SMALL,
                                headers={"Authorization": "Bearer wrong", "x-file-name": "x.bin"})
        assert refused.status_code == 401
    watchdogs = server.ctx.watchdogs
    assert wait_for(lambda: len(watchdogs) == 0, message="no body is watched once every request has ended")
    assert wait_for(lambda: watchdogs._timer is None, timeout=5, message="the shared timer stops when idle")


def test_small_and_large_bodies_alternate_on_one_keep_alive_connection(server: Any) -> None:
    account = create_account(server.url)
    bodies = [os.urandom(size) for size in (10 * 1024, 3 * 2**20 + 7, 100, 2 * 2**20, 64 * 1024)]
    with requests.Session() as session:
        ids = []
        for index, body in enumerate(bodies):
            answer = upload(server.url, body, f"alt-{index}.bin", account=account, session=session)
            assert answer.status_code == 201, answer.text
            ids.append(answer.json()["downloadUrl"])
        for url, body in zip(ids, bodies):
            assert session.get(url, headers=account.auth).content == body


@pytest.mark.parametrize("head, large", [
    ("Content-Length: 10240\r\n", False),
    ("content-length: 1048576\r\n", False),
    ("Content-Length: 1048577\r\n", True),
    ("Content-Length:  99999999999999999999999\r\n", True),
    ("Content-Length: 2e9\r\n", False),
    ("Transfer-Encoding: chunked\r\n", True),
    ("Transfer-Encoding: gzip, Chunked\r\n", True),
    ("Host: x\r\n", False),
])
def test_socket_reads_are_sized_by_the_body_the_head_announces(head: str, large: bool) -> None:
    assert streams_large_body(HTTPHeaders.parse(head)) is large


@pytest.mark.parametrize("size", [10 * 1024, 512 * 1024])
def test_small_files_are_never_hashed_on_the_database_thread(server_factory: Any, monkeypatch: Any,
                                                             size: int) -> None:
    from lockr_local.server import inline

    hashed_on: list[str] = []
    real = inline.inline_digests

    def recording(data: bytes, *side: Any) -> Any:
        hashed_on.append(threading.current_thread().name)
        return real(data, *side)

    monkeypatch.setattr(inline, "inline_digests", recording)
    srv = server_factory(inline_max=1024 * 1024)
    account = create_account(srv.url)
    body = os.urandom(size)
    answer = upload(srv.url, body, "hashed.bin", account=account)
    assert answer.status_code == 201
    assert answer.json()["sha256"] == hashlib.sha256(body).hexdigest()
    assert hashed_on and not any(name.startswith("lockr-db") for name in hashed_on), hashed_on
