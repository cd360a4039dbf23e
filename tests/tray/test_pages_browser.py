"""The desktop app's setup and control pages in headless Chromium at the size of a small window: they look
like the server's web pages (same stylesheet, light and dark), label every field, show each error under
its field with the next step, and can be used from the keyboard alone. A screenshot of every state is
kept in the test's tmp folder, as the web tests keep theirs (LOCKR_KEEP_SCREENSHOTS=DIR copies them)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from lockr_local.tray.app import TrayApp
from tests.cutproxy import CutProxy
from tests.helpers import Account, ThreadedServer, wait_for
from tests.web.browser_tools import TIMEOUT_MS
from tests.web.conftest import check_screenshot

WINDOW = {"width": 420, "height": 600}
SCHEMES = ("light", "dark")
# Where the two kinds of page must agree: the design tokens, and the computed look of each component.
TOKENS = ("--bg", "--card", "--text", "--muted", "--line", "--accent", "--danger", "--ok")
STYLES = ("background-color", "color", "font-family", "font-size", "font-weight", "border-top-color",
          "border-top-left-radius", "padding-top", "padding-left")
# (what, the server's /account page when signed out, the tray's setup page)
COMPONENTS = [
    ("page", "body", "body"),
    ("top bar", ".topbar", ".topbar"),
    ("brand", ".brand", ".brand"),
    ("card", "#login-card", "main .card"),
    ("field label", "label[for=login-identifier]", "label[for=endpoint]"),
    ("text input", "#login-identifier", "#identifier"),
    ("main button", "#login-form button[type=submit]", "#save"),
]


@pytest.fixture
def shots(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "screenshots"
    folder.mkdir()
    yield folder
    keep = os.environ.get("LOCKR_KEEP_SCREENSHOTS")
    if keep:
        shutil.copytree(folder, keep, dirs_exist_ok=True)


def open_page(chromium: Any, tray: TrayApp, path: str = "/settings", scheme: str = "light") -> Any:
    """A new small browser window on the tray's page, signed in through the one-time link."""
    context = chromium.new_context(viewport=WINDOW, color_scheme=scheme)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(tray.server.open_url(path))
    return page


def computed(page: Any, selector: str) -> dict[str, str]:
    return page.eval_on_selector(selector, "(el, names) => { const s = getComputedStyle(el); "
                                           "return Object.fromEntries(names.map(n => [n, s.getPropertyValue(n)])); }",
                                 list(STYLES))


def tokens(page: Any) -> dict[str, str]:
    return page.evaluate("names => { const s = getComputedStyle(document.documentElement); "
                         "return Object.fromEntries(names.map(n => [n, s.getPropertyValue(n).trim()])); }", list(TOKENS))


def fits_the_window(page: Any) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")


def unlabelled_inputs(page: Any) -> list[str]:
    """Visible form controls without a label (a <label for> or a wrapping <label>)."""
    return page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
        .filter(el => el.type !== 'hidden' && el.offsetParent !== null && el.labels.length === 0)
        .map(el => el.id || el.name)""")


def fill_setup(page: Any, endpoint: str, identifier: str, password: str, folder: str) -> None:
    page.fill("#endpoint", endpoint)
    page.fill("#identifier", identifier)
    page.fill("#password", password)
    page.fill("#folder", folder)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_setup_page_looks_like_the_web_ui_labels_every_field_and_fits_a_small_window(
        chromium: Any, tray: TrayApp, server: ThreadedServer, shots: Path, scheme: str) -> None:
    web = chromium.new_context(viewport=WINDOW, color_scheme=scheme).new_page()
    web.goto(f"{server.url}/account")
    page = open_page(chromium, tray, "/settings", scheme)
    assert page.url.endswith("/settings")
    check_screenshot(page, shots / f"setup-empty-{scheme}.png")

    assert tokens(page) == tokens(web)
    for what, web_selector, tray_selector in COMPONENTS:
        assert computed(page, tray_selector) == computed(web, web_selector), what
    background = computed(page, "body")["background-color"]
    assert background == ("rgb(18, 21, 27)" if scheme == "dark" else "rgb(245, 246, 248)")
    # Both load the one stylesheet, from the same shared file.
    stylesheet = page.eval_on_selector("link[rel=stylesheet]", "l => l.href")
    assert "/assets/lockr.css?v=" in stylesheet
    assert requests.get(stylesheet, timeout=10).content == requests.get(
        web.eval_on_selector("link[rel=stylesheet]", "l => l.href"), timeout=10).content

    assert unlabelled_inputs(page) == []
    labels = page.evaluate("[...document.querySelectorAll('#setup input:not([type=hidden])')]"
                           ".map(el => [el.id, el.labels[0].innerText.trim()])")
    assert dict(labels) == {"endpoint": "Server address", "identifier": "Username or email", "password": "Password",
                            "folder": "Folder to keep in sync", "remote_folder": "Remote folder",
                            "autostart": "Start lockr-local when I log in"}
    assert fits_the_window(page)
    web.context.close()
    page.context.close()


@pytest.mark.parametrize("case, field, expected", [
    ("wrong password", "password", "Wrong username, email or password. Check both and try again"),
    ("server unreachable", "endpoint", "Check the server address"),
    ("folder not writable", "folder", "is a file, not a folder. Choose a folder you can write to"),
])
def test_each_setup_error_is_shown_under_its_field_with_the_next_step(
        chromium: Any, tray: TrayApp, server: ThreadedServer, account: Account, home: Path, shots: Path,
        case: str, field: str, expected: str) -> None:
    (home / "notes.txt").write_text("a file where a folder was meant\n")
    form = {"endpoint": server.url, "identifier": account.username, "password": account.password,
            "folder": str(home / "Lockr")}
    form.update({"wrong password": {"password": "not the password"},
                 "server unreachable": {"endpoint": "http://127.0.0.1:9"},
                 "folder not writable": {"folder": str(home / "notes.txt" / "Lockr")}}[case])
    page = open_page(chromium, tray)
    fill_setup(page, **form)
    page.click("#save")
    page.wait_for_selector("#error")
    check_screenshot(page, shots / f"setup-error-{case.replace(' ', '-')}.png")

    error = page.locator("#error")
    assert expected in error.inner_text()
    assert error.get_attribute("data-field") == field
    field_input = page.locator(f"#{field}")
    assert field_input.get_attribute("aria-invalid") == "true"
    assert "error" in field_input.get_attribute("aria-describedby").split()
    assert page.evaluate("document.activeElement.id") == field  # the cursor is where the fix goes
    # Right under its own field: below the input, above the next label.
    box, below = field_input.bounding_box(), error.bounding_box()
    assert 0 <= below["y"] - (box["y"] + box["height"]) < 24, (box, below)
    color = page.eval_on_selector("#error", "el => getComputedStyle(el).color")
    assert color == "rgb(198, 47, 59)"  # the web UI's --danger
    # What was typed stays (but never the password), so only the mistake needs retyping.
    for name in ("endpoint", "identifier", "folder"):
        assert page.input_value(f"#{name}") == form[name]
    assert page.input_value("#password") == ""
    assert fits_the_window(page)
    assert not (home / "keyring.json").exists()
    page.context.close()


def test_setup_form_can_be_completed_with_the_keyboard_alone(
        chromium: Any, tray: TrayApp, server: ThreadedServer, account: Account, home: Path, shots: Path) -> None:
    folder = home / "Lockr"
    folder.mkdir()
    (folder / "notes.txt").write_text("typed, not clicked\n")
    page = open_page(chromium, tray)
    typed = {"endpoint": server.url, "identifier": account.username, "password": account.password,
             "folder": str(folder), "remote_folder": "Shared"}
    order = []
    for _ in range(7):
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.id || document.activeElement.className")
        order.append(focused)
        # Focus is visible: a 2px outline in the accent colour on whatever has it.
        outline = page.evaluate("(() => { const s = getComputedStyle(document.activeElement); "
                                "return [s.outlineStyle, s.outlineWidth]; })()")
        assert outline == ["solid", "2px"], (focused, outline)
        if focused in typed:
            page.keyboard.press("Control+A")
            page.keyboard.type(typed[focused])
    assert order == ["brand", "endpoint", "identifier", "password", "folder", "remote_folder", "autostart"]
    page.keyboard.press("Shift+Tab")  # back to the remote folder field, then Enter submits the form
    assert page.evaluate("document.activeElement.id") == "remote_folder"
    page.keyboard.press("Enter")
    page.wait_for_selector("#note")
    assert "syncing has started" in page.inner_text("#note")

    def remote_names() -> list[str]:
        body = requests.get(f"{server.url}/api/v1/files", headers=account.auth, timeout=10).json()
        return [f["name"] for f in body["files"]]

    wait_for(lambda: remote_names() == ["Shared/notes.txt"], timeout=30,
             message="the agent to upload notes.txt into the remote folder typed")
    page.context.close()


def test_control_page_shows_syncing_in_sync_and_paused_and_keeps_keyboard_focus_while_it_updates(
        chromium: Any, tray: TrayApp, server: ThreadedServer, account: Account, home: Path, shots: Path) -> None:
    # A real TCP hop that holds the upload half-way, so "syncing" lasts until it has been looked at.
    proxy = CutProxy(int(server.url.rsplit(":", 1)[1]))
    proxy.hold_uploads_after(1_500_000)
    folder = home / "Lockr"
    folder.mkdir()
    (folder / "holiday.bin").write_bytes(os.urandom(3_000_000))
    try:
        page = open_page(chromium, tray)
        fill_setup(page, proxy.url, account.email, account.password, str(folder))
        page.click("#save")
        page.wait_for_selector("#note")

        # Syncing: the page updates itself (no reload) to the blue state with the file's progress.
        page.wait_for_selector("#headline[data-icon=syncing]")
        page.wait_for_selector("#progress")
        assert "Uploading 1 file" in page.inner_text("#state")
        check_screenshot(page, shots / "control-syncing.png")
        assert fits_the_window(page)
        assert unlabelled_inputs(page) == []

        # A keyboard user on the Pause button keeps focus while the state changes under it.
        page.focus("#actions button:has-text('Sync now')")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.innerText") == "Pause syncing"
        proxy.release_uploads()
        page.wait_for_selector("#headline[data-icon=in_sync]", timeout=60_000)
        assert "up to date" in page.inner_text("#state")
        assert page.evaluate("document.activeElement.innerText") == "Pause syncing"
        page.wait_for_selector("#recent li:has-text('holiday.bin')")
        check_screenshot(page, shots / "control-in-sync.png")

        page.keyboard.press("Enter")  # pauses, from the keyboard
        page.wait_for_selector("#headline[data-icon=paused]")
        assert "paused" in page.inner_text("#state")
        assert page.is_visible("#actions button:has-text('Resume syncing')")
        check_screenshot(page, shots / "control-paused.png")
        assert tray.status().state == "paused"
        page.emulate_media(color_scheme="dark")
        assert computed(page, "body")["background-color"] == "rgb(18, 21, 27)"
        check_screenshot(page, shots / "control-paused-dark.png")
        page.context.close()
    finally:
        proxy.close()
