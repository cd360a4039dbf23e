"""An icon started before the panel's system tray exists (autostart racing the panel at login) still docks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import wait_for
from tests.tray.desktop import Desktop, missing_tools
from tests.tray.test_desktop_e2e import TrayProcess


def test_an_icon_shown_before_the_tray_exists_docks_once_the_tray_starts(tmp_path: Path) -> None:
    missing = missing_tools()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install xvfb trayer x11-utils imagemagick)")
    desktop = Desktop(tmp_path, with_tray=False)
    home = tmp_path / "home"
    home.mkdir()
    tray = TrayProcess(home, desktop)
    try:
        wait_for(lambda: "tray icon shown" in tray.output(), timeout=30, message="the app to show its icon")
        assert desktop.icon_window() is not None  # it exists, with nowhere to dock
        desktop.start_tray()
        window = desktop.wait_for_docked_icon("not set up", timeout=30)
        assert "panel" in desktop.parents(window.id)
    finally:
        code = tray.stop()
        desktop.stop()
    assert code == 0, tray.output()
