"""Fixtures of the sync agent's end-to-end tests: one `lockr-local serve` per module, a folder, agents."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import ServerProcess
from tests.sync.support import AccessLog, Agents


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("server")).start()
    yield server
    server.stop()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "folder"
    path.mkdir()
    return path


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Agents]:
    made = Agents(tmp_path / "state")
    yield made
    made.stop_all()


@pytest.fixture
def access_log() -> Iterator[AccessLog]:
    """Records the answers of the in-process servers (`server`, `server_factory`): their `lockr.access` log."""
    logger = logging.getLogger("lockr.access")
    handler, level = AccessLog(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)
