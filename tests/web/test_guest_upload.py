"""What the lockr API offers guests and accounts, done in a real Chromium: a guest uploads on /upload
without an account and shares the link; a signed-in user adds a guest upload to their files by its link
or id (POST /api/v1/files/register). Upload dates are checked where the pages show them."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any, Iterator

import pytest
import requests

from tests.helpers import create_account, upload
from tests.web.browser_tools import TIMEOUT_MS, api_account, download_bytes, drop_files, sign_up
from tests.web.conftest import check_screenshot


@pytest.fixture
def context(chromium: Any, web_server: Any) -> Iterator[Any]:
    """A fresh profile (no cookies, no account) in UTC, so dates on the pages are predictable."""
    ctx = chromium.new_context(accept_downloads=True, viewport={"width": 1200, "height": 860}, timezone_id="UTC")
    ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=web_server.url)
    ctx.set_default_timeout(TIMEOUT_MS)
    yield ctx
    ctx.close()


def utc_minute(iso: str) -> str:
    """createdAt as the pages write it: 2026-11-27 14:05 (the download page adds " UTC")."""
    when = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(timezone.utc)
    return when.strftime("%Y-%m-%d %H:%M")


def file_info(base_url: str, file_id: str, auth: dict[str, str]) -> dict[str, Any]:
    response = requests.get(f"{base_url}/api/v1/files/{file_id}", headers=auth, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_guest_uploads_without_an_account_and_the_share_link_downloads_the_same_bytes(
        context, chromium, web_server, tmp_path):
    sent_headers: list[dict[str, str]] = []
    finished: dict[str, dict[str, Any]] = {}
    context.on("request", lambda request: "/api/v1/" in request.url and sent_headers.append(request.headers))

    def on_response(response: Any) -> None:
        if "/api/v1/upload/session/" in response.url and response.status == 201:
            body = response.json()
            finished[body["id"]] = body

    context.on("response", on_response)
    page = context.new_page()
    page.goto(web_server.url + "/")
    assert page.url == f"{web_server.url}/upload", "a visitor without an account lands on the upload page"
    assert "5.0 GB" in page.inner_text("#guest-terms")
    assert page.locator("header nav a[href='/upload'][aria-current='page']").count() == 1
    files = {"holiday photo.jpg": bytes(range(256)) * 4_000, "notes.txt": b"guest notes\n" * 10}
    drop_files(page, "#dropzone", files)
    links = {}
    for name in files:
        item = f'#upload-list li[data-name="{name}"]'
        page.wait_for_selector(f'{item}[data-state="done"]')
        links[name] = page.input_value(f"{item} input.share-link")
        assert links[name] == f"{web_server.url}/download/{page.get_attribute(item, 'data-id')}"
    assert sent_headers and not [h for h in sent_headers if "authorization" in h], "guests send no credentials"
    assert any(h.get("content-range", "").startswith("bytes ") for h in sent_headers), "a resumable session"
    page.click('#upload-list li[data-name="notes.txt"] button[data-action="copy"]')
    assert page.evaluate("navigator.clipboard.readText()") == links["notes.txt"]
    check_screenshot(page, tmp_path / "guest-upload.png")

    file_id = links["holiday photo.jpg"].rsplit("/", 1)[1]
    assert {body["name"] for body in finished.values()} == set(files)
    stranger = chromium.new_context(accept_downloads=True, timezone_id="UTC")
    try:
        other = stranger.new_page()
        other.goto(links["holiday photo.jpg"])
        assert other.inner_text("#file-name") == "holiday photo.jpg"
        assert other.inner_text("#file-size") == "1.0 MB"
        # The upload date: the minute the server recorded (createdAt of the session's 201), in UTC.
        assert other.inner_text("#file-date") == utc_minute(finished[file_id]["createdAt"]) + " UTC"
        uploaded = datetime.strptime(other.inner_text("#file-date"), "%Y-%m-%d %H:%M UTC")
        assert abs((datetime.now(timezone.utc) - uploaded.replace(tzinfo=timezone.utc)).total_seconds()) < 180
        check_screenshot(other, tmp_path / "guest-download.png")
        body, suggested = download_bytes(other, "#download-button")
        assert body == files["holiday photo.jpg"]
        assert finished[file_id]["sha256"] == hashlib.sha256(body).hexdigest()
        assert suggested == "holiday photo.jpg"
    finally:
        stranger.close()


@pytest.mark.parametrize("form", ["share link", "download url", "bare id"])
def test_signed_in_user_adds_a_guest_upload_by_its_link_and_sees_it_listed(context, web_server, tmp_path, form):
    guest_file = upload(web_server.url, b"found on a guest upload\n" * 40, "minutes.txt").json()
    typed = {"share link": guest_file["pageUrl"], "download url": guest_file["downloadUrl"],
             "bare id": guest_file["id"].upper()}[form]
    page = context.new_page()
    username = sign_up(page, web_server.url)
    page.goto(f"{web_server.url}/files")
    page.wait_for_selector("#files-empty:not([hidden])")
    page.fill("#register-input", typed)
    page.fill("#register-claim", guest_file["claimToken"])  # uploaded elsewhere: the code is typed in
    page.click("#register-form button[type=submit]")
    row = f'#files-table tr[data-id="{guest_file["id"]}"]'
    page.wait_for_selector(row)
    assert "Added minutes.txt" in page.inner_text("#register-message")
    cells = page.inner_text(row)
    account = api_account(web_server.url, username)
    owned = file_info(web_server.url, guest_file["id"], account.auth)
    assert owned["createdAt"] == guest_file["createdAt"]
    assert "minutes.txt" in cells and "960 B" in cells and "local" in cells and "open" in cells
    assert page.inner_text(f'{row} td[data-label="Uploaded"]') == utc_minute(guest_file["createdAt"])
    check_screenshot(page, tmp_path / "files-registered.png")
    # It stays listed after a reload (the account owns it now) and counts towards the storage used.
    page.reload()
    page.wait_for_selector(row)
    page.wait_for_selector("#usage:has-text('960 B of')")


def test_adding_an_unknown_or_claimed_id_says_why_and_lists_nothing(context, web_server):
    page = context.new_page()
    sign_up(page, web_server.url)
    page.goto(f"{web_server.url}/files")
    cases = [("not a link at all", "neither a download link"), ("0" * 32, "No unclaimed file has that id")]
    first = upload(web_server.url, b"mine now", "claimed.txt").json()
    other = create_account(web_server.url)
    assert requests.post(f"{web_server.url}/api/v1/files/register", json={"id": first["id"], "claimToken":
                         first["claimToken"]}, headers=other.auth, timeout=10).status_code == 200
    cases.append((first["pageUrl"], "No unclaimed file has that id"))
    # Someone else's guest upload, known only by its share link: the link is not enough.
    cases.append((upload(web_server.url, b"not yours", "theirs.txt").json()["pageUrl"], "needs its claimToken"))
    for typed, reason in cases:
        page.fill("#register-input", typed)
        page.click("#register-form button[type=submit]")
        page.wait_for_selector(f"#register-message.error:has-text('{reason}')")
    assert page.locator("#files-table tr[data-id]").count() == 0


def test_guest_upload_over_the_guest_limit_shows_the_servers_reason(chromium, server_factory):
    small = server_factory(guest_max_object="4KB")
    ctx = chromium.new_context()
    try:
        page = ctx.new_page()
        page.goto(f"{small.url}/upload")
        assert "4.0 KB" in page.inner_text("#guest-terms")
        drop_files(page, "#dropzone", {"fits.txt": b"a" * 1000, "too big.bin": b"b" * 5000})
        page.wait_for_selector('#upload-list li[data-name="fits.txt"][data-state="done"]')
        page.wait_for_selector('#upload-list li[data-name="too big.bin"][data-state="failed"]')
        assert "guests may upload at most 4.0 KB" in page.inner_text('#upload-list li[data-name="too big.bin"] .status')
        assert page.locator('#upload-list li[data-name="too big.bin"] input.share-link').count() == 0
    finally:
        ctx.close()


def test_upload_page_fits_a_phone_screen_with_its_share_links(chromium, web_server, tmp_path):
    phone = chromium.new_context(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True,
                                 device_scale_factor=2)
    try:
        page = phone.new_page()
        page.goto(f"{web_server.url}/upload")
        drop_files(page, "#dropzone", {"a rather long file name for a small screen.pdf": b"%PDF-1.4\n" * 50})
        page.wait_for_selector("#upload-list li[data-state='done'] input.share-link")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"/upload scrolls sideways by {overflow}px on a phone"
        check_screenshot(page, tmp_path / "phone-upload.png")
    finally:
        phone.close()


def test_the_guest_uploader_adds_the_file_after_signing_in_and_a_stranger_with_the_link_cannot(
        context, chromium, web_server):
    page = context.new_page()
    page.goto(f"{web_server.url}/upload")
    drop_files(page, "#dropzone", {"keep me.txt": b"kept in an account later\n"})
    item = '#upload-list li[data-name="keep me.txt"]'
    page.wait_for_selector(f'{item}[data-state="done"] input.claim-code')
    link = page.input_value(f"{item} input.share-link")
    file_id = page.get_attribute(item, "data-id")
    claim = page.input_value(f"{item} input.claim-code")
    assert len(claim) >= 22 and claim not in link

    stranger_ctx = chromium.new_context()
    try:
        stranger = stranger_ctx.new_page()
        sign_up(stranger, web_server.url)
        stranger.goto(f"{web_server.url}/files")
        stranger.fill("#register-input", link)
        stranger.click("#register-form button[type=submit]")
        stranger.wait_for_selector("#register-message.error:has-text('needs its claimToken')")
        assert stranger.locator("#files-table tr[data-id]").count() == 0
    finally:
        stranger_ctx.close()

    username = sign_up(page, web_server.url)  # the same browser: it remembers the claim code
    page.goto(f"{web_server.url}/files")
    page.fill("#register-input", link)
    page.click("#register-form button[type=submit]")
    page.wait_for_selector(f'#files-table tr[data-id="{file_id}"]')
    assert "Added keep me.txt" in page.inner_text("#register-message")
    assert file_info(web_server.url, file_id, api_account(web_server.url, username).auth)["name"] == "keep me.txt"
    assert page.evaluate(f"localStorage.getItem('lockr-claim:{file_id}')") is None  # spent, forgotten
