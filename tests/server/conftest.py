"""Server-test fixtures shared across files: a real small filesystem for the disk-full cases."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterator

import pytest


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return result.returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB tmpfs: a disk that really fills up (ENOSPC from the kernel, not a mock)."""
    mount_point = tmp_path / "small-disk"
    if not _mount_tmpfs(mount_point, "3m"):
        pytest.skip("cannot mount a tmpfs here (needs root); the disk-full test needs a real small filesystem")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)
