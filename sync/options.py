"""`AgentOptions`, and the one mapping from the sync_* settings to them (the CLI and the tray both use it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lockr_local.sync.engine import GuardSettings
from lockr_local.sync.index import default_state_dir

if TYPE_CHECKING:
    from lockr_local.config import Settings


@dataclass(frozen=True)
class AgentOptions:
    """How the agent behaves; `agent_options` fills these from the sync_* settings."""

    concurrency: int = 8
    scan_interval: float = 600.0
    debounce: float = 0.5
    settle: float = 1.0
    retry_unreadable: float = 10.0
    max_backoff: float = 60.0
    guard: GuardSettings = field(default_factory=GuardSettings)
    allow_deletions: bool = False
    state_dir: Path | None = None
    watch: bool = True


def state_dir(settings: "Settings") -> Path:
    """Where the agent keeps its index and status file: sync_state_dir, else the user state folder."""
    return Path(settings.sync_state_dir).expanduser() if settings.sync_state_dir else default_state_dir()


def agent_options(settings: "Settings", *, allow_deletions: bool = False, once: bool = False) -> AgentOptions:
    """The options the sync_* settings ask for; `once` (`sync --once`) never watches the folder."""
    return AgentOptions(concurrency=settings.sync_concurrency, scan_interval=settings.sync_scan_interval,
                        guard=GuardSettings(max_count=settings.sync_delete_max_count,
                                            max_share=settings.sync_delete_max_share),
                        allow_deletions=allow_deletions, state_dir=state_dir(settings),
                        watch=settings.sync_watch and not once)
