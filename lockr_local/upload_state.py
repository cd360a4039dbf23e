"""The CLI's memory of unfinished resumable uploads, so a rerun continues instead of starting over.

One small JSON file in the platform state folder maps (endpoint, absolute path, size, mtime) to the
session's uploadUrl. A changed file (other size or mtime) gets a new key, so stale bytes are never
completed with new ones. Entries are removed on completion and pruned after `MAX_AGE`.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from lockr_local.credentials import read_json, state_dir, write_private_json

STATE_FILE = "uploads.json"
MAX_AGE = 8 * 24 * 3600  # a little longer than the server's default session expiry (one week)


@dataclass(frozen=True)
class PendingUpload:
    session_url: str
    path: str
    size: int
    created: float
    claim_token: str | None = None


def upload_key(endpoint: str, path: str | os.PathLike[str], size: int, mtime_ns: int) -> str:
    identity = json.dumps([endpoint, os.path.abspath(os.fspath(path)), size, mtime_ns])
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()


class UploadState:
    """Read-modify-write of the state file; each change is an atomic replace (0600: URLs are capabilities)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or state_dir() / STATE_FILE

    def key_for(self, endpoint: str, path: str | os.PathLike[str]) -> str:
        stat = os.stat(path)
        return upload_key(endpoint, path, stat.st_size, stat.st_mtime_ns)

    def get(self, key: str) -> PendingUpload | None:
        entry = read_json(self.path).get(key)
        if not isinstance(entry, dict) or not entry.get("session_url"):
            return None
        claim = entry.get("claim_token")
        return PendingUpload(str(entry["session_url"]), str(entry.get("path", "")), int(entry.get("size", 0)),
                             float(entry.get("created", 0)), claim if isinstance(claim, str) else None)

    def put(self, key: str, session_url: str, path: str | os.PathLike[str], size: int,
            claim_token: str | None = None) -> None:
        entries = self._fresh(read_json(self.path))
        entries[key] = {"session_url": session_url, "path": os.path.abspath(os.fspath(path)), "size": size,
                        "created": time.time(), **({"claim_token": claim_token} if claim_token else {})}
        write_private_json(self.path, entries)

    def remove(self, key: str) -> None:
        entries = read_json(self.path)
        if key in entries:
            del entries[key]
            write_private_json(self.path, self._fresh(entries))

    @staticmethod
    def _fresh(entries: dict[str, object]) -> dict[str, object]:
        cutoff = time.time() - MAX_AGE
        return {key: value for key, value in entries.items()
                if isinstance(value, dict) and float(value.get("created", 0)) >= cutoff}
