"""Tray fixtures: a real X desktop (Xvfb + trayer), a `lockr-local serve` subprocess, and Debian's PyGObject
for the gtk backend."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import ServerProcess
from tests.tray.desktop import Desktop, missing_tools

SYSTEM_GI = Path("/usr/lib/python3/dist-packages/gi")


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
