"""The packaged app's first run as a new user goes through it, timed: used by test_first_run.py and `make bench`.

Nothing is configured (an empty HOME, so empty XDG folders, and no keyring: the setup page then offers
the private token file, which is ticked). The executable starts under Xvfb with trayer as the tray host;
its icon docks grey, it opens the setup page (in a BROWSER that records the link), headless Chromium fills
it in (server address, account, a small folder of files) and saves, and the clock stops once every file
is listed on the server and the docked icon has turned green. Each step's time is kept, from the moment
the executable was started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.helpers import wait_for
from tests.packaging.conftest import exe_env
from tests.tray.desktop import Desktop, dominant

FIRST_RUN_TIMEOUT = 120.0  # per step; the goal for the whole run is well under 30 s


@dataclass(frozen=True)
class FirstRunTimes:
    """Seconds from starting the executable to each thing a person would notice."""

    docked: float  # the grey "not set up" icon is in the panel
    page_opened: float  # the app asked the browser to open its setup page
    saved: float  # the setup page said syncing has started
    listed: float  # every file of the folder is listed on the server
    in_sync: float  # the icon is green ("up to date")

    def describe(self) -> str:
        return (f"icon docked {self.docked:.1f}s, setup page opened {self.page_opened:.1f}s, saved "
                f"{self.saved:.1f}s, files listed {self.listed:.1f}s, icon green {self.in_sync:.1f}s")


def small_folder(folder: Path, count: int = 20) -> dict[str, bytes]:
    """`count` files of 1-100 kB, some in a subfolder: a first folder someone might sync. Returns name -> bytes."""
    files = {}
    for index in range(count):
        name = f"notes/note-{index:02d}.txt" if index % 2 else f"photo-{index:02d}.jpg"
        data = os.urandom(1000 + (index * 5_000) % 100_000)
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files[name] = data
    return files


def remote_names(endpoint: str, token: str) -> set[str]:
    response = requests.get(f"{endpoint}/api/v1/files", params={"limit": 1000}, timeout=10,
                            headers={"Authorization": f"Bearer {token}"})
    response.raise_for_status()
    return {f["name"] for f in response.json()["files"]}


def all_listed(expected: set[str], listed: set[str]) -> bool:
    """Every local path is on the server (under the folder's remote folder, where the agent uses one)."""
    return all(any(name == path or name.endswith("/" + path) for name in listed) for path in expected)


class FirstRun:
    """One first run of `executable` in `home` (empty) on `desktop`, set up through `browser` (Playwright)."""

    def __init__(self, executable: Path, home: Path, desktop: Desktop, browser: Any, shots: Path | None = None) -> None:
        self.executable = executable
        self.home = home
        self.desktop = desktop
        self.browser = browser
        self.shots = shots
        self.opened = home.parent / f"{home.name}-opened-urls.txt"  # outside HOME: HOME starts empty
        self.log_path = home.parent / f"{home.name}-app.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.setup_background = ""  # the setup page's, as the browser drew it (the bundled stylesheet's)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def run(self, endpoint: str, identifier: str, password: str, folder: Path, token: str,
            expected: set[str]) -> FirstRunTimes:
        """Times the run; `token` lets the harness read the server's listing (the app never sees it)."""
        recorder = self.home.parent / f"{self.home.name}-browser"
        recorder.write_text(f"#!/bin/sh\necho \"$1\" >> '{self.opened}'\n")
        recorder.chmod(0o755)
        context = self.browser.new_context(viewport={"width": 420, "height": 600})
        context.set_default_timeout(FIRST_RUN_TIMEOUT * 1000)
        page = context.new_page()  # a browser already running, as a person's is
        env = exe_env(self.home, DISPLAY=self.desktop.display, BROWSER=str(recorder))
        with self.log_path.open("wb") as log:
            started = time.perf_counter()
            self.proc = subprocess.Popen([str(self.executable)], cwd=self.home, env=env, stdout=log,
                                         stderr=subprocess.STDOUT)

        def since() -> float:
            return time.perf_counter() - started

        try:
            self.desktop.wait_for_docked_icon("not set up", timeout=FIRST_RUN_TIMEOUT)
            docked = since()
            url = wait_for(lambda: self.opened.exists() and self.opened.read_text().split(), timeout=FIRST_RUN_TIMEOUT,
                           interval=0.02, message=f"the setup page to be opened; the app said: {self.log()}")[0]
            page_opened = since()
            page.goto(url)
            self.setup_background = page.evaluate("getComputedStyle(document.body).backgroundColor")
            page.fill("#endpoint", endpoint)
            page.fill("#identifier", identifier)
            page.fill("#password", password)
            page.fill("#folder", str(folder))
            if page.locator("#file_store").count():  # no keyring here: the private token file (0600)
                page.check("#file_store")
            page.click("#save")
            page.wait_for_selector("#note")
            saved = since()
            wait_for(lambda: all_listed(expected, remote_names(endpoint, token)), timeout=FIRST_RUN_TIMEOUT, interval=0.05,
                     message=f"every file to be listed on the server; the app said: {self.log()}")
            listed = since()
            window = self.desktop.wait_for_docked_icon("up to date", timeout=FIRST_RUN_TIMEOUT)

            def green() -> bool:
                shot = self.desktop.screenshot(self.shots / "first-run-in-sync.png" if self.shots
                                               else self.home.parent / "first-run-screen.png")
                return dominant(self.desktop.icon_pixels(shot, window)) == "green"

            wait_for(green, timeout=FIRST_RUN_TIMEOUT, interval=0.02, message="the green (in sync) icon")
            in_sync = since()
            if self.shots is not None:
                page.screenshot(path=str(self.shots / "first-run-control-page.png"))
            return FirstRunTimes(docked, page_opened, saved, listed, in_sync)
        finally:
            context.close()

    def stop(self) -> int:
        """SIGTERM, as a logout does; the exit status (SIGKILL after 30 s, which fails the caller's check)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -signal.SIGKILL
