"""Folder changes made durable: fsync a folder after a rename or a new entry, create folders durably."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_directory(path: Path) -> None:
    """Makes a rename or a new entry in `path` durable."""
    if os.name == "nt":  # Windows cannot open a folder to fsync it; NTFS journals the rename itself
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def durable_mkdir(path: Path, mode: int = 0o777) -> None:
    """Creates `path` and its missing parents, each new folder made durable in its parent: a power cut
    right after the first upload must not lose the new data folder and everything in it. `mode` (less
    the umask) is the new `path`'s; its parents get the umask's."""
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=mode if folder == path else 0o777)
        except FileExistsError:
            continue
        fsync_directory(folder.parent)
