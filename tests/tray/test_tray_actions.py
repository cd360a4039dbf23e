"""Every tray action, run by the real app: `lockr-local tray` (xorg backend, docked in trayer under Xvfb)
with its real sync agent against a real `lockr-local serve`, driven through the control page that a click
on the icon opens (the same `TrayApp.perform` the menu calls). Each test checks what a person would see:
files on the server, the paused state, the program the platform would open, the clipboard, the exit.

The openers are real programs: `xdg-open` on PATH and $BROWSER (what `webbrowser` runs) are small
scripts that write down their argument. The agent runs with `LOCKR_SYNC_WATCH=0`, so a new file is
found only by a scan: that is what makes Sync now observable.
"""

from __future__ import annotations

import html
import json
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest
import requests

from tests.helpers import REPO, Account, ServerProcess, clean_env, create_account, wait_for
from tests.tray.desktop import Desktop, missing_tools
from tests.tray.test_doctor_clipboard import read_clipboard


@dataclass
class RunningTray:
    """The tray process, what it opened, and a browser-like session on its control page."""

    proc: subprocess.Popen[bytes]
    home: Path
    folder: Path
    endpoint: str
    account: Account
    desktop: Desktop
    page: requests.Session
    control: str  # http://127.0.0.1:PORT

    def log(self) -> str:
        return (self.home / "tray.log").read_text()

    def waited(self, condition: Callable[[], object], timeout: float, what: str) -> object:
        """wait_for, with the app's log in the failure message."""
        try:
            return wait_for(condition, timeout=timeout, message=what)
        except AssertionError as error:
            raise AssertionError(f"{error}; the app said:\n{self.stacks()[-12000:]}") from None

    def stacks(self) -> str:
        """The log, with the app's threads' stacks appended (faulthandler on SIGUSR1) while it runs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)
            try:
                wait_for(lambda: "most recent call first" in self.log(), timeout=5, message="a stack dump")
            except AssertionError:
                pass
        return self.log()

    def exit_code(self, timeout: float) -> int:
        """Waits for the process to end; if it does not, its threads' stacks (faulthandler on SIGUSR1) go
        into the failure message."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the app did not exit within {timeout}s:\n{self.stacks()[-12000:]}") from None

    def opened(self, recorder: str) -> list[str]:
        path = self.home / f"{recorder}.txt"
        return path.read_text().splitlines() if path.exists() else []

    def icon_title(self) -> str:
        """The tooltip of the icon's X window, as the tray host shows it."""
        window = self.desktop.icon_window()
        return window.title if window is not None else ""

    def control_page(self) -> str:
        response = self.page.get(self.control + "/", timeout=10)
        assert response.status_code == 200, response.text
        return response.text

    def state(self) -> str:
        match = re.search(r'<p id="state">([^<]*)</p>', self.control_page())
        assert match, self.control_page()
        return html.unescape(match.group(1))

    def act(self, action: str, argument: str = "") -> requests.Response:
        """Presses a button of the control page: POST /action with its XSRF field, as the browser does."""
        self.control_page()  # sets the _xsrf cookie
        response = self.page.post(self.control + "/action", timeout=10, allow_redirects=False, data={
            "_xsrf": self.page.cookies.get("_xsrf"), "action": action, "argument": argument})
        assert response.status_code == 303, (response.status_code, response.text)
        return response

    def remote_names(self) -> list[str]:
        body = requests.get(f"{self.endpoint}/api/v1/files", headers=self.account.auth, timeout=10).json()
        return sorted(f["name"] for f in body["files"])


def recorder(path: Path, record: Path) -> Path:
    """A real program standing in for the file manager or browser: it writes its argument down."""
    path.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$1\" >> '{record}'\n")
    path.chmod(0o755)
    return path


def holds(condition: Callable[[], bool], seconds: float, message: str) -> None:
    """Checks that `condition` stays true for `seconds` (something that must NOT happen meanwhile)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert condition(), message
        time.sleep(0.1)


@pytest.fixture(scope="module")
def tray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningTray]:
    missing = missing_tools()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install xvfb trayer x11-utils imagemagick)")
    root = tmp_path_factory.mktemp("tray-actions")
    desktop = Desktop(root)
    server = ServerProcess(root / "server-data").start()
    home = root / "home"
    folder = home / "Lockr"
    folder.mkdir(parents=True)
    (folder / "first.txt").write_text("synced at start\n")
    bin_dir = home / "bin"
    bin_dir.mkdir()
    recorder(bin_dir / "xdg-open", home / "xdg-open.txt")
    browser = recorder(home / "record-browser", home / "browser.txt")
    account = create_account(server.url)
    env = clean_env(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), XDG_STATE_HOME=str(home / "state"),
                    XDG_DATA_HOME=str(home / "data"), PYTHONPATH=str(REPO), DISPLAY=desktop.display,
                    PYSTRAY_BACKEND="xorg", BROWSER=str(browser), LOCKR_TOKEN=account.token,
                    LOCKR_SYNC_WATCH="0", PATH=f"{bin_dir}:{clean_env()['PATH']}")
    env.pop("WAYLAND_DISPLAY", None)
    log = (home / "tray.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "lockr_local", "tray", str(folder), "--endpoint", server.url,
                             "-v"], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        desktop.wait_for_docked_icon("up to date", timeout=60)
        link = re.search(r"control page: (http://127\.0\.0\.1:\d+)(/\?t=\S+)", (home / "tray.log").read_text())
        assert link, (home / "tray.log").read_text()
        page = requests.Session()
        assert page.get(link.group(1) + link.group(2), timeout=10).status_code == 200
        running = RunningTray(proc, home, folder, server.url, account, desktop, page, link.group(1))
        wait_for(lambda: running.remote_names() == ["Lockr/first.txt"], timeout=30, message="the start-up scan's upload")
        wait_for(lambda: "up to date" in running.state(), timeout=30, message="the agent to be up to date")
        yield running
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        server.stop()
        desktop.stop()


def test_sync_now_uploads_a_file_no_watcher_reported(tray: RunningTray) -> None:
    (tray.folder / "late.txt").write_text("written while nobody watched\n")
    holds(lambda: "Lockr/late.txt" not in tray.remote_names(), 1.5, "uploaded without a scan: the watcher is on")
    tray.act("sync_now")
    tray.waited(lambda: "Lockr/late.txt" in tray.remote_names(), 30, "Sync now to upload late.txt")
    assert "action: sync_now" in tray.log()
    tray.waited(lambda: "up to date" in tray.state(), 30, "the state to return to up to date")


def test_resume_after_pause_syncs_the_change_held_meanwhile(tray: RunningTray) -> None:
    tray.act("toggle_pause")
    resumed = False
    try:
        assert tray.state() == "lockr-local: paused"
        assert "Resume syncing" in tray.control_page()
        tray.waited(lambda: "paused" in tray.icon_title(), 30, "the icon's title to say paused")
        (tray.folder / "held.txt").write_text("changed while paused\n")
        holds(lambda: "Lockr/held.txt" not in tray.remote_names(), 1.5, "a paused agent uploaded held.txt")
        tray.act("toggle_pause")
        resumed = True
    finally:
        if not resumed:
            tray.act("toggle_pause")  # leave the shared app syncing for the tests after this one
    tray.waited(lambda: "Lockr/held.txt" in tray.remote_names(), 30, "Resume to upload held.txt")
    tray.waited(lambda: "up to date" in tray.state(), 30, "the state to return to up to date")
    tray.waited(lambda: "up to date" in tray.icon_title(), 30, "the icon's title to say up to date")
    assert "Pause syncing" in tray.control_page()


def test_open_folder_runs_the_platform_opener_with_the_folder(tray: RunningTray) -> None:
    tray.act("open_folder")
    assert tray.waited(lambda: tray.opened("xdg-open"), 10, "xdg-open to run") == [str(tray.folder)]


def test_open_web_page_opens_the_endpoints_files_page(tray: RunningTray) -> None:
    before = len(tray.opened("browser"))
    tray.act("open_web")
    opened = tray.waited(lambda: tray.opened("browser")[before:], 10, "the browser to be started")
    assert opened == [f"{tray.endpoint}/files"]
    assert requests.get(opened[0], timeout=10, allow_redirects=False).status_code == 302  # to sign in first


def test_settings_opens_the_setup_page(tray: RunningTray) -> None:
    response = tray.act("settings")
    assert response.headers["Location"] == "/settings"
    setup = tray.page.get(tray.control + "/settings", timeout=10)
    assert setup.status_code == 200
    assert 'id="setup"' in setup.text and f'value="{tray.endpoint}"' in setup.text


def test_copy_link_puts_a_recent_uploads_share_link_on_the_clipboard(tray: RunningTray) -> None:
    pytest.importorskip("tkinter", reason="reading the X clipboard needs Tk")
    links = re.findall(r'name="argument" value="([^"]+)"', tray.control_page())
    assert links, "the control page lists recent uploads"
    link = html.unescape(links[0])
    files = requests.get(f"{tray.endpoint}/api/v1/files", headers=tray.account.auth, timeout=10).json()["files"]
    assert link in [f"{tray.endpoint}/download/{f['id']}" for f in files]
    response = tray.act("copy_link", link)
    assert "copied" in response.headers["Location"]
    tray.waited(lambda: read_clipboard(tray.desktop.display) == link, 15, "the link on the clipboard")
    assert requests.get(link, timeout=10).status_code == 200  # the share page of that file


def test_quit_stops_the_agent_and_the_app_exits(tray: RunningTray) -> None:
    quit_at = time.time()
    tray.act("quit")
    assert tray.exit_code(30) == 0, tray.log()
    assert "did not stop" not in tray.log()  # pystray's loop ended, not the fallback exit
    with pytest.raises(requests.ConnectionError):
        tray.page.get(tray.control + "/", timeout=5)
    # The stopped agent wrote its last status (idle, not syncing) on the way out.
    statuses = list((tray.home / "state").rglob("*.status.json"))
    assert statuses
    assert statuses[0].stat().st_mtime >= quit_at - 1
    final = json.loads(statuses[0].read_text())
    assert final["state"] == "idle" and final["current_file"] is None, final
