"""The web pages in a real headless Chromium: sign up, tokens, uploads, share links, keys, safety."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
from playwright.sync_api import expect

from tests.helpers import create_account, upload
from tests.web.browser_tools import PASSWORD, TIMEOUT_MS, api_account, download_bytes, drop_files, sign_up
from tests.web.conftest import check_screenshot


@pytest.fixture
def context(chromium: Any, web_server: Any) -> Iterator[Any]:
    """A fresh browser profile (no cookies) that may use the clipboard."""
    ctx = chromium.new_context(accept_downloads=True, viewport={"width": 1200, "height": 860})
    ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=web_server.url)
    ctx.set_default_timeout(TIMEOUT_MS)
    yield ctx
    ctx.close()


def test_sign_up_shows_the_api_token_and_copy_puts_it_on_the_clipboard(context, web_server, tmp_path):
    page = context.new_page()
    username = sign_up(page, web_server.url)
    token = page.input_value("#new-token")
    assert token.startswith("lkr_")
    page.click("#copy-token")
    assert page.evaluate("navigator.clipboard.readText()") == token
    listing = requests.get(f"{web_server.url}/api/v1/files", headers={"Authorization": f"Bearer {token}"})
    assert listing.status_code == 200
    assert "0 B used of 100.0 GB" in page.inner_text("#storage-text")
    assert username in page.inner_text("h1")
    check_screenshot(page, tmp_path / "account.png")
    # Shown once: a reload no longer has it (only its hash is stored).
    page.reload()
    assert page.input_value("#new-token") == ""


def test_account_page_creates_and_revokes_tokens(context, web_server):
    page = context.new_page()
    sign_up(page, web_server.url)
    page.fill("#token-name", "laptop sync")
    page.click("#create-token-form button[type=submit]")
    page.wait_for_selector("#tokens-table tr:has-text('laptop sync')")
    token = page.input_value("#new-token")
    bearer = {"Authorization": f"Bearer {token}"}
    assert requests.get(f"{web_server.url}/api/v1/files", headers=bearer).status_code == 200
    page.click("#tokens-table tr:has-text('laptop sync') button:has-text('Revoke')")
    page.wait_for_selector("#tokens-table tr:has-text('laptop sync')", state="detached")
    assert requests.get(f"{web_server.url}/api/v1/files", headers=bearer).status_code == 401
    # This browser's own session token is marked and cannot be revoked from the list.
    assert page.locator("#tokens-table td:has-text('this browser')").count() == 1


def test_change_password_log_out_and_log_back_in(context, web_server, tmp_path):
    page = context.new_page()
    username = sign_up(page, web_server.url)
    page.fill("#current-password", "not my password")
    page.fill("#new-password", "a brand new password")
    page.click("#password-form button[type=submit]")
    page.wait_for_selector("#password-message.error")
    assert "not right" in page.inner_text("#password-message")
    page.fill("#current-password", PASSWORD)
    page.fill("#new-password", "a brand new password")
    page.click("#password-form button[type=submit]")
    page.wait_for_selector("#password-message.ok")

    page.click("#logout-button")
    page.wait_for_selector("#login-form")
    check_screenshot(page, tmp_path / "account-signed-out.png")
    page.fill("#login-identifier", username)
    page.fill("#login-password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#login-error")
    assert "Wrong" in page.inner_text("#login-error")
    check_screenshot(page, tmp_path / "account-login-error.png")
    page.fill("#login-identifier", f"{username}@example.com")
    page.fill("#login-password", "a brand new password")
    page.click("#login-form button[type=submit]")
    page.wait_for_url(f"{web_server.url}/files")
    page.wait_for_selector("#dropzone")


def test_files_page_uploads_two_dropped_files_with_progress(context, web_server, tmp_path):
    page = context.new_page()
    username = sign_up(page, web_server.url)
    page.goto(f"{web_server.url}/files")
    files = {"big photo.jpg": bytes(range(256)) * 12_000, "notes ünïcode.txt": b"hello from the browser\n"}
    drop_files(page, "#dropzone", files)
    for name in files:
        page.wait_for_selector(f'#upload-list li[data-name="{name}"][data-state="done"]')
        assert page.eval_on_selector(f'#upload-list li[data-name="{name}"] progress', "p => p.value") == 100
    for name in files:
        page.wait_for_selector(f'#files-table tr[data-name="{name}"]')
    check_screenshot(page, tmp_path / "files.png")

    account = api_account(web_server.url, username)
    listed = requests.get(f"{web_server.url}/api/v1/files", headers=account.auth).json()["files"]
    assert {f["name"]: f["sha256"] for f in listed} == {n: hashlib.sha256(d).hexdigest() for n, d in files.items()}
    row = page.inner_text('#files-table tr[data-name="big photo.jpg"]')
    assert "3.1 MB" in row and "local" in row and "open" in row


def test_share_link_opens_in_a_fresh_browser_and_downloads_the_same_bytes(context, chromium, web_server, tmp_path):
    page = context.new_page()
    sign_up(page, web_server.url)
    page.goto(f"{web_server.url}/files")
    data = b"shared bytes \x00\x01\x02" * 5000
    drop_files(page, "#dropzone", {"shared.bin": data})
    page.wait_for_selector('#files-table tr[data-name="shared.bin"]')
    page.click('#files-table tr[data-name="shared.bin"] button[data-action="share"]')
    share_link = page.evaluate("navigator.clipboard.readText()")
    assert "/download/" in share_link

    stranger = chromium.new_context(accept_downloads=True)
    try:
        other = stranger.new_page()
        other.goto(share_link)
        assert other.inner_text("#file-name") == "shared.bin"
        assert other.inner_text("#file-size") == "80.0 KB"
        assert other.locator("#passphrase").count() == 0
        check_screenshot(other, tmp_path / "download.png")
        body, suggested = download_bytes(other, "#download-button")
        assert body == data
        assert suggested == "shared.bin"
    finally:
        stranger.close()


@pytest.mark.parametrize("hashing", ["webcrypto", "pure-js fallback"])
def test_keyed_file_downloads_with_the_phrase_and_refuses_a_wrong_one(context, chromium, web_server, tmp_path,
                                                                       hashing):
    page = context.new_page()
    sign_up(page, web_server.url)
    page.goto(f"{web_server.url}/files")
    data = b"secret plans\n" * 100
    drop_files(page, "#dropzone", {"plans.txt": data})
    row = '#files-table tr[data-name="plans.txt"]'
    page.click(f'{row} button[data-action="key"]')
    page.fill("#key-phrase", "Sesame öffne dich")
    page.click("#key-save")
    page.wait_for_selector(f"{row} .badge.on")
    share_link = page.get_attribute(f"{row} td.name a", "href")

    stranger = chromium.new_context(accept_downloads=True)
    if hashing == "pure-js fallback":
        # What a browser on http://192.168.x.y sees: no crypto.subtle outside secure contexts.
        stranger.add_init_script("Object.defineProperty(Crypto.prototype, 'subtle', {get() { return undefined; }});")
    try:
        other = stranger.new_page()
        other.goto(share_link)
        assert other.evaluate("LockrHash.usesWebCrypto()") is (hashing == "webcrypto")
        other.fill("#passphrase", "sesame öffne dich")
        other.click("#download-button")
        other.wait_for_selector("#download-message.error")
        assert "key phrase is not right" in other.inner_text("#download-message")
        check_screenshot(other, tmp_path / "download-wrong-key.png")
        other.fill("#passphrase", "Sesame öffne dich")
        body, _ = download_bytes(other, "#download-button")
        assert body == data
    finally:
        stranger.close()
    # Removing the key from /files makes the file open again.
    page.click(f'{row} button[data-action="key"]')
    page.click("#key-clear")
    page.wait_for_selector(f"{row} .badge:not(.on)")
    assert requests.get(f"{web_server.url}/api/v1/download/local/{page.get_attribute(row, 'data-id')}").content == data


SHA256_VECTORS = [
    "", "abc", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
    "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
    "a" * 55, "a" * 56, "a" * 63, "a" * 64, "a" * 65, "a" * 1_000_000, "pässwörd 🔑 日本語", "open sesame",
]


def test_pure_js_sha256_matches_known_vectors(context, web_server):
    page = context.new_page()
    page.goto(f"{web_server.url}/account")
    for text in SHA256_VECTORS:
        expected = hashlib.sha256(text.encode("utf-8")).hexdigest()
        assert page.evaluate("t => LockrHash.fallbackHex(t)", text) == expected, text[:20]
        assert page.evaluate("t => LockrHash.keyHash(t)", text) == expected
    assert page.evaluate("LockrHash.fallbackHex('abc')") == \
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_uploaded_html_downloads_as_an_attachment_and_never_runs(context, web_server):
    account = create_account(web_server.url)
    html = (b"<!doctype html><title>pwned</title><script>new Image().src='/pwned-marker';"
            b"document.title='pwned';</script><svg onload=\"fetch('/pwned-svg')\"></svg>")
    response = upload(web_server.url, html, "page.html", {"Content-Type": "text/html"}, account)
    assert response.status_code == 201, response.text
    file = response.json()
    seen: list[str] = []
    context.on("request", lambda request: seen.append(request.url))

    page = context.new_page()
    page.goto(f"{web_server.url}/download/{file['id']}")
    body, suggested = download_bytes(page, "#download-button")
    assert body == html
    assert suggested == "page.html"
    # Even opened directly, the server's answer is an attachment: the browser saves it, renders nothing.
    direct = context.new_page()
    with direct.expect_download() as info:
        try:
            direct.goto(file["downloadUrl"])
        except Exception as exc:  # Chromium reports navigation to a download as an aborted navigation
            assert "Download is starting" in str(exc) or "ERR_ABORTED" in str(exc)
    assert Path(info.value.path()).read_bytes() == html
    assert direct.url == "about:blank", "the attachment never became a document"
    assert not [url for url in seen if "pwned" in url]
    assert page.title() != "pwned"
    headers = requests.get(file["downloadUrl"]).headers
    assert headers["Content-Disposition"].startswith("attachment;")
    assert "sandbox" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_cross_site_form_post_without_the_xsrf_token_is_refused(context, web_server):
    page = context.new_page()
    sign_up(page, web_server.url)
    # Another origin on the same host (a different port is same-site, so the session cookie travels
    # with the post): only the missing XSRF token can stop it.
    evil_origin = "http://127.0.0.1:9"
    page.route(f"{evil_origin}/**", lambda route: route.fulfill(status=200, content_type="text/html", body=f"""
        <form id=f method=post action="{web_server.url}/account/logout"></form>
        <script>document.getElementById('f').submit()</script>"""))
    with page.expect_response(f"{web_server.url}/account/logout") as info:
        page.goto(f"{evil_origin}/attack.html")
    assert info.value.status == 403
    page.wait_for_selector("#error-message")
    assert "security token" in page.inner_text("#error-message")
    page.goto(f"{web_server.url}/account")
    assert page.locator("#logout-button").count() == 1, "the session survived the forged logout"


def test_download_page_explains_deleted_and_unknown_files(context, web_server, tmp_path):
    account = create_account(web_server.url)
    file = upload(web_server.url, b"short lived", "gone.txt", account=account).json()
    page = context.new_page()
    page.goto(f"{web_server.url}/download/{file['id']}")
    assert requests.delete(f"{web_server.url}/api/v1/files/{file['id']}", headers=account.auth).status_code == 204
    page.click("#download-button")
    page.wait_for_selector("#download-message.error")
    assert "deleted" in page.inner_text("#download-message")

    response = page.goto(f"{web_server.url}/download/{file['id']}")
    assert response.status == 404
    assert "deleted" in page.inner_text("#missing")
    for unknown in ("0" * 32, "not-an-id"):
        response = page.goto(f"{web_server.url}/download/{unknown}")
        assert response.status == 404
        assert "No file has this link" in page.inner_text("#missing")
    check_screenshot(page, tmp_path / "download-missing.png")


def test_signed_link_made_on_the_files_page_works_in_a_fresh_browser(context, chromium, web_server):
    page = context.new_page()
    sign_up(page, web_server.url)
    page.goto(f"{web_server.url}/files")
    data = b"link me\n" * 333
    drop_files(page, "#dropzone", {"linked.txt": data})
    row = '#files-table tr[data-name="linked.txt"]'
    page.click(f'{row} button[data-action="signed"]')
    page.select_option("#link-expiry", "3600")
    page.click("#link-create")
    expect(page.locator("#link-url")).to_have_value(re.compile(r"sig="))
    url = page.input_value("#link-url")
    assert "Works until" in page.inner_text("#link-expires")
    assert requests.get(url).content == data
    page.click("#link-close")

    page.click(f'{row} button[data-action="delete"]')
    page.click(f'{row} button[data-action="delete"]')
    page.wait_for_selector(row, state="detached")
    gone = requests.get(url)
    assert gone.status_code == 403
    assert gone.json()["error"]["code"] == "link_invalid"


@pytest.mark.parametrize("path", ["/account", "/files", "/download/FILE"])
def test_pages_fit_a_phone_screen(chromium, web_server, tmp_path, path):
    phone = chromium.new_context(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True,
                                 device_scale_factor=2)
    try:
        page = phone.new_page()
        username = sign_up(page, web_server.url)
        account = api_account(web_server.url, username)
        file = upload(web_server.url, b"x" * 2048, "a rather long file name for a small screen.pdf",
                      {"Content-Type": "application/pdf"}, account).json()
        page.goto(web_server.url + path.replace("FILE", file["id"]))
        if path == "/files":
            page.wait_for_selector("#files-table tr[data-name]")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px on a phone"
        check_screenshot(page, tmp_path / f"phone{path.replace('/', '-')}.png")
    finally:
        phone.close()


def test_upload_over_quota_shows_the_servers_reason(chromium, server_factory):
    small = server_factory(default_quota="4KB")
    ctx = chromium.new_context()
    try:
        page = ctx.new_page()
        sign_up(page, small.url)
        page.goto(f"{small.url}/files")
        drop_files(page, "#dropzone", {"fits.txt": b"a" * 1000, "too big.bin": b"b" * 5000})
        page.wait_for_selector('#upload-list li[data-name="fits.txt"][data-state="done"]')
        page.wait_for_selector('#upload-list li[data-name="too big.bin"][data-state="failed"]')
        assert "quota" in page.inner_text('#upload-list li[data-name="too big.bin"] .status')
        assert page.locator("#files-table tr[data-name]").count() == 1
    finally:
        ctx.close()


def test_a_deleted_file_goes_to_the_trash_and_restore_brings_it_back_with_its_link(context, web_server, tmp_path):
    page = context.new_page()
    username = sign_up(page, web_server.url)
    page.goto(f"{web_server.url}/files")
    data = b"worth keeping\n" * 100
    drop_files(page, "#dropzone", {"keep me.txt": data, "other.txt": b"other"})
    row = '#files-table tr[data-name="keep me.txt"]'
    page.wait_for_selector(row)
    page.wait_for_selector('#files-table tr[data-name="other.txt"]')
    file_id = page.get_attribute(row, "data-id")
    share_link = f"{web_server.url}/download/{file_id}"
    assert page.locator("#trash-none").is_visible()

    page.click(f'{row} button[data-action="delete"]')
    page.click(f'{row} button[data-action="delete"]')
    page.wait_for_selector(row, state="detached")
    trashed = f'#trash-table tr[data-id="{file_id}"]'
    page.wait_for_selector(trashed)
    assert "keep me.txt" in page.inner_text(trashed) and "1.4 KB" in page.inner_text(trashed)
    expect(page.locator("#trash-usage")).to_have_text("1 file, 1.4 KB")
    assert requests.get(share_link).status_code == 404
    check_screenshot(page, tmp_path / "files-trash.png")

    page.click(f'{trashed} button[data-action="restore"]')
    page.wait_for_selector(trashed, state="detached")
    page.wait_for_selector(f'#files-table tr[data-id="{file_id}"][data-name="keep me.txt"]')
    assert page.locator("#trash-none").is_visible()
    assert requests.get(share_link).status_code == 200
    account = api_account(web_server.url, username)
    downloaded = requests.get(f"{web_server.url}/api/v1/files/{file_id}", headers=account.auth).json()["downloadUrl"]
    assert requests.get(downloaded).content == data

    other = '#files-table tr[data-name="other.txt"]'
    page.click(f'{other} button[data-action="delete"]')
    page.click(f'{other} button[data-action="delete"]')
    page.wait_for_selector('#trash-table tr[data-name="other.txt"]')
    page.click("#trash-empty")
    page.click("#trash-empty")
    page.wait_for_selector('#trash-table tr[data-name="other.txt"]', state="detached")
    assert page.locator("#trash-none").is_visible()
    trash = requests.get(f"{web_server.url}/api/v1/trash", headers=account.auth).json()
    assert trash["files"] == [] and trash["bytes"] == 0
