"""Fixtures: a forgetfs mount in the test's temp folder, always unmounted, its daemon's log checked clean."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.powercut.mount import PowerCutMount, fuse_missing


@pytest.fixture
def power_mount(tmp_path: Path) -> Iterator[PowerCutMount]:
    """A mounted forgetfs; skipped only where FUSE is missing (a failure under LOCKR_REQUIRE_ALL=1)."""
    reason = fuse_missing()
    if reason:
        pytest.skip(reason)
    mount = PowerCutMount(tmp_path / "forgetfs", tmp_path / "mnt").mount()
    try:
        yield mount
    finally:
        mount.unmount()
    assert "Traceback" not in mount.log(), f"forgetfs failed an operation:\n{mount.log()}"
