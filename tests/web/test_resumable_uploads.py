"""Resumable uploads from /files in a real Chromium: a dropped connection and a page reload both resume
from what the server durably holds (GCS-style sessions, 256 KiB chunks), never from the start."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
import requests

from tests.web.browser_tools import TIMEOUT_MS, api_account, sign_up


@pytest.fixture
def context(chromium: Any, web_server: Any) -> Iterator[Any]:
    ctx = chromium.new_context(viewport={"width": 1200, "height": 860})
    ctx.set_default_timeout(TIMEOUT_MS)
    yield ctx
    ctx.close()


def make_file_in_page(page: Any, name: str, size: int) -> None:
    """Keeps a File in the page (window.testFile) with a fixed lastModified, as re-choosing it would give."""
    page.evaluate("""([name, size]) => {
        const bytes = new Uint8Array(size);
        for (let i = 0; i < size; i++) bytes[i] = (i * 31 + (i >> 8)) & 255;
        window.testFile = new File([bytes], name, {type: "application/octet-stream", lastModified: 1700000000000});
    }""", [name, size])


def drop_test_file(page: Any) -> None:
    page.eval_on_selector("#dropzone", """zone => {
        const transfer = new DataTransfer();
        transfer.items.add(window.testFile);
        zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
    }""")


def expected_bytes(size: int) -> bytes:
    return bytes((i * 31 + (i >> 8)) & 255 for i in range(size))


def chunk_ranges(requests_seen: list[str]) -> list[str]:
    return [r for r in requests_seen if r.startswith("bytes ") and not r.startswith("bytes */")]


def test_upload_resumes_after_the_connection_drops(context, web_server):
    page = context.new_page()
    username = sign_up(page, web_server.url)
    page.goto(f"{web_server.url}/files")
    page.evaluate("LockrUpload.settings.chunkSize = LockrUpload.QUANTUM")
    size = 5 * 256 * 1024 + 1000
    make_file_in_page(page, "flaky.bin", size)
    ranges: list[str] = []
    dropped: list[str] = []

    def on_put(route: Any) -> None:
        content_range = route.request.headers.get("content-range", "")
        ranges.append(content_range)
        if content_range.startswith("bytes 524288-") and not dropped:
            dropped.append(content_range)
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/api/v1/upload/session/*", on_put)
    drop_test_file(page)
    page.wait_for_selector('#upload-list li[data-name="flaky.bin"][data-state="done"]')
    assert dropped, "the third chunk's connection was cut"
    after_drop = ranges[ranges.index(dropped[0]) + 1:]
    assert after_drop[0].startswith("bytes */"), "after the drop the page asks what the server holds"
    assert chunk_ranges(after_drop)[0].startswith("bytes 524288-"), "and resends only what was lost"
    account = api_account(web_server.url, username)
    file = requests.get(f"{web_server.url}/api/v1/files", headers=account.auth).json()["files"][0]
    assert requests.get(file["downloadUrl"], headers=account.auth).content == expected_bytes(size)


def test_upload_resumes_after_a_page_reload(context, web_server):
    page = context.new_page()
    username = sign_up(page, web_server.url)
    page.goto(f"{web_server.url}/files")
    page.evaluate("LockrUpload.settings.chunkSize = LockrUpload.QUANTUM")
    size = 6 * 256 * 1024
    make_file_in_page(page, "big upload.bin", size)
    stalled: list[str] = []

    def stall_after_two_chunks(route: Any) -> None:
        content_range = route.request.headers.get("content-range", "")
        if content_range.startswith("bytes 524288-") or stalled:
            stalled.append(content_range)
            route.abort("internetdisconnected")
        else:
            route.continue_()

    page.route("**/api/v1/upload/session/*", stall_after_two_chunks)
    drop_test_file(page)
    page.wait_for_selector('#upload-list li[data-name="big upload.bin"] .status:has-text("retrying")')
    page.unroute("**/api/v1/upload/session/*")

    ranges: list[str] = []
    page.on("request", lambda request: "/api/v1/upload/session/" in request.url
            and ranges.append(request.headers.get("content-range", "")))
    page.reload()
    page.evaluate("LockrUpload.settings.chunkSize = LockrUpload.QUANTUM")
    make_file_in_page(page, "big upload.bin", size)
    drop_test_file(page)
    item = '#upload-list li[data-name="big upload.bin"]'
    page.wait_for_selector(f'{item}[data-state="done"]')
    assert page.get_attribute(item, "data-resumed-from") == str(2 * 256 * 1024)
    assert chunk_ranges(ranges)[0].startswith("bytes 524288-"), ranges
    account = api_account(web_server.url, username)
    listed = requests.get(f"{web_server.url}/api/v1/files", headers=account.auth).json()["files"]
    assert [f["name"] for f in listed] == ["big upload.bin"]
    assert requests.get(listed[0]["downloadUrl"], headers=account.auth).content == expected_bytes(size)
    assert page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('lockr-upload:')).length") == 0
