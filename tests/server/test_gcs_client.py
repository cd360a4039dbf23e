"""Google's own resumable-upload client (google-cloud-storage's `_media`) against lockr-local sessions.

GCS answers the last chunk with 200 and the client accepts only 200 or 308 there; lockr's contract
answers 201. `LockrTransport` reports that one 201 as 200 (and counts it); everything else — the
session creation (its POST with X-Upload-Content-* headers, the Location header), every 308 and
Range, its automatic retry of a cut chunk, `recover()` with `bytes */*` — is Google's code unchanged.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
import requests
from google.cloud.storage._media.requests import ResumableUpload
from google.cloud.storage.exceptions import InvalidResponse
from google.cloud.storage.retry import DEFAULT_RETRY

from tests.faultproxy import FaultProxy
from tests.helpers import create_account
from tests.server.session_tools import download, open_session, put_chunk, sha256

KIB = 1024
CHUNK = 256 * KIB  # the library insists on multiples of 256 KiB, as GCS does
DATA = bytes((i * 31 + i // 1021) % 256 for i in range(5 * CHUNK + 4321))
# The library's own retry policy (connection errors, 5xx), with short waits for a loopback server.
QUICK_RETRIES = DEFAULT_RETRY.with_delay(initial=0.01, maximum=0.05, multiplier=1.0).with_timeout(10.0)


class LockrTransport:
    """A requests.Session for Google's client; the only change: lockr's final 201 reads as GCS's 200."""

    def __init__(self) -> None:
        self.session = requests.Session()
        self.completions = 0

    def request(self, method: str, url: str, data: Any = None, headers: Any = None, timeout: Any = None,
                **kwargs: Any) -> requests.Response:
        response = self.session.request(method, url, data=data, headers=headers, timeout=timeout, **kwargs)
        if method == "PUT" and response.status_code == 201:
            self.completions += 1
            response.status_code = 200
        return response


def start_upload(base_url: str, headers: dict[str, str] | None = None,
                 transport: Any = None) -> tuple[ResumableUpload, Any]:
    transport = transport or LockrTransport()
    upload = ResumableUpload(f"{base_url}/api/v1/upload/session", CHUNK, checksum=None, headers=headers,
                             retry=QUICK_RETRIES)
    # The metadata is our session body; the library adds X-Upload-Content-Type/-Length itself.
    upload.initiate(transport, io.BytesIO(DATA), {"name": "from-google.bin"}, "application/x-test")
    return upload, transport


def test_google_client_uploads_through_a_lockr_session(server):
    account = create_account(server.url)
    upload, transport = start_upload(server.url, account.auth)
    assert upload.resumable_url.startswith(f"{server.url}/api/v1/upload/session/")
    progress = []
    while not upload.finished:
        response = upload.transmit_next_chunk(transport)
        progress.append(upload.bytes_uploaded)
    assert progress == [min(n * CHUNK, len(DATA)) for n in range(1, len(progress) + 1)]
    assert transport.completions == 1
    file = response.json()
    assert (file["name"], file["type"], file["size"]) == ("from-google.bin", "application/x-test", len(DATA))
    assert file["sha256"] == sha256(DATA)
    assert sha256(download(file, account)) == sha256(DATA)


def test_google_client_sees_lockr_201_where_gcs_sends_200(server):
    upload, _ = start_upload(server.url, transport=requests.Session())
    plain = requests.Session()
    with pytest.raises(InvalidResponse) as caught:
        while not upload.finished:
            upload.transmit_next_chunk(plain)
    assert caught.value.response.status_code == 201
    assert download(caught.value.response.json()) == DATA


def test_google_client_retries_a_cut_chunk_and_lockr_skips_the_stored_bytes(server):
    with FaultProxy(int(server.url.rsplit(":", 1)[1])) as proxy:
        upload, transport = start_upload(proxy.url)
        upload.transmit_next_chunk(transport)
        # The second chunk dies half-way; the library sends the same chunk again (same Content-Range),
        # and the server keeps the half it already has, appending only the rest.
        proxy.arm(after=CHUNK // 2, action="close")
        while not upload.finished:
            response = upload.transmit_next_chunk(transport)
        assert proxy.fired
    assert transport.completions == 1
    assert download(response.json()) == DATA


def test_google_client_recover_resumes_a_session_another_process_started(server):
    session = open_session(server.url, len(DATA), "from-google.bin")
    for first in (0, CHUNK):
        assert put_chunk(session["uploadUrl"], DATA[first:first + CHUNK], first, len(DATA)).status_code == 308

    # A process that only kept the session URL: the library's own recover() asks `bytes */*`.
    transport = LockrTransport()
    upload = ResumableUpload(f"{server.url}/api/v1/upload/session", CHUNK, checksum=None, retry=QUICK_RETRIES)
    upload._resumable_url = session["uploadUrl"]
    upload._stream = io.BytesIO(DATA)
    upload._total_bytes = len(DATA)
    upload._content_type = "application/octet-stream"
    upload._invalid = True
    upload.recover(transport)
    assert upload.bytes_uploaded == 2 * CHUNK and not upload.invalid
    while not upload.finished:
        response = upload.transmit_next_chunk(transport)
    assert download(response.json()) == DATA
