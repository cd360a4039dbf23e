"""Icons drawn per state, the app config file, and the autostart entries."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from lockr_local.tray import config as tray_config
from lockr_local.tray.icons import draw_icon
from lockr_local.tray.model import IconState


def test_every_state_has_a_distinct_icon() -> None:
    images = {state: draw_icon(state).tobytes() for state in IconState}
    assert len(set(images.values())) == len(IconState)


def test_syncing_icon_shows_progress() -> None:
    assert draw_icon(IconState.SYNCING, 0.25).tobytes() != draw_icon(IconState.SYNCING, 0.75).tobytes()


def test_icons_scale_to_small_tray_sizes() -> None:
    image = draw_icon(IconState.ERROR, size=22)
    assert image.size == (22, 22) and image.mode == "RGBA"
    assert image.getpixel((11, 11))[3] == 255  # the disc is opaque at the centre


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path


def test_config_round_trips_in_a_private_file(home: Path) -> None:
    assert not tray_config.TrayConfig.load().configured
    tray_config.TrayConfig("http://h:1", "/data/x", "ann", True).save()
    loaded = tray_config.TrayConfig.load()
    assert loaded == tray_config.TrayConfig("http://h:1", "/data/x", "ann", True) and loaded.configured
    path = home / "config" / "lockr-local" / "tray.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "token" not in path.read_text() and "password" not in path.read_text()


def test_xdg_autostart_entry_starts_the_tray_and_can_be_removed(home: Path) -> None:
    path = tray_config.set_autostart(True, platform="linux", command=["/opt/lockr local/python", "-m", "lockr_local", "tray"])
    assert path == home / "config" / "autostart" / "lockr-local.desktop"
    text = path.read_text()
    assert "Type=Application" in text
    assert "Exec='/opt/lockr local/python' -m lockr_local tray" in text
    assert tray_config.autostart_enabled(platform="linux")
    tray_config.set_autostart(False, platform="linux")
    assert not path.exists() and not tray_config.autostart_enabled(platform="linux")


def test_macos_autostart_is_a_launch_agent(home: Path) -> None:
    path = tray_config.set_autostart(True, platform="darwin", command=["/Applications/lockr-local", "tray"])
    assert path == home / "Library" / "LaunchAgents" / "org.lockr-local.tray.plist"
    assert "<string>/Applications/lockr-local</string>" in path.read_text()
    assert "<key>RunAtLoad</key><true/>" in path.read_text()


def test_windows_has_no_file_autostart(home: Path) -> None:
    assert tray_config.set_autostart(True, platform="win32") is None
