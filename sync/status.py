"""`SyncStatus`: the agent's state (`SyncState`) as an immutable snapshot, and its JSON file for other processes."""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class SyncState(enum.StrEnum):
    """What the agent is doing; a StrEnum, so the status file and `--status` show the plain word."""

    IDLE = "idle"
    SYNCING = "syncing"
    PAUSED = "paused"
    OFFLINE = "offline"
    ERROR = "error"
    NOT_CONFIGURED = "not_configured"


class PauseCause(enum.StrEnum):
    """Who paused syncing: the user (Pause, `pause()`), or the deletion guard (a missing or emptied folder,
    too many deletions at once), whose reason is worth showing."""

    USER = "user"
    GUARD = "guard"


@dataclass(frozen=True)
class RecentUpload:
    path: str
    size: int
    remote_id: str
    share_url: str
    at: float


@dataclass(frozen=True)
class SyncStatus:
    """What the tray and `lockr-local sync --status` show; produced by SyncAgent.status()."""

    state: SyncState = SyncState.NOT_CONFIGURED
    folder: str = ""
    endpoint: str = ""
    queue_length: int = 0
    current_file: str | None = None
    current_done: int = 0
    current_size: int = 0
    last_error: str | None = None
    last_sync: float | None = None
    paused_reason: str | None = None
    paused_by: PauseCause | None = None
    skipped: tuple[str, ...] = ()
    recent_uploads: tuple[RecentUpload, ...] = field(default_factory=tuple)
    pid: int = 0
    updated: float = 0.0

    def __post_init__(self) -> None:
        # Values from JSON (or a caller's plain "idle") become the enums, so readers compare members.
        object.__setattr__(self, "state", SyncState(self.state))
        if self.paused_by is not None:
            object.__setattr__(self, "paused_by", PauseCause(self.paused_by))

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["state"] = self.state.value
        data["paused_by"] = self.paused_by.value if self.paused_by is not None else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "SyncStatus":
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["recent_uploads"] = tuple(RecentUpload(**item) for item in values.get("recent_uploads", ()))
        values["skipped"] = tuple(values.get("skipped", ()))
        return cls(**values)


def write_status(path: Path, status: SyncStatus) -> None:
    """Atomically replaces the status file, so a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".status-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(status.to_json(), handle, indent=1)
        os.replace(temp, path)
    except OSError:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


def read_status(path: Path) -> SyncStatus | None:
    try:
        return SyncStatus.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def describe(status: SyncStatus) -> str:
    """A few readable lines for `lockr-local sync --status`."""
    import time

    lines = [f"{status.folder} -> {status.endpoint}", f"state: {status.state.value}"]
    if status.paused_reason:
        lines.append(f"paused: {status.paused_reason}")
    lines.append(f"queue: {status.queue_length}")
    if status.current_file:
        lines.append(f"uploading: {status.current_file} ({status.current_done}/{status.current_size} bytes)")
    if status.last_sync:
        lines.append(f"last sync: {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(status.last_sync))}")
    if status.last_error:
        lines.append(f"last error: {status.last_error}")
    for skipped in status.skipped[:10]:
        lines.append(f"skipped: {skipped}")
    for upload in status.recent_uploads[:5]:
        lines.append(f"uploaded: {upload.path} {upload.share_url}")
    return "\n".join(lines)
