"""TrayModel: every agent state -> icon, title, menu entries and default action (pure, no display)."""

from __future__ import annotations

import pytest

from lockr_local.sync.status import PauseCause, RecentUpload, SyncStatus
from lockr_local.tray.model import RECENT_IN_MENU, Action, IconState, MenuEntry, TrayInput, TrayModel

FOLDER = "/home/ann/Documents"
ENDPOINT = "http://127.0.0.1:8080"


def status(state: str, **changes: object) -> SyncStatus:
    return SyncStatus(state=state, folder=FOLDER, endpoint=ENDPOINT, **changes)  # type: ignore[arg-type]


def entry(view_menu: tuple[MenuEntry, ...], action: Action) -> MenuEntry:
    return next(e for e in view_menu if e.action is action)


FACTS = TrayInput(configured=True, web_url=f"{ENDPOINT}/files")


@pytest.mark.parametrize("snapshot, facts, icon, title", [
    (status("idle"), FACTS, IconState.IN_SYNC, "lockr-local: up to date (Documents)"),
    (status("syncing", queue_length=3, current_file="a.bin", current_done=42, current_size=100), FACTS,
     IconState.SYNCING, "Uploading 3 files, 42%"),
    (status("syncing", current_file="a.bin", current_done=1, current_size=3), FACTS,
     IconState.SYNCING, "Uploading 1 file, 33%"),
    (status("syncing", queue_length=2), FACTS, IconState.SYNCING, "Uploading 2 files"),
    (status("syncing"), FACTS, IconState.SYNCING, "lockr-local: syncing"),
    (status("paused", paused_reason="paused by the user", paused_by=PauseCause.USER), TrayInput(user_paused=True),
     IconState.PAUSED, "lockr-local: paused"),
    (status("paused", paused_reason="the folder is missing", paused_by=PauseCause.GUARD), FACTS, IconState.PAUSED,
     "lockr-local: paused - the folder is missing"),
    # Told apart by who paused, not by the sentence: a user pause worded otherwise is still plain "paused".
    (status("paused", paused_reason="angehalten", paused_by=PauseCause.USER), FACTS, IconState.PAUSED,
     "lockr-local: paused"),
    (status("offline", last_error="connection refused"), FACTS, IconState.OFFLINE,
     f"lockr-local: offline - cannot reach {ENDPOINT}; retrying"),
    (status("error", last_error="quota exceeded"), FACTS, IconState.ERROR, "lockr-local: error - quota exceeded"),
    (SyncStatus(), TrayInput(configured=False), IconState.NOT_SET_UP, "lockr-local: not set up yet - open Settings"),
    (SyncStatus(), TrayInput(configured=False, has_menu=False), IconState.NOT_SET_UP,
     "lockr-local: not set up yet - click to set up"),
])
def test_each_agent_state_has_its_icon_and_title(snapshot: SyncStatus, facts: TrayInput, icon: IconState,
                                                 title: str) -> None:
    view = TrayModel().view(snapshot, facts)
    assert view.icon is icon
    assert view.title == title
    assert view.menu[0] == MenuEntry(title, enabled=False)  # the status line, never clickable


def test_user_pause_shows_paused_even_while_the_agent_reports_syncing() -> None:
    view = TrayModel().view(status("syncing", queue_length=1), TrayInput(user_paused=True))
    assert view.icon is IconState.PAUSED
    assert entry(view.menu, Action.TOGGLE_PAUSE).checked is True
    assert entry(view.menu, Action.SYNC_NOW).enabled is False


def test_pause_entry_is_unchecked_while_running() -> None:
    view = TrayModel().view(status("idle"), FACTS)
    assert entry(view.menu, Action.TOGGLE_PAUSE).checked is False
    assert entry(view.menu, Action.SYNC_NOW).enabled is True


def test_menu_offers_every_action_in_order() -> None:
    view = TrayModel().view(status("idle"), FACTS)
    labels = [e.label for e in view.menu if not e.separator][1:]
    assert labels == ["Sync now", "Pause syncing", "Open folder", "Open web page", "Recent uploads", "Settings...",
                      "Quit lockr-local"]
    assert all(e.enabled for e in view.menu[1:] if not e.separator)


def test_not_set_up_disables_folder_actions_but_keeps_settings_and_quit() -> None:
    view = TrayModel().view(SyncStatus(), TrayInput(configured=False))
    enabled = {e.label for e in view.menu if e.enabled and not e.separator}
    assert enabled == {"Settings...", "Quit lockr-local"}
    assert view.default_action is Action.SETTINGS


def test_recent_uploads_copy_their_share_links_newest_first_and_capped() -> None:
    uploads = tuple(RecentUpload(f"f{i}.txt", 1500 * i, f"id{i}", f"{ENDPOINT}/download/id{i}", float(i))
                    for i in range(15))
    view = TrayModel().view(status("idle", recent_uploads=uploads), FACTS)
    submenu = next(e for e in view.menu if e.label == "Recent uploads").children
    assert len(submenu) == RECENT_IN_MENU
    assert submenu[0] == MenuEntry("f0.txt (0 B)", Action.COPY_LINK, argument=f"{ENDPOINT}/download/id0")
    assert submenu[2].label == "f2.txt (3.0 KB)"


def test_no_recent_uploads_is_a_disabled_line() -> None:
    view = TrayModel().view(status("idle"), FACTS)
    submenu = next(e for e in view.menu if e.label == "Recent uploads").children
    assert submenu == (MenuEntry("No uploads yet", enabled=False),)


@pytest.mark.parametrize("facts, expected", [
    (FACTS, Action.OPEN_FOLDER),
    (TrayInput(configured=True, has_menu=False), Action.SETTINGS),  # xorg: the click opens the control page
    (TrayInput(configured=False), Action.SETTINGS),
])
def test_left_click_does_something_useful_on_every_backend(facts: TrayInput, expected: Action) -> None:
    assert TrayModel().view(status("idle"), facts).default_action is expected


def test_progress_is_the_current_files_fraction_only_while_syncing() -> None:
    model = TrayModel()
    assert model.view(status("syncing", current_file="a", current_done=25, current_size=100), FACTS).progress == 0.25
    assert model.view(status("idle", current_file="a", current_done=25, current_size=100), FACTS).progress is None
    assert model.view(status("syncing", current_file="empty", current_size=0), FACTS).progress is None


def test_notifies_once_on_entering_error_or_offline_and_again_for_a_new_error() -> None:
    model = TrayModel()
    assert model.view(status("idle"), FACTS).notification is None
    assert model.view(status("offline"), FACTS).notification is not None
    assert model.view(status("offline"), FACTS).notification is None
    first = model.view(status("error", last_error="quota exceeded"), FACTS).notification
    assert first == "lockr-local: error - quota exceeded"
    assert model.view(status("error", last_error="quota exceeded"), FACTS).notification is None
    assert model.view(status("error", last_error="token revoked"), FACTS).notification is not None
    assert model.view(status("idle"), FACTS).notification is None


def test_open_web_page_needs_an_endpoint() -> None:
    view = TrayModel().view(SyncStatus(), TrayInput(configured=False))
    assert entry(view.menu, Action.OPEN_WEB).enabled is False
