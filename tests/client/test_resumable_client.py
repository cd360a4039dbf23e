"""Resumable uploads through a fault-injecting proxy: cut connections resume from the server's offset."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import pytest

from lockr_local import errors
from lockr_local.client import LockrClient, UploadSession
from lockr_local.transfer import RetryPolicy
from tests.client.conftest import FAST_RETRY, SessionEndpoint, random_file, sha256_of
from tests.cutproxy import CutProxy

MiB = 1024 * 1024
# Headers of one request and its answer are well under 1 KiB; allow generously for them.
OVERHEAD_PER_REQUEST = 2048


@pytest.fixture
def proxy(session_endpoint: SessionEndpoint) -> Iterator[CutProxy]:
    cut = CutProxy(int(session_endpoint.url.rsplit(":", 1)[1]))
    yield cut
    cut.close()


def chunked_client(url: str, token: str | None, retry: RetryPolicy = FAST_RETRY) -> LockrClient:
    return LockrClient(url, token, retry=retry, direct_limit=MiB, chunk_size=MiB)


@pytest.mark.parametrize("cuts", [
    [100],                                   # inside the first request's headers
    [700_000],                               # mid-way through the first chunk
    [MiB + 400, 3 * MiB + 10_000],           # just past a chunk boundary, then mid-chunk
    [500_000, 2_100_000, 3_900_000, 5_500_000],
])
def test_cut_uploads_resume_and_resend_at_most_one_chunk_per_cut(session_endpoint: SessionEndpoint,
                                                                 proxy: CutProxy, tmp_path: Path,
                                                                 cuts: list[int]) -> None:
    source = random_file(tmp_path / "video.bin", 6 * MiB + 12_345)
    size = source.stat().st_size
    proxy.cut_at(cuts)
    requests_made: list[int] = []
    lockr = chunked_client(proxy.url, session_endpoint.token)
    info = lockr.upload(source, progress=lambda done, total: requests_made.append(done))
    assert proxy.cuts_done == len(cuts)
    assert info.size == size and info.sha256 == sha256_of(source)
    assert session_endpoint.stored_sha256(info) == sha256_of(source)
    # Requests: ceil(size/chunk) chunks + one status query and one re-sent chunk per cut + the session POST.
    request_count = 7 + 2 * len(cuts) + 1
    resent = proxy.sent_upstream - size
    assert resent <= len(cuts) * MiB + request_count * OVERHEAD_PER_REQUEST, resent


def test_resume_upload_finishes_a_session_from_the_reported_offset(session_endpoint: SessionEndpoint,
                                                                   proxy: CutProxy, tmp_path: Path) -> None:
    source = random_file(tmp_path / "backup.tar", 5 * MiB)
    sessions: list[UploadSession] = []
    proxy.cut_at([3 * MiB + 200_000])
    impatient = chunked_client(proxy.url, session_endpoint.token, RetryPolicy(attempts=0))
    with pytest.raises(errors.ConnectionFailed):
        impatient.upload(source, on_session=sessions.append)
    first_run = proxy.sent_upstream
    offset = impatient.upload_status(sessions[0].upload_url, 5 * MiB)
    assert isinstance(offset, int) and 2 * MiB <= offset <= 3 * MiB + 200_000
    info = chunked_client(proxy.url, None).resume_upload(sessions[0].upload_url, source)
    second_run = proxy.sent_upstream - first_run
    assert second_run <= 5 * MiB - offset + 4 * OVERHEAD_PER_REQUEST
    assert session_endpoint.stored_sha256(info) == sha256_of(source)


def test_resuming_a_finished_session_returns_the_file_without_sending(session_endpoint: SessionEndpoint,
                                                                      tmp_path: Path) -> None:
    source = random_file(tmp_path / "done.bin", 2 * MiB)
    sessions: list[UploadSession] = []
    lockr = chunked_client(session_endpoint.url, session_endpoint.token)
    first = lockr.upload(source, on_session=sessions.append)
    again = lockr.resume_upload(sessions[0].upload_url, source)
    assert again.id == first.id and again.sha256 == sha256_of(source)


@pytest.mark.parametrize("chunk_size", [0, 1000, 256 * 1024 + 1, -256 * 1024])
def test_chunk_size_must_be_a_multiple_of_256_kib(chunk_size: int) -> None:
    with pytest.raises(ValueError, match="256 KiB"):
        LockrClient("http://127.0.0.1:1", chunk_size=chunk_size)


def test_a_file_object_uploads_from_its_current_position(session_endpoint: SessionEndpoint, tmp_path: Path) -> None:
    source = random_file(tmp_path / "with-header.bin", 3 * MiB)
    expected = source.read_bytes()[4096:]
    (tmp_path / "tail.bin").write_bytes(expected)
    seen: list[int] = []
    with open(source, "rb") as handle:
        handle.seek(4096)
        info = chunked_client(session_endpoint.url, session_endpoint.token).upload(
            handle, "tail.bin", resumable=True, progress=lambda done, total: seen.append(done))
    assert info.size == len(expected) and info.sha256 == sha256_of(tmp_path / "tail.bin")
    assert seen[0] == 0 and seen[-1] == len(expected)


def test_download_cut_mid_way_resumes_with_range_and_verifies(session_endpoint: SessionEndpoint,
                                                              proxy: CutProxy, tmp_path: Path) -> None:
    source = random_file(tmp_path / "film.bin", 4 * MiB)
    uploaded = chunked_client(session_endpoint.url, session_endpoint.token).upload(source)
    proxy.cut_downstream_at([MiB, 3 * MiB])
    through_proxy = chunked_client(proxy.url, session_endpoint.token)
    result = through_proxy.download(uploaded.id, tmp_path / "copy.bin")
    assert proxy.cuts_done == 2
    assert (tmp_path / "copy.bin").read_bytes() == source.read_bytes()
    assert result.sha256 == uploaded.sha256
    # After each cut the client asked for the rest only (Range from what it had), not the whole file.
    ranges = [int(m.group(1)) for head in proxy.connection_heads
              if (m := re.search(rb"\r\nRange: bytes=(\d+)-\r\n", head, re.IGNORECASE))]
    assert ranges and ranges == sorted(ranges) and 0 < ranges[0] and ranges[-1] < 4 * MiB, ranges
