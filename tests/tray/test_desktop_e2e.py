"""The desktop app end to end: from a fresh config, `lockr-local` (no arguments) under Xvfb docks its icon
in trayer, the setup page (headless Chromium) signs in against a real `lockr-local serve`, the token lands
in the (test) keyring, the real sync agent uploads the folder and the icon follows: not set up -> syncing
-> in sync -> paused. Screenshots are kept in the test's tmp folder as evidence."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.cutproxy import CutProxy
from tests.helpers import REPO, ServerProcess, clean_env, create_account, wait_for
from tests.tray.desktop import Desktop, TrayWindow, dominant, mean_colour

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_or_skip() -> None:
    if not os.path.exists(CHROMIUM):
        pytest.skip("needs chromium (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="needs playwright (the test extra)")


class TrayProcess:
    """`python -m lockr_local ARGS` with a private HOME, the test keyring, the xorg backend and a BROWSER
    that records the URLs the app opens instead of starting a browser."""

    def __init__(self, home: Path, desktop: Desktop, *args: str, **env: str) -> None:
        self.home = home
        self.urls = home / "opened-urls.txt"
        recorder = home / "record-url"
        recorder.write_text(f"#!/bin/sh\necho \"$1\" >> {self.urls}\n")
        recorder.chmod(0o755)
        self.env = clean_env(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"),
                             XDG_STATE_HOME=str(home / "state"), XDG_DATA_HOME=str(home / "data"),
                             PYTHONPATH=str(REPO), DISPLAY=desktop.display, PYSTRAY_BACKEND="xorg",
                             BROWSER=str(recorder), PYTHON_KEYRING_BACKEND="tests.file_keyring.FileKeyring",
                             TEST_KEYRING_FILE=str(home / "keyring.json"), **env)
        self.log = (home / "tray.log").open("w")
        self.proc = subprocess.Popen([sys.executable, "-m", "lockr_local", *args], env=self.env, cwd=REPO,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def opened(self) -> list[str]:
        return self.urls.read_text().split() if self.urls.exists() else []

    def output(self) -> str:
        return (self.home / "tray.log").read_text()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGUSR1)  # the app dumps its threads' stacks into the log
                wait_for(lambda: "most recent call first" in self.output(), timeout=5, message="a stack dump")
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def goto_refreshing_page(page: Any, url: str, attempts: int = 3) -> None:
    """page.goto from the control page, which reloads itself every 3 s (meta refresh): a reload that
    starts at the same moment interrupts the navigation (it did once in CI), so it is tried again."""
    from playwright.sync_api import Error as PlaywrightError

    for attempt in range(attempts):
        try:
            page.goto(url)
            return
        except PlaywrightError as error:
            if "interrupted by another navigation" not in str(error) or attempt == attempts - 1:
                raise


def wait_for_title(desktop: Desktop, predicate: str, timeout: float = 30.0) -> TrayWindow:
    """The icon's window once docked (trayer gave it a real size) and titled with `predicate`."""
    return desktop.wait_for_docked_icon(predicate, timeout)


def test_fresh_start_goes_through_setup_and_the_docked_icon_follows_the_agent(
        tmp_path: Path, desktop: Desktop, lockr_server: ServerProcess) -> None:
    chromium_or_skip()
    from playwright.sync_api import sync_playwright

    shots = tmp_path / "screenshots"
    shots.mkdir()
    account = create_account(lockr_server.url, "ann")
    # A real TCP hop that holds the upload half-way until the test has photographed "syncing": on a
    # loaded machine a throttled upload alone once finished before the icon was seen.
    proxy = CutProxy(lockr_server.port)
    proxy.hold_uploads_after(1_500_000)  # the login and listing before the upload are a few kB
    endpoint = proxy.url
    home = tmp_path / "home"
    home.mkdir()
    folder = home / "Lockr"
    folder.mkdir()
    payload = os.urandom(3_000_000)
    (folder / "holiday.bin").write_bytes(payload)

    tray = TrayProcess(home, desktop)  # no arguments: the packaged app's default is the tray
    try:
        # 1. Not set up: the icon docks in trayer and the setup page is opened in "the browser".
        window = wait_for_title(desktop, "not set up")
        # pystray re-docks on each icon change (trayer then re-embeds it), so allow a moment in between.
        wait_for(lambda: "panel" in desktop.parents(window.id), timeout=10,
                 message="the icon to be embedded in trayer's panel")
        shot = desktop.screenshot(shots / "1-not-set-up.png")
        assert dominant(desktop.icon_pixels(shot, window)) == "grey"
        setup_url = wait_for(lambda: tray.opened(), message="the setup page to be opened")[0]
        assert setup_url.startswith("http://127.0.0.1:") and "/settings?t=" in setup_url

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(setup_url)
            assert page.url.endswith("/settings")  # the one-time token left the address bar
            page.fill("#endpoint", endpoint)
            page.fill("#identifier", account.email)
            page.fill("#password", account.password)
            page.fill("#folder", str(folder))
            page.screenshot(path=str(shots / "setup-page.png"))
            page.click("#save")
            page.wait_for_selector("#note")
            assert "syncing has started" in page.inner_text("#note")

            # 2. The token (never the password) is in the keyring; the config names endpoint and folder.
            keyring_data = json.loads((home / "keyring.json").read_text())
            token = keyring_data[f"lockr-local\n{endpoint}"]
            assert requests.get(f"{lockr_server.url}/api/v1/account", timeout=10,
                                headers={"Authorization": f"Bearer {token}"}).status_code == 200
            config_files = list((home / "config").rglob("*.json"))
            assert config_files
            for path in [*config_files, home / "keyring.json"]:
                assert account.password not in path.read_text(), path
            config = json.loads((home / "config" / "lockr-local" / "tray.json").read_text())
            assert (config["endpoint"], config["folder"]) == (endpoint, str(folder))

            # 3. Syncing: blue icon with the progress in the tooltip.
            window = wait_for_title(desktop, "Uploading 1 file")

            def blue_icon() -> object:
                # The title and the icon image are separate X updates: poll until the redraw lands.
                pixels = desktop.icon_pixels(desktop.screenshot(shots / "2-syncing.png"), window)
                return pixels if dominant(pixels) == "blue" else None

            syncing = wait_for(blue_icon, timeout=15, interval=0.2, message="the syncing (blue) icon")
            proxy.release_uploads()

            # 4. In sync: the file is on the server and the icon turned green.
            window = wait_for_title(desktop, "up to date", timeout=60)

            def green_icon() -> object:
                pixels = desktop.icon_pixels(desktop.screenshot(shots / "3-in-sync.png"), window)
                return pixels if dominant(pixels) == "green" else None

            in_sync = wait_for(green_icon, timeout=15, interval=0.2, message="the in-sync (green) icon")
            assert in_sync.tobytes() != syncing.tobytes()
            files = requests.get(f"{lockr_server.url}/api/v1/files", headers=account.auth, timeout=10).json()["files"]
            assert [(f["name"], f["size"], f["sha256"]) for f in files] == [
                ("Lockr/holiday.bin", len(payload), hashlib.sha256(payload).hexdigest())]

            # 5. The control page (what a click opens on this menu-less backend) pauses the agent.
            goto_refreshing_page(page, setup_url.split("/settings")[0] + "/")
            page.wait_for_selector("#state")
            assert "up to date" in page.inner_text("#state")
            assert files[0]["id"] in page.content()  # the share link of the recent upload
            page.click("button:has-text('Pause syncing')")
            window = wait_for_title(desktop, "paused")

            def amber_icon() -> bool:
                # The title and the icon image are separate X updates: poll until the redraw lands.
                red, green, blue = mean_colour(desktop.icon_pixels(desktop.screenshot(shots / "4-paused.png"), window))
                return red > blue + 60 and green > blue + 40

            wait_for(amber_icon, timeout=15, interval=0.2, message="the paused (amber) icon")
            page.reload()
            assert "paused" in page.inner_text("#state")
            assert page.is_visible("button:has-text('Resume syncing')")
            page.screenshot(path=str(shots / "control-page.png"))
            browser.close()
    finally:
        code = tray.stop()
        proxy.close()
        keep = os.environ.get("LOCKR_KEEP_SCREENSHOTS")
        if keep:
            shutil.copytree(shots, keep, dirs_exist_ok=True)
    assert code == 0, tray.output()
    assert "did not stop" not in tray.output()  # quit went through pystray's loop, not the fallback exit
