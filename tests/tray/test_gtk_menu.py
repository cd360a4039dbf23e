"""The GTK backend under Xvfb: the icon docks in trayer, a right click (xdotool) opens the real GTK menu,
and choosing "Pause syncing" pauses the real agent, which the icon and the control page then show.

pystray's gtk backend needs PyGObject: Debian's python3-gi (and gir1.2-gtk-3.0) are made visible to the
test's Python through a folder holding only a `gi` link, and dbus-run-session gives it the session bus
it needs for notifications. `.ci/run` installs those packages."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
import requests

from tests.helpers import REPO, ServerProcess, clean_env, create_account, wait_for
from tests.tray.desktop import Desktop, TrayWindow, end_session, gtk_windows, mean_colour


@pytest.fixture
def gtk_tray(tmp_path: Path, desktop: Desktop, gi_path: Path, lockr_server: ServerProcess) -> Iterator[dict]:
    account = create_account(lockr_server.url)
    home = tmp_path / "home"
    folder = home / "Lockr"
    folder.mkdir(parents=True)
    (folder / "report.txt").write_text("quarterly numbers\n")
    env = clean_env(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), XDG_STATE_HOME=str(home / "state"),
                    PYTHONPATH=f"{REPO}{os.pathsep}{gi_path}", DISPLAY=desktop.display, PYSTRAY_BACKEND="gtk",
                    LOCKR_TOKEN=account.token, NO_AT_BRIDGE="1")
    log = (home / "tray.log").open("w")
    proc = subprocess.Popen(["dbus-run-session", "--", sys.executable, "-m", "lockr_local", "tray", str(folder),
                             "--endpoint", lockr_server.url, "--no-browser", "-v"], env=env, cwd=REPO,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    yield {"proc": proc, "log": home / "tray.log", "account": account, "folder": folder}
    end_session(proc)
    log.close()


def test_right_click_opens_the_gtk_menu_and_pause_pauses_the_agent(
        tmp_path: Path, desktop: Desktop, gtk_tray: dict, lockr_server: ServerProcess) -> None:
    log_path: Path = gtk_tray["log"]
    account = gtk_tray["account"]
    def remote_names() -> list[str]:
        body = requests.get(f"{lockr_server.url}/api/v1/files", headers=account.auth, timeout=10).json()
        return [f["name"] for f in body["files"]]

    wait_for(lambda: remote_names() == ["Lockr/report.txt"], timeout=60, message="the agent to upload report.txt")
    wait_for(lambda: log_path.read_text().rstrip().rsplit("tray: ", 1)[-1].startswith("lockr-local: up to date"),
             timeout=30, message="the icon to say up to date")

    def docked() -> TrayWindow | None:
        for window in gtk_windows(desktop):
            if window.width > 1 and window.x >= 0 and "panel" in desktop.parents(window.id):
                return window
        return None

    icon = wait_for(docked, timeout=30, message="the GTK status icon docked in trayer")

    before = {w.id for w in gtk_windows(desktop)}
    env = {**os.environ, "DISPLAY": desktop.display}
    subprocess.run(["xdotool", "mousemove", str(icon.x + icon.width // 2), str(icon.y + icon.height // 2),
                    "click", "3"], env=env, check=True, timeout=10)
    wait_for(lambda: next((w for w in gtk_windows(desktop) if w.id not in before and w.width > 100), None),
                    timeout=10, message="the GTK menu window")
    desktop.screenshot(tmp_path / "gtk-menu.png")
    # Keyboard navigation skips the disabled status line and the separator: Sync now, then Pause syncing.
    subprocess.run(["xdotool", "key", "Down", "Down", "Return"], env=env, check=True, timeout=10)
    wait_for(lambda: "action: toggle_pause" in log_path.read_text(), timeout=10, message="the Pause action")
    wait_for(lambda: "tray: lockr-local: paused" in log_path.read_text(), timeout=10, message="the paused title")

    # The agent itself is paused: the control page (served by the same app) says so.
    url = re.search(r"control page: (http://\S+)", log_path.read_text())
    assert url, log_path.read_text()
    page = requests.get(url.group(1), timeout=10)
    assert "lockr-local: paused" in page.text and "Resume syncing" in page.text

    icon = wait_for(lambda: (w := docked()) is not None and w.title == "lockr-local: paused" and w, timeout=10,
                    message="the docked icon titled paused")
    shot = desktop.screenshot(tmp_path / "gtk-paused.png")
    red, green, blue = mean_colour(desktop.icon_pixels(shot, icon))
    assert red > blue + 60 and green > blue + 40, (red, green, blue)  # amber
