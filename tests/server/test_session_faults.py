"""Sessions under faults: cut/reset/stalled connections (a TCP proxy), kill -9 restarts, expiry and reaping."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.faultproxy import FaultProxy
from tests.helpers import ServerProcess, create_account, error_code, wait_for
from tests.server.session_tools import (
    ChunkUploader, download, open_session, put_chunk, sha256, status, stored_offset,
)

KIB = 1024
CHUNK = 256 * KIB
DATA = bytes((i * 7 + i // 251) % 256 for i in range(2 * 1024 * KIB + 123))  # 2 MiB + 123 bytes
HEADERS_AT_MOST = 1024  # one request's header block, counted by the proxy with the body


def via(proxy: FaultProxy, url: str) -> str:
    parts = urlsplit(url)
    return f"{proxy.url}{parts.path}"


def account_info(base_url: str, account: Any) -> dict[str, Any]:
    return dict(requests.get(f"{base_url}/api/v1/account", headers=account.auth, timeout=30).json())


def wait_until_recorded(server: Any, uploader: ChunkUploader) -> None:
    """Every chunk request claims the session once; when all claims ended, the cut one was recorded.
    (A status query waits for a writer that holds the session, but cannot know of one not yet parsed.)"""
    live = server.ctx.sessions.live
    wait_for(lambda: live.releases >= uploader.attempts, message="the cut request to be recorded")


# -- the fault proxy --------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["close", "reset"])
@pytest.mark.parametrize("cut_at", [100 * KIB, CHUNK + 5 * KIB, 3 * CHUNK + 77_777, 7 * CHUNK + 200 * KIB])
def test_cut_chunk_keeps_the_durable_prefix_and_resumes_from_the_reported_offset(server, action, cut_at):
    session = open_session(server.url, len(DATA))
    with FaultProxy(int(server.url.rsplit(":", 1)[1])) as proxy:
        proxy.arm(after=cut_at, action=action)
        uploader = ChunkUploader(via(proxy, session["uploadUrl"]), DATA, CHUNK)
        if action == "close":
            # The figure below is exact only once the server has read up to the FIN and recorded it.
            uploader.before_recover = lambda: wait_until_recorded(server, uploader)
        file = uploader.run()
    assert proxy.fired and uploader.interruptions == 1
    resumed_at = uploader.offsets_after_interruption[0]
    whole_chunks_before_cut = (cut_at // (CHUNK + HEADERS_AT_MOST)) * CHUNK
    assert whole_chunks_before_cut <= resumed_at <= cut_at
    if action == "close":
        # Every byte the server read before the FIN was made durable and counted.
        assert resumed_at >= cut_at - (cut_at // CHUNK + 1) * HEADERS_AT_MOST
    # A FIN lets the server read every byte that crossed the proxy: at most the cut chunk goes again.
    # An RST makes both kernels drop what sat in socket buffers, and on a loaded machine the client may
    # have pushed most of the next chunk into them before it sees the reset: allow one chunk more.
    assert 0 <= uploader.resent <= (CHUNK if action == "close" else 2 * CHUNK)
    assert file["sha256"] == sha256(DATA)
    assert sha256(download(file)) == sha256(DATA)


def test_stalled_connection_times_out_then_the_upload_resumes(server):
    session = open_session(server.url, len(DATA))
    with FaultProxy(int(server.url.rsplit(":", 1)[1])) as proxy:
        proxy.arm(after=2 * CHUNK + 50 * KIB, action="stall", stall_seconds=1.5)
        uploader = ChunkUploader(via(proxy, session["uploadUrl"]), DATA, CHUNK, timeout=(5.0, 0.5))
        file = uploader.run()
    assert uploader.interruptions >= 1
    assert uploader.resent <= uploader.interruptions * CHUNK
    assert sha256(download(file)) == sha256(DATA)


def test_link_that_dies_silently_is_dropped_after_the_idle_timeout_keeping_its_bytes(server_factory):
    srv = server_factory(body_idle_timeout=0.5)
    session = open_session(srv.url, len(DATA))
    with FaultProxy(int(srv.url.rsplit(":", 1)[1])) as proxy:
        # Neither FIN nor RST ever reaches the server: only its idle timeout can free the session.
        proxy.arm(after=CHUNK + 100 * KIB, action="stall", stall_seconds=60)
        uploader = ChunkUploader(via(proxy, session["uploadUrl"]), DATA, CHUNK, timeout=(5.0, 2.0))
        file = uploader.run()
    assert uploader.interruptions >= 1
    assert max(uploader.offsets_after_interruption) > CHUNK, "the stalled request's bytes were kept"
    assert uploader.resent <= uploader.interruptions * CHUNK
    assert sha256(download(file)) == sha256(DATA)


def test_google_style_chunks_through_many_cuts_resend_at_most_a_chunk_each(server):
    session = open_session(server.url, len(DATA))
    with FaultProxy(int(server.url.rsplit(":", 1)[1])) as proxy:
        uploader = ChunkUploader(via(proxy, session["uploadUrl"]), DATA, CHUNK)
        cuts = 0

        def cut_again() -> None:
            nonlocal cuts
            if cuts < 3:
                cuts += 1
                proxy.arm(after=CHUNK + 33_333 * cuts, action="reset" if cuts % 2 else "close")

        uploader.before_recover = cut_again
        proxy.arm(after=CHUNK // 2, action="close")
        file = uploader.run()
    assert uploader.interruptions == 4
    # Two cuts were FINs (at most the cut chunk again each) and two were RSTs, which also drop what sat
    # in socket buffers (see the single-cut test above): one chunk more for each reset.
    assert uploader.resent <= 2 * CHUNK + 2 * (2 * CHUNK)
    assert sha256(download(file)) == sha256(DATA)


# -- server restarts --------------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Any:
    process = ServerProcess(tmp_path / "data")
    process.start()
    yield process
    process.stop()


def test_kill_9_mid_upload_loses_no_persisted_bytes(served):
    account = create_account(served.url)
    session = open_session(served.url, len(DATA), account=account)
    url = session["uploadUrl"]
    for first in range(0, 3 * CHUNK, CHUNK):
        assert put_chunk(url, DATA[first:first + CHUNK], first, len(DATA)).status_code == 308
    # A fourth chunk is half on the wire when the server dies.
    parts = urlsplit(url)
    head = (f"PUT {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Length: {CHUNK}\r\n"
            f"Content-Range: bytes {3 * CHUNK}-{4 * CHUNK - 1}/{len(DATA)}\r\n\r\n").encode()
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as cut:
        cut.sendall(head + DATA[3 * CHUNK:3 * CHUNK + 100 * KIB])
        served.kill()
    served.start(served.port)

    after = status(url, len(DATA))
    assert after.status_code == 308
    assert stored_offset(after) == 3 * CHUNK
    assert account_info(served.url, account)["reserved"] == len(DATA)
    file = ChunkUploader(url, DATA, CHUNK).run()
    assert file["sha256"] == sha256(DATA)
    assert sha256(download(file, account)) == sha256(DATA)
    info = account_info(served.url, account)
    assert (info["used"], info["reserved"]) == (len(DATA), 0)


def test_graceful_stop_records_what_the_chunk_in_flight_stored(served):
    session = open_session(served.url, len(DATA))
    url = session["uploadUrl"]
    assert put_chunk(url, DATA[:CHUNK], 0, len(DATA)).status_code == 308
    partial = served.data_dir / "blobs" / "partial" / url.rsplit("/", 1)[1]
    parts = urlsplit(url)
    in_flight = DATA[CHUNK:]
    head = (f"PUT {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Length: {len(in_flight)}\r\n"
            f"Content-Range: bytes {CHUNK}-{len(DATA) - 1}/{len(DATA)}\r\n\r\n").encode()
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as cut:
        cut.sendall(head + in_flight[:1536 * KIB])
        # The server writes in 1 MiB buffers: once the first one is on disk, the body is being read.
        wait_for(lambda: partial.stat().st_size >= CHUNK + 1024 * KIB, message="the chunk to reach the disk")
        assert served.stop() == 0
    served.start(served.port)
    resumed_at = stored_offset(status(url, len(DATA)))
    assert CHUNK + 1024 * KIB <= resumed_at <= CHUNK + 1536 * KIB, "SIGTERM kept the in-flight chunk's bytes"
    file = ChunkUploader(url, DATA, CHUNK).run()
    assert sha256(download(file)) == sha256(DATA)


def test_crash_between_moving_the_bytes_and_recording_the_file_recovers(tmp_path):
    crashing = ServerProcess(tmp_path / "data", env={"LOCKR_CRASH_POINT": "after_session_blob_commit"}).start()
    session = open_session(crashing.url, len(DATA))
    url = session["uploadUrl"]
    last = len(DATA) - len(DATA) % CHUNK
    for first in range(0, last, CHUNK):
        assert put_chunk(url, DATA[first:first + CHUNK], first, len(DATA)).status_code == 308
    with pytest.raises(requests.ConnectionError):
        put_chunk(url, DATA[last:], last, len(DATA))
    wait_for(lambda: crashing.proc is not None and crashing.proc.poll() is not None, message="the crash")
    port = crashing.port
    crashing.kill()

    healthy = ServerProcess(tmp_path / "data").start(port)
    try:
        response = status(url, len(DATA))
        assert response.status_code == 308
        assert stored_offset(response) == last
        file = put_chunk(url, DATA[last:], last, len(DATA)).json()
        assert file["sha256"] == sha256(DATA)
        assert download(file) == DATA
    finally:
        healthy.stop()


# -- expiry -----------------------------------------------------------------------------------------


def test_expired_session_answers_410_until_reaped_then_404_and_releases_quota(server_factory):
    srv = server_factory(session_expiry=2)
    account = create_account(srv.url)
    session = open_session(srv.url, len(DATA), account=account)
    url = session["uploadUrl"]
    assert put_chunk(url, DATA[:CHUNK], 0, len(DATA)).status_code == 308
    assert account_info(srv.url, account)["reserved"] == len(DATA)

    wait_for(lambda: status(url).status_code == 410, message="the session to expire")
    assert error_code(status(url)) == "gone"
    assert error_code(put_chunk(url, DATA[CHUNK:2 * CHUNK], CHUNK, len(DATA))) == "gone"

    assert srv.ctx.sessions.reap_at_startup() == 1
    assert status(url).status_code == 404
    assert list(srv.ctx.blobs.partial_dir("local").iterdir()) == []
    assert account_info(srv.url, account)["reserved"] == 0

    fresh = requests.put(open_session(srv.url, len(DATA), account=account)["uploadUrl"], data=DATA).json()
    assert sha256(download(fresh, account)) == sha256(DATA)


def test_periodic_reaper_deletes_expired_sessions_while_serving(tmp_path):
    # Expiry long enough for the set-up below even on a loaded machine; the reaper sweeps every second.
    process = ServerProcess(tmp_path / "data", env={"LOCKR_SESSION_EXPIRY": "4", "LOCKR_REAP_INTERVAL": "1"})
    process.start()
    try:
        account = create_account(process.url)
        abandoned = open_session(process.url, len(DATA), account=account)
        assert put_chunk(abandoned["uploadUrl"], DATA[:CHUNK], 0, len(DATA)).status_code == 308
        finished = requests.put(open_session(process.url, 5, account=account)["uploadUrl"], data=b"kept!").json()
        partial_dir = tmp_path / "data" / "blobs" / "partial"
        assert len(list(partial_dir.iterdir())) == 1

        # An expired session answers 404 at once; its partial file goes on the reaper's next sweep.
        wait_for(lambda: status(abandoned["uploadUrl"]).status_code == 404 and not list(partial_dir.iterdir()),
                 timeout=20, message="the reaper to delete the expired session and its partial file")
        info = account_info(process.url, account)
        assert (info["reserved"], info["used"]) == (0, 5)
        assert download(finished, account) == b"kept!"
    finally:
        process.stop()


def test_startup_removes_partial_files_no_session_owns(tmp_path):
    partial_dir = tmp_path / "data" / "blobs" / "partial"
    partial_dir.mkdir(parents=True)
    (partial_dir / ("f" * 32)).write_bytes(b"left by a crash")
    process = ServerProcess(tmp_path / "data").start()
    try:
        assert list(partial_dir.iterdir()) == []
    finally:
        process.stop()


def test_after_a_restart_the_stored_prefix_is_rehashed_once(tmp_path, monkeypatch):
    from lockr_local.server import filestore
    from tests.conftest import make_settings
    from tests.helpers import ThreadedServer

    rehashed: list[int] = []
    real_rehash = filestore._rehash

    def counting_rehash(fd: int, length: int, rclone_digests: bool) -> Any:
        rehashed.append(length)
        return real_rehash(fd, length, rclone_digests)

    monkeypatch.setattr(filestore, "_rehash", counting_rehash)
    settings = make_settings(tmp_path / "data")
    first = ThreadedServer(settings).start()
    session = open_session(first.url, len(DATA))
    for offset in (0, CHUNK):
        assert put_chunk(session["uploadUrl"], DATA[offset:offset + CHUNK], offset, len(DATA)).status_code == 308
    first.stop()
    assert [n for n in rehashed if n] == []

    second = ThreadedServer(settings).start()
    try:
        url = f"{second.url}{urlsplit(session['uploadUrl']).path}"
        file = ChunkUploader(url, DATA, CHUNK).run()
        assert [n for n in rehashed if n] == [2 * CHUNK], "only the first append after the restart re-reads"
        assert file["sha256"] == sha256(DATA)
        assert sha256(download(file)) == sha256(DATA)
    finally:
        second.stop()


# -- a full disk ------------------------------------------------------------------------------------


def test_session_larger_than_the_free_disk_is_refused_with_507(server_factory, small_disk):
    srv = server_factory(regions=f"local={small_disk}")
    response = requests.post(f"{srv.url}/api/v1/upload/session", json={"name": "huge.bin", "size": 4_000_000})
    assert response.status_code == 507
    assert error_code(response) == "insufficient_storage"


def test_disk_filling_up_mid_chunk_keeps_the_stored_prefix(server_factory, small_disk):
    srv = server_factory(regions=f"local={small_disk}")
    account = create_account(srv.url)
    data = bytes(range(256)) * 8192  # 2 MiB
    session = open_session(srv.url, len(data), account=account)
    url = session["uploadUrl"]
    assert put_chunk(url, data[:CHUNK * 2], 0, len(data)).status_code == 308
    filler = requests.post(f"{srv.url}/api/v1/upload", data=b"f" * 1_400_000,
                           headers={"x-file-name": "filler.bin", **account.auth})
    assert filler.status_code == 201, filler.text

    response = put_chunk(url, data[CHUNK * 2:], CHUNK * 2, len(data))
    assert response.status_code == 507
    assert error_code(response) == "insufficient_storage"
    assert stored_offset(status(url)) == CHUNK * 2

    assert requests.delete(f"{srv.url}/api/v1/files/{filler.json()['id']}", headers=account.auth).status_code == 204
    assert requests.delete(f"{srv.url}/api/v1/trash", headers=account.auth).status_code == 200  # frees the disk
    file = put_chunk(url, data[CHUNK * 2:], CHUNK * 2, len(data)).json()
    assert file["sha256"] == sha256(data)
    assert download(file, account) == data
