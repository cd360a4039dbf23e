"""Tray fixtures: a private home with the test keyring, a TrayApp serving its pages, a real X desktop (Xvfb +
trayer), a `lockr-local serve` subprocess, Debian's PyGObject for the gtk backend, and headless Chromium."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

import keyring

from lockr_local.tray.app import TrayApp
from lockr_local.tray.config import TrayConfig
from tests.file_keyring import FileKeyring
from tests.helpers import Account, ServerProcess, ThreadedServer, create_account
from tests.tray.desktop import Desktop, missing_tools
from tests.web.conftest import launched_chromium

SYSTEM_GI = Path("/usr/lib/python3/dist-packages/gi")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private HOME, config and state folders, and the file-backed test keyring."""
    home = tmp_path / "home"
    home.mkdir()
    for name, value in {"HOME": home, "XDG_CONFIG_HOME": home / "config", "XDG_STATE_HOME": home / "state",
                        "XDG_DATA_HOME": home / "data", "TEST_KEYRING_FILE": home / "keyring.json"}.items():
        monkeypatch.setenv(name, str(value))
    for name in ("LOCKR_TOKEN", "LOCKR_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    previous = keyring.get_keyring()
    keyring.set_keyring(FileKeyring())
    yield home
    keyring.set_keyring(previous)


@pytest.fixture
def tray(home: Path) -> Iterator[TrayApp]:
    """A TrayApp without an icon: its setup and control pages served, its agent started by setup."""
    app = TrayApp(TrayConfig.load(), open_browser=False)
    app.server.start()
    yield app
    app._shutdown()


@pytest.fixture
def account(server: ThreadedServer) -> Account:
    return create_account(server.url)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Headless Chromium, launched as the web tests launch theirs."""
    with launched_chromium() as browser:
        yield browser


@pytest.fixture
def desktop(tmp_path: Path) -> Iterator[Desktop]:
    missing = missing_tools()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install xvfb trayer x11-utils imagemagick)")
    screen = Desktop(tmp_path)
    yield screen
    screen.stop()


@pytest.fixture
def lockr_server(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path / "server-data").start()
    yield server
    server.stop()


@pytest.fixture
def gi_path(tmp_path: Path) -> Path:
    """A folder with just Debian's `gi` package in it, when it works with this Python and GTK 3."""
    if not SYSTEM_GI.exists() or not os.path.exists("/usr/bin/dbus-run-session") or not os.path.exists("/usr/bin/xdotool"):
        pytest.skip("needs python3-gi, gir1.2-gtk-3.0, dbus-daemon and xdotool (apt-get install them)")
    folder = tmp_path / "gi-only"
    folder.mkdir()
    (folder / "gi").symlink_to(SYSTEM_GI)
    probe = subprocess.run([sys.executable, "-c", "import gi; gi.require_version('Gtk', '3.0'); "
                            "from gi.repository import Gtk"], env={**os.environ, "PYTHONPATH": str(folder)},
                           capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"Debian's gi does not load in this Python: {probe.stderr.strip()[-200:]}")
    return folder
