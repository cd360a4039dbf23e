"""Tray fixtures: a real X desktop (Xvfb + trayer) and a `lockr-local serve` subprocess."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import ServerProcess
from tests.tray.desktop import Desktop, missing_tools


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
