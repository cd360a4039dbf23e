"""`TrayModel`: pure mapping from the sync agent's `SyncStatus` to the icon, its title and its menu entries.

No pystray, no threads, no clock: `tray/app.py` turns a `TrayView` into pystray objects, and tests
check every state here without a display.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass

from lockr_local.sync.status import RecentUpload, SyncStatus
from lockr_local.units import format_size

# How many recent uploads the menu lists (the agent keeps up to 20).
RECENT_IN_MENU = 10


class IconState(enum.Enum):
    """What the icon looks like; `tray/icons.py` draws one image per state."""

    IN_SYNC = "in_sync"
    SYNCING = "syncing"
    PAUSED = "paused"
    OFFLINE = "offline"
    ERROR = "error"
    NOT_SET_UP = "not_set_up"


class Action(enum.Enum):
    """What a menu entry does; app.py maps each to a callback, the control page to a button."""

    NONE = "none"
    SYNC_NOW = "sync_now"
    TOGGLE_PAUSE = "toggle_pause"
    OPEN_FOLDER = "open_folder"
    OPEN_WEB = "open_web"
    COPY_LINK = "copy_link"
    SETTINGS = "settings"
    QUIT = "quit"


@dataclass(frozen=True)
class MenuEntry:
    """One menu line. `argument` carries the share link for COPY_LINK; `children` makes a submenu."""

    label: str
    action: Action = Action.NONE
    enabled: bool = True
    checked: bool | None = None
    argument: str = ""
    children: tuple["MenuEntry", ...] = ()
    separator: bool = False


SEPARATOR = MenuEntry("-", separator=True)


@dataclass(frozen=True)
class TrayView:
    """Everything the tray shows for one status snapshot; equal views mean nothing to redraw."""

    icon: IconState
    title: str
    menu: tuple[MenuEntry, ...]
    default_action: Action
    progress: float | None = None  # 0..1 of the current file, drawn as an arc on the syncing icon
    notification: str | None = None


@dataclass(frozen=True)
class TrayInput:
    """The model's inputs besides the status: facts only the app knows."""

    configured: bool = True
    user_paused: bool = False
    has_menu: bool = True
    web_url: str = ""


def human_size(size: int) -> str:
    return format_size(size)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


class TrayModel:
    """Turns snapshots into views; remembers the previous state only to decide on notifications."""

    def __init__(self) -> None:
        self._previous: IconState | None = None
        self._previous_error: str | None = None

    # ----- the pure parts ------------------------------------------------------------------------
    @staticmethod
    def icon_state(status: SyncStatus, facts: TrayInput) -> IconState:
        if not facts.configured or status.state == "not_configured":
            return IconState.NOT_SET_UP
        if facts.user_paused or status.state == "paused":
            return IconState.PAUSED
        return {
            "idle": IconState.IN_SYNC,
            "syncing": IconState.SYNCING,
            "offline": IconState.OFFLINE,
            "error": IconState.ERROR,
        }.get(status.state, IconState.ERROR)

    @staticmethod
    def progress(status: SyncStatus) -> float | None:
        if status.state != "syncing" or not status.current_file or status.current_size <= 0:
            return None
        return max(0.0, min(1.0, status.current_done / status.current_size))

    @classmethod
    def title(cls, status: SyncStatus, facts: TrayInput) -> str:
        """The tooltip, also the menu's first (disabled) line: one short sentence."""
        state = cls.icon_state(status, facts)
        if state is IconState.NOT_SET_UP:
            return "lockr-local: not set up yet" + (" - open Settings" if facts.has_menu else " - click to set up")
        if state is IconState.PAUSED:
            if facts.user_paused or not status.paused_reason or status.paused_reason == "paused by the user":
                return "lockr-local: paused"
            return f"lockr-local: paused - {status.paused_reason}"
        if state is IconState.SYNCING:
            files = max(status.queue_length, 1 if status.current_file else 0)
            fraction = cls.progress(status)
            if files == 0:
                return "lockr-local: syncing"
            text = f"Uploading {_plural(files, 'file')}"
            return f"{text}, {fraction * 100:.0f}%" if fraction is not None else text
        if state is IconState.OFFLINE:
            return f"lockr-local: offline - cannot reach {status.endpoint or 'the server'}; retrying"
        if state is IconState.ERROR:
            return f"lockr-local: error - {status.last_error or 'see the log'}"
        name = os.path.basename(status.folder.rstrip("/\\")) or status.folder
        return f"lockr-local: up to date ({name})" if name else "lockr-local: up to date"

    @staticmethod
    def recent_entries(uploads: tuple[RecentUpload, ...]) -> tuple[MenuEntry, ...]:
        if not uploads:
            return (MenuEntry("No uploads yet", enabled=False),)
        return tuple(MenuEntry(f"{upload.path} ({human_size(upload.size)})", Action.COPY_LINK,
                               argument=upload.share_url)
                     for upload in uploads[:RECENT_IN_MENU])

    @classmethod
    def menu(cls, status: SyncStatus, facts: TrayInput) -> tuple[MenuEntry, ...]:
        configured = cls.icon_state(status, facts) is not IconState.NOT_SET_UP
        paused = facts.user_paused
        return (
            MenuEntry(cls.title(status, facts), enabled=False),
            SEPARATOR,
            MenuEntry("Sync now", Action.SYNC_NOW, enabled=configured and not paused),
            MenuEntry("Pause syncing", Action.TOGGLE_PAUSE, enabled=configured, checked=paused),
            MenuEntry("Open folder", Action.OPEN_FOLDER, enabled=configured and bool(status.folder)),
            MenuEntry("Open web page", Action.OPEN_WEB, enabled=bool(facts.web_url)),
            MenuEntry("Recent uploads", enabled=configured, children=cls.recent_entries(status.recent_uploads)),
            SEPARATOR,
            MenuEntry("Settings...", Action.SETTINGS),
            MenuEntry("Quit lockr-local", Action.QUIT),
        )

    @staticmethod
    def default_action(status: SyncStatus, facts: TrayInput) -> Action:
        """A left click: Settings when not set up or when the backend has no menu (the page offers every
        action then), else Open folder."""
        if not facts.configured or status.state == "not_configured" or not facts.has_menu:
            return Action.SETTINGS
        return Action.OPEN_FOLDER

    # ----- with memory: notifications on entering a bad state ------------------------------------
    def view(self, status: SyncStatus, facts: TrayInput) -> TrayView:
        state = self.icon_state(status, facts)
        notification = None
        if state in (IconState.ERROR, IconState.OFFLINE):
            if state is not self._previous or (state is IconState.ERROR and status.last_error != self._previous_error):
                notification = self.title(status, facts)
        self._previous = state
        self._previous_error = status.last_error if state is IconState.ERROR else None
        return TrayView(icon=state, title=self.title(status, facts), menu=self.menu(status, facts),
                        default_action=self.default_action(status, facts), progress=self.progress(status),
                        notification=notification)
