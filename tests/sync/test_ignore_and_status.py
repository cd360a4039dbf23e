"""Ignore rules (built-ins + .lockrignore), the status snapshot file, and the state index across restarts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lockr_local.sync.engine import LocalFile
from lockr_local.sync.ignore import IgnoreRules
from lockr_local.sync.index import SyncIndex, index_path
from lockr_local.sync.scan import scan
from lockr_local.sync.status import PauseCause, RecentUpload, SyncState, SyncStatus, describe, read_status, write_status


@pytest.mark.parametrize("path, ignored", [
    ("report.docx", False),
    ("~$report.docx", True),
    ("notes.tmp", True),
    ("sub/.DS_Store", True),
    ("photos/Thumbs.db", True),
    (".main.py.swp", True),
    ("main.py~", True),
    (".#main.py", True),
    ("video.mp4.part", True),
    ("setup.exe.crdownload", True),
    ("build/out.o", True),        # from .lockrignore: build/
    ("src/build/out.o", True),
    ("debug.log", True),          # *.log
    ("keep.log", False),          # !keep.log
    ("docs/readme.md", False),
])
def test_builtin_and_lockrignore_rules(tmp_path: Path, path: str, ignored: bool) -> None:
    (tmp_path / ".lockrignore").write_text("build/\n*.log\n!keep.log\n")
    assert IgnoreRules(tmp_path).ignores(path) is ignored


def test_lockrignore_changes_are_picked_up(tmp_path: Path) -> None:
    rules = IgnoreRules(tmp_path)
    assert not rules.ignores("a.bak")
    (tmp_path / ".lockrignore").write_text("*.bak\n")
    assert rules.reload() and rules.ignores("a.bak")


def test_scan_skips_symlinks_and_ignored_folders_and_waits_for_fresh_files(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    (folder / "node_modules").mkdir(parents=True)
    (folder / "node_modules" / "x.js").write_text("x")
    (folder / ".lockrignore").write_text("node_modules/\n")
    (folder / "old.txt").write_text("old")
    (folder / "link").symlink_to(tmp_path)
    result = scan(folder, IgnoreRules(folder), {}, settle=0.0)
    assert set(result.files) == {".lockrignore", "old.txt"}
    assert result.skipped_links == {"link"}
    fresh = scan(folder, IgnoreRules(folder), {}, settle=3600)
    assert fresh.unstable == {".lockrignore", "old.txt"}  # modified "just now": not uploaded yet


def test_scan_of_a_missing_folder_says_so(tmp_path: Path) -> None:
    assert scan(tmp_path / "gone", IgnoreRules(tmp_path / "gone"), {}).folder_present is False


def test_status_file_round_trip_and_description(tmp_path: Path) -> None:
    status = SyncStatus(state="syncing", folder="/f", endpoint="http://x", queue_length=3, current_file="a.bin",
                        current_done=5, current_size=10, last_error="boom",
                        recent_uploads=(RecentUpload("a", 1, "id1", "http://x/download/id1", 1.0),))
    path = tmp_path / "s" / "status.json"
    write_status(path, status)
    assert read_status(path) == status
    text = describe(status)
    assert "state: syncing" in text and "a.bin (5/10 bytes)" in text and "http://x/download/id1" in text
    assert read_status(tmp_path / "missing.json") is None


def test_the_status_file_keeps_state_and_pause_cause_as_plain_words_read_back_as_enums(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_status(path, SyncStatus(state=SyncState.PAUSED, paused_reason="the folder is missing",
                                  paused_by=PauseCause.GUARD))
    raw = json.loads(path.read_text())
    assert (raw["state"], raw["paused_by"]) == ("paused", "guard")
    status = read_status(path)
    assert status is not None and status.state is SyncState.PAUSED and status.paused_by is PauseCause.GUARD
    assert "state: paused" in describe(status)


def test_the_index_keeps_state_across_restarts_and_sessions(tmp_path: Path) -> None:
    path = index_path(tmp_path, tmp_path / "folder", "http://h:1", None)
    assert path != index_path(tmp_path, tmp_path / "folder", "http://other:1", None)
    index = SyncIndex(path)
    a = LocalFile("a", 3, 10, "s" * 64)
    index.record_session(a, "http://h:1/upload/s", 262144)
    index.close()
    index = SyncIndex(path)
    entry = index.get("a")
    assert entry is not None and entry.remote_id is None and entry.session_offset == 262144
    index.record_synced(a, "id-new", replaces=("id-old",))
    assert index.get("a").remote_id == "id-new" and index.get("a").session_url is None
    assert index.pending_deletes() == {"id-old": "a"}
    index.delete_done("id-old")
    assert index.pending_deletes() == {} and index.get("a") is not None
    index.close()


def test_excluded_folders_stay_ignored_whatever_lockrignore_says(tmp_path: Path) -> None:
    (tmp_path / ".lockrignore").write_text("!.local/\n!.local/state/lockr-local/sync/*.db\n")
    rules = IgnoreRules(tmp_path, excluded=(".local/state/lockr-local/sync",))
    assert rules.ignores(".local/state/lockr-local/sync", is_dir=True)
    assert rules.ignores(".local/state/lockr-local/sync/home-0123.db")
    assert not rules.ignores(".local/state/lockr-local/synced.txt")
    assert not rules.ignores(".local/share/notes.txt")
