"""Icons drawn per state and the app config file (the autostart entries: test_autostart.py)."""

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
