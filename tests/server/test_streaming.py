"""Uploads and downloads stream through the server in flat memory (pytest-tornado, in-process app)."""

from __future__ import annotations

import hashlib
import json
import tracemalloc

import pytest
from tornado.httpclient import HTTPRequest

CHUNK = 256 * 1024
TOTAL = 48 * 1024 * 1024


def pattern(index: int) -> bytes:
    return bytes([index % 251]) * CHUNK


@pytest.mark.gen_test(timeout=120)
async def test_large_upload_and_download_keep_server_memory_flat(http_client, base_url):
    async def producer(write):
        for index in range(TOTAL // CHUNK):
            await write(pattern(index))

    expected = hashlib.sha256()
    for index in range(TOTAL // CHUNK):
        expected.update(pattern(index))

    tracemalloc.start()
    try:
        response = await http_client.fetch(HTTPRequest(
            f"{base_url}/api/v1/upload", method="POST", body_producer=producer,
            headers={"x-file-name": "big.bin", "Content-Length": str(TOTAL)}, request_timeout=120))
        _, upload_peak = tracemalloc.get_traced_memory()
        file = json.loads(response.body)
        assert response.code == 201
        assert file["size"] == TOTAL
        assert file["sha256"] == expected.hexdigest()

        tracemalloc.reset_peak()
        received = hashlib.sha256()
        count = 0

        def on_chunk(chunk: bytes) -> None:
            nonlocal count
            received.update(chunk)
            count += len(chunk)

        await http_client.fetch(HTTPRequest(file["downloadUrl"], streaming_callback=on_chunk, request_timeout=120))
        _, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == TOTAL and received.hexdigest() == expected.hexdigest()
    # Client and server share this process: a buffered body would show up as >= 48 MiB here.
    assert upload_peak < 16 * 2**20, f"upload peak {upload_peak / 2**20:.1f} MiB"
    assert download_peak < 16 * 2**20, f"download peak {download_peak / 2**20:.1f} MiB"


@pytest.mark.gen_test
async def test_range_requests_return_206_with_content_range(http_client, base_url):
    data = bytes(range(256)) * 10
    response = await http_client.fetch(f"{base_url}/api/v1/upload", method="POST", body=data,
                                       headers={"x-file-name": "r.bin"})
    url = json.loads(response.body)["downloadUrl"]
    cases = {"bytes=0-9": (0, 9), "bytes=100-": (100, len(data) - 1), "bytes=-5": (len(data) - 5, len(data) - 1),
             "bytes=2500-99999": (2500, len(data) - 1)}
    for header, (first, last) in cases.items():
        part = await http_client.fetch(url, headers={"Range": header})
        assert part.code == 206
        assert part.headers["Content-Range"] == f"bytes {first}-{last}/{len(data)}"
        assert part.body == data[first:last + 1]
    unsatisfiable = await http_client.fetch(url, headers={"Range": "bytes=5000-"}, raise_error=False)
    assert unsatisfiable.code == 416
    assert unsatisfiable.headers["Content-Range"] == f"bytes */{len(data)}"
    head = await http_client.fetch(url, method="HEAD")
    assert head.headers["Content-Length"] == str(len(data)) and head.body == b""
    etag = head.headers["ETag"]
    not_modified = await http_client.fetch(url, headers={"If-None-Match": etag}, raise_error=False)
    assert not_modified.code == 304
    stale_if_range = await http_client.fetch(url, headers={"Range": "bytes=0-1", "If-Range": '"other"'})
    assert stale_if_range.code == 200 and len(stale_if_range.body) == len(data)


@pytest.mark.gen_test
async def test_uploaded_html_is_served_as_an_attachment_that_cannot_run(http_client, base_url):
    page = b"<html><script>document.title='pwned'</script></html>"
    response = await http_client.fetch(f"{base_url}/api/v1/upload", method="POST", body=page,
                                       headers={"x-file-name": "evil.html", "Content-Type": "text/html"})
    download = await http_client.fetch(json.loads(response.body)["downloadUrl"])
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in download.headers["Content-Security-Policy"]
