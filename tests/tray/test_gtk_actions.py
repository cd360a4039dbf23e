"""The GTK backend's own menu and desktop notifications, under Xvfb + trayer + a private D-Bus session:
choosing "Settings..." in the real GTK menu (xdotool) reopens the setup page in the browser, and when the
agent falls into an error the model's notification reaches the desktop's notification service.

The notification service is `tests/tray/notify_recorder.py`, a small org.freedesktop.Notifications server
on the same session bus (Debian's notification daemons need a full desktop), recording each Notify call.
The xorg backend cannot notify (pystray's HAS_NOTIFICATION is false there), so this runs on gtk.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import requests

from tests.helpers import REPO, ServerProcess, clean_env, create_account, wait_for
from tests.tray.desktop import Desktop, TrayWindow, end_session, gtk_windows
from tests.tray.test_tray_actions import recorder


@pytest.fixture
def gtk_tray(tmp_path: Path, desktop: Desktop, gi_path: Path, lockr_server: ServerProcess) -> Iterator[dict]:
    account = create_account(lockr_server.url)
    made = requests.post(f"{lockr_server.url}/api/v1/tokens", json={"name": "tray"}, headers=account.auth,
                         timeout=10)
    assert made.status_code == 201, made.text
    home = tmp_path / "home"
    folder = home / "Lockr"
    folder.mkdir(parents=True)
    (folder / "report.txt").write_text("quarterly numbers\n")
    browser = recorder(home / "record-browser", home / "browser.txt")
    notes = home / "notifications.jsonl"
    env = clean_env(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), XDG_STATE_HOME=str(home / "state"),
                    PYTHONPATH=f"{REPO}{os.pathsep}{gi_path}", DISPLAY=desktop.display, PYSTRAY_BACKEND="gtk",
                    LOCKR_TOKEN=made.json()["token"], NO_AT_BRIDGE="1", BROWSER=str(browser))
    log = (home / "tray.log").open("w")
    # One private session bus for both: the recorder owns the notification name, then the app starts.
    script = f'{sys.executable} -m tests.tray.notify_recorder "$0" & exec "$@"'
    proc = subprocess.Popen(["dbus-run-session", "--", "sh", "-c", script, str(notes), sys.executable, "-m",
                             "lockr_local", "tray", str(folder), "--endpoint", lockr_server.url, "-v"],
                            env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    yield {"proc": proc, "home": home, "account": account, "notes": notes}
    end_session(proc)
    log.close()


def test_gtk_menu_settings_reopens_the_setup_page_and_an_error_is_notified(
        tmp_path: Path, desktop: Desktop, gtk_tray: dict, lockr_server: ServerProcess) -> None:
    home: Path = gtk_tray["home"]
    account = gtk_tray["account"]

    def log() -> str:
        return (home / "tray.log").read_text()

    def waited(condition: Callable[[], Any], timeout: float, what: str) -> Any:
        try:
            return wait_for(condition, timeout=timeout, message=what)
        except AssertionError as error:
            raise AssertionError(f"{error}; the app said:\n{log()[-3000:]}") from None

    def remote_names() -> list[str]:
        body = requests.get(f"{lockr_server.url}/api/v1/files", headers=account.auth, timeout=10).json()
        return [f["name"] for f in body["files"]]

    waited(lambda: remote_names() == ["Lockr/report.txt"], 60, "the agent to upload report.txt")
    waited(lambda: "ready" in log(), 30, "the notification recorder on the session bus")

    def docked() -> TrayWindow | None:
        for window in gtk_windows(desktop):
            if window.width > 1 and window.x >= 0 and "panel" in desktop.parents(window.id):
                return window
        return None

    waited(docked, 30, "the GTK status icon docked in trayer")
    waited(lambda: "tray: lockr-local: up to date" in log(), 30, "the icon to say up to date")
    assert "gtk backend" in log()

    # 1. Settings... from the real menu: status, separator, Sync now, Pause, Open folder, Open web page,
    # Recent uploads, separator, Settings (keyboard navigation skips the disabled line and separators).
    env = {**os.environ, "DISPLAY": desktop.display}
    for attempt in range(3):
        # trayer may still be re-embedding the icon (it moves): a click that missed is tried again.
        icon = waited(docked, 30, "the GTK status icon docked in trayer")
        before = {w.id for w in gtk_windows(desktop)}
        subprocess.run(["xdotool", "mousemove", str(icon.x + icon.width // 2), str(icon.y + icon.height // 2),
                        "click", "3"], env=env, check=True, timeout=10)
        try:
            wait_for(lambda: next((w for w in gtk_windows(desktop) if w.id not in before and w.width > 100), None),
                     timeout=4, message="the GTK menu window")
            break
        except AssertionError:
            if attempt == 2:
                raise AssertionError(f"no GTK menu after three right clicks; the app said:\n{log()[-3000:]}")
    desktop.screenshot(tmp_path / "gtk-menu.png")
    subprocess.run(["xdotool", "key", *["Down"] * 6, "Return"], env=env, check=True, timeout=10)
    waited(lambda: "action: settings" in log(), 10, "the Settings action")
    opened = waited(lambda: (home / "browser.txt").exists() and (home / "browser.txt").read_text().split(), 10,
                    "the browser to be started with the setup page")
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/settings\?t=\S+", opened[-1]), opened
    setup = requests.get(opened[-1], timeout=10)
    assert setup.status_code == 200 and setup.url.endswith("/settings")
    assert 'id="setup"' in setup.text and lockr_server.url in setup.text

    # 2. The tray's token is revoked: the next pass fails, the icon turns to error, and the desktop is told.
    tokens = requests.get(f"{lockr_server.url}/api/v1/tokens", headers=account.auth, timeout=10).json()["tokens"]
    tray_token = next(t for t in tokens if t["name"] == "tray")
    assert requests.delete(f"{lockr_server.url}/api/v1/tokens/{tray_token['id']}", headers=account.auth,
                           timeout=10).status_code in (200, 204)
    page = requests.Session()
    control = re.search(r"control page: (http://127\.0\.0\.1:\d+)(/\?t=\S+)", log())
    assert control, log()
    page.get(control.group(1) + control.group(2), timeout=10)
    response = page.post(control.group(1) + "/action", timeout=10, allow_redirects=False,
                         data={"_xsrf": page.cookies.get("_xsrf"), "action": "sync_now"})
    assert response.status_code == 303
    notes = gtk_tray["notes"]
    recorded = waited(lambda: notes.exists() and [json.loads(line) for line in notes.read_text().splitlines()],
                      30, "a desktop notification")
    title = waited(lambda: re.search(r"tray: (lockr-local: error - .+)", log()), 10, "the error title").group(1)
    assert recorded[0]["summary"] == "lockr-local"
    assert recorded[0]["body"] == title.strip()
    # One notification for entering the error, not one per redraw.
    assert len([n for n in recorded if n["body"] == title.strip()]) == 1
