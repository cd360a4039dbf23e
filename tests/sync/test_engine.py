"""The pure engine with synthetic scans, events and remote listings: every decision without disk or network."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field

import pytest

from lockr_local.sync.engine import (
    GuardSettings, IndexEntry, LocalFile, Plan, RemoteEntry, in_scope, plan, remote_name,
)
from lockr_local.sync.ignore import IgnoreRules
from lockr_local.sync.watcher import DirtyPaths

_ids = itertools.count(1)
_clock = itertools.count(1000)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class World:
    """A folder (path -> content), the agent's index and the remote, with the agent's execution simulated."""

    folder: dict[str, str] = field(default_factory=dict)
    mtimes: dict[str, int] = field(default_factory=dict)
    index: dict[str, IndexEntry] = field(default_factory=dict)
    remote: dict[str, RemoteEntry] = field(default_factory=dict)
    present: bool = True
    uploaded_bytes: int = 0
    remote_folder: str = ""

    def write(self, path: str, content: str) -> None:
        self.folder[path] = content
        self.mtimes[path] = next(_clock)

    def move(self, src: str, dst: str) -> None:
        self.folder[dst] = self.folder.pop(src)
        self.mtimes[dst] = self.mtimes.pop(src)  # rename keeps the mtime

    def scan(self, scope: frozenset[str] | None = None) -> dict[str, LocalFile]:
        return {p: LocalFile(p, len(c), self.mtimes[p], sha(c)) for p, c in self.folder.items() if in_scope(p, scope)}

    def plan(self, scope: frozenset[str] | None = None, **kwargs: object) -> Plan:
        kwargs.setdefault("remote_folder", self.remote_folder)
        return plan(self.scan(scope) if self.present else {}, self.index, list(self.remote.values()),
                    folder_present=self.present, scope=scope, **kwargs)  # type: ignore[arg-type]

    def add_foreign(self, name: str, content: str) -> str:
        remote_id = f"foreign{next(_ids)}"
        self.remote[remote_id] = RemoteEntry(name, remote_id, len(content), sha(content))
        return remote_id

    def apply(self, result: Plan) -> None:
        for forget in result.forgets:
            self.index.pop(forget.path, None)
        for adopt in result.adopts:
            if adopt.renamed_from:
                self.index.pop(adopt.renamed_from, None)
            self.index[adopt.path] = IndexEntry(adopt.path, adopt.size, adopt.mtime_ns, adopt.sha256, adopt.remote_id)
            for old in adopt.replaces:
                self.remote.pop(old, None)
        for up in result.uploads:
            remote_id = f"id{next(_ids)}"
            self.remote[remote_id] = RemoteEntry(up.name, remote_id, up.size, up.sha256)
            self.uploaded_bytes += up.size
            if up.renamed_from:
                self.index.pop(up.renamed_from, None)
            self.index[up.path] = IndexEntry(up.path, up.size, up.mtime_ns, up.sha256, remote_id)
            for old in up.replaces:
                self.remote.pop(old, None)
        for delete in result.deletes:
            self.remote.pop(delete.remote_id, None)
            for path, entry in list(self.index.items()):
                if entry.remote_id == delete.remote_id:
                    del self.index[path]

    def sync(self, scope: frozenset[str] | None = None) -> Plan:
        result = self.plan(scope)
        self.apply(result)
        return result

    def assert_mirrored(self) -> None:
        """The remote holds exactly the folder's files (by name, under its remote folder, and hash), plus
        foreign files and those of other synced folders."""
        ours = {e.name: e.sha256 for e in self.remote.values()
                if not e.id.startswith("foreign") and e.id in {i.remote_id for i in self.index.values()}}
        assert ours == {remote_name(p, self.remote_folder): sha(c) for p, c in self.folder.items()}
        assert self.plan().in_sync


def synced(**files: str) -> World:
    world = World()
    for path, content in files.items():
        world.write(path.replace("__", "/"), content)
    world.sync()
    return world


def test_new_files_are_uploaded_under_their_relative_paths() -> None:
    world = World()
    world.write("a.txt", "alpha")
    world.write("docs/b.txt", "beta")
    result = world.sync()
    assert sorted(u.path for u in result.uploads) == ["a.txt", "docs/b.txt"]
    world.assert_mirrored()


def test_a_changed_file_is_uploaded_and_replaces_the_old_copy_only_afterwards() -> None:
    world = synced(a="one")
    old_id = world.index["a"].remote_id
    world.write("a", "two")
    result = world.plan()
    assert [(u.path, u.reason, u.replaces) for u in result.uploads] == [("a", "changed", (old_id,))]
    assert result.deletes == []  # the old copy goes only once the upload completed
    world.apply(result)
    world.assert_mirrored()


def test_a_touched_but_identical_file_is_not_uploaded_again() -> None:
    world = synced(a="same")
    world.mtimes["a"] = next(_clock)
    result = world.sync()
    assert result.uploads == [] and [a.path for a in result.adopts] == ["a"]
    assert world.plan().in_sync


def test_a_local_delete_deletes_the_remote_copy() -> None:
    world = synced(a="1", b="2")
    del world.folder["a"]
    result = world.sync()
    assert [(d.path, d.reason) for d in result.deletes] == [("a", "deleted locally")]
    world.assert_mirrored()


def test_a_rename_uploads_under_the_new_name_then_deletes_the_old_copy() -> None:
    world = synced(old="content")
    old_id = world.index["old"].remote_id
    world.move("old", "new")
    result = world.plan()
    assert result.deletes == []
    [up] = result.uploads
    assert (up.path, up.renamed_from, up.replaces) == ("new", "old", (old_id,))
    world.apply(result)
    world.assert_mirrored()


def test_a_case_only_rename_ends_with_the_new_case_only() -> None:
    world = synced(**{"Report.PDF": "pdf"})
    world.move("Report.PDF", "report.pdf")
    result = world.sync()
    assert [u.renamed_from for u in result.uploads] == ["Report.PDF"]
    world.assert_mirrored()
    assert [e.name for e in world.remote.values()] == ["report.pdf"]


def test_a_directory_move_is_renames_not_deletions_even_past_the_guard() -> None:
    world = synced(**{f"dir__f{i}": f"c{i}" for i in range(30)})
    for i in range(30):
        world.move(f"dir/f{i}", f"moved/f{i}")
    scope = frozenset({"dir", "moved"})  # what the watcher reports for `mv dir moved`
    result = world.sync(scope)
    assert result.guard is None and result.deletes == []
    assert {u.renamed_from for u in result.uploads} == {f"dir/f{i}" for i in range(30)}
    world.assert_mirrored()


def test_an_atomic_save_is_one_upload_replacing_the_old_copy() -> None:
    """Editors write `a.txt.tmp` (ignored) then rename it over `a.txt`: the scan sees a.txt changed."""
    world = synced(**{"a.txt": "v1"})
    rules = IgnoreRules.__new__(IgnoreRules)  # built-ins only, no folder needed
    IgnoreRules.__init__(rules, __import__("pathlib").Path("/nonexistent-lockr-folder"))
    world.write("a.txt.tmp", "v2")
    world.move("a.txt.tmp", "a.txt")
    scope = frozenset({"a.txt.tmp", "a.txt"})
    local = {p: f for p, f in world.scan(scope).items() if not rules.ignores(p)}
    result = plan(local, world.index, list(world.remote.values()), scope=scope, is_ignored=rules.ignores)
    assert [(u.path, u.reason) for u in result.uploads] == [("a.txt", "changed")]
    assert result.deletes == []
    world.apply(result)
    world.assert_mirrored()


def test_create_modify_delete_in_one_burst_leaves_nothing_remote() -> None:
    world = synced(keep="k")
    world.write("tmpfile", "1")
    world.write("tmpfile", "2")
    del world.folder["tmpfile"]
    result = world.sync(frozenset({"tmpfile"}))
    assert result.actions == []
    world.assert_mirrored()


def test_remote_files_the_agent_did_not_create_are_left_alone() -> None:
    world = synced(a="mine", keep="k")
    foreign = world.add_foreign("b", "theirs")
    other_a = world.add_foreign("a", "another version of a")
    del world.folder["a"]
    world.sync()
    assert foreign in world.remote and other_a in world.remote and len(world.remote) == 3


def test_an_identical_remote_file_is_adopted_instead_of_uploaded_again() -> None:
    """A lost index, or a crash between an upload's completion and its recording, costs no bytes."""
    world = World()
    world.write("a", "data")
    foreign = world.add_foreign("a", "data")
    result = world.sync()
    assert result.uploads == [] and [a.remote_id for a in result.adopts] == [foreign]
    assert world.plan().in_sync


def test_a_file_deleted_remotely_by_someone_else_is_uploaded_again() -> None:
    world = synced(a="x")
    world.remote.clear()
    result = world.sync()
    assert [(u.path, u.reason) for u in result.uploads] == [("a", "missing on the remote")]
    world.assert_mirrored()


def test_an_interrupted_upload_resumes_its_session_when_the_content_is_unchanged() -> None:
    world = World()
    world.write("big", "0123456789")
    f = world.scan()["big"]
    world.index["big"] = IndexEntry("big", f.size, f.mtime_ns, f.sha256, None, "http://x/upload/s1", 4, f.sha256)
    [up] = world.plan().uploads
    assert (up.resume_url, up.resume_offset) == ("http://x/upload/s1", 4)
    world.write("big", "changed content")
    [up] = world.plan().uploads
    assert up.resume_url is None  # the session holds other bytes: start over


def test_interrupted_deletes_of_replaced_copies_are_finished() -> None:
    world = synced(a="v2")
    world.remote["old1"] = RemoteEntry("a", "old1", 2, sha("v1"))
    result = world.plan(pending_deletes={"old1": "a"})
    assert [(d.remote_id, d.reason) for d in result.deletes] == [("old1", "replaced by a newer upload")]


@pytest.mark.parametrize("folder_present, files_left, deleted, expect_guard", [
    (False, 0, 0, "missing"),
    (True, 0, 20, "empty"),
    (True, 5, 15, "of 20 synced files"),
    (True, 17, 3, None),
    (True, 10, 10, None),
])
def test_the_deletion_guard_pauses_and_deletes_nothing(folder_present: bool, files_left: int, deleted: int,
                                                       expect_guard: str | None) -> None:
    world = synced(**{f"f{i}": str(i) for i in range(20)})
    for i in range(20 - files_left):
        del world.folder[f"f{i}"]
    world.present = folder_present
    result = world.plan(guard=GuardSettings(max_count=100, max_share=0.5, share_min_count=10))
    if expect_guard is None:
        assert result.guard is None and len(result.deletes) == deleted
    else:
        assert result.guard is not None and expect_guard in result.guard.reason
        assert result.deletes == []


def test_the_deletion_guard_count_limit_and_its_confirmation() -> None:
    world = synced(**{f"f{i}": str(i) for i in range(30)})
    for i in range(6):
        del world.folder[f"f{i}"]
    guard = GuardSettings(max_count=5, max_share=1.0)
    assert world.plan(guard=guard).guard is not None
    confirmed = world.plan(guard=guard, allow_deletions=True)
    assert confirmed.guard is None and len(confirmed.deletes) == 6


def test_a_newly_ignored_file_is_forgotten_without_deleting_the_remote_copy() -> None:
    world = synced(**{"notes.bak": "b"})
    del world.folder["notes.bak"]  # the scan no longer reports it: it matches a new .lockrignore line
    result = world.plan(is_ignored=lambda path: path.endswith(".bak"))
    assert result.deletes == [] and [f.path for f in result.forgets] == ["notes.bak"]


def test_a_file_still_being_written_is_neither_uploaded_adopted_nor_taken_for_deleted() -> None:
    world = synced(a="one", b="bee")
    world.write("a", "two, half written")
    world.write("new.txt", "half")
    world.add_foreign("copy.txt", "same bytes")
    world.write("copy.txt", "same bytes")  # would be adopted, were it finished
    result = world.plan(unstable={"a", "new.txt", "copy.txt"})
    assert result.uploads == [] and result.adopts == [] and result.deletes == [] and result.skips == []
    assert result.in_sync  # nothing to do now: the agent looks at them again once they settle
    settled = world.sync()
    assert sorted(u.path for u in settled.uploads) == ["a", "new.txt"]
    assert [a.path for a in settled.adopts] == ["copy.txt"]


def test_an_unreadable_file_is_skipped_with_its_reason_and_its_remote_copy_kept() -> None:
    world = synced(a="one", b="bee")
    world.write("a", "changed but locked")
    result = world.plan(unreadable={"a": "Permission denied", "private/": "Permission denied"})
    assert result.uploads == [] and result.deletes == []
    assert [(s.path, s.reason) for s in result.skips] == [
        ("a", "cannot be read (Permission denied); retrying"),
        ("private/", "cannot be read (Permission denied); retrying")]
    assert [u.path for u in world.sync().uploads] == ["a"]  # readable again: uploaded


def test_names_the_server_would_refuse_are_skipped_and_reported() -> None:
    world = World()
    world.write("bad /name.txt", "x")
    result = world.plan()
    assert result.uploads == [] and "space" in result.skips[0].reason


def test_out_of_scope_paths_are_not_touched_by_an_incremental_pass() -> None:
    world = synced(a="1", b="2")
    del world.folder["a"]
    world.write("c", "3")
    result = world.plan(frozenset({"c"}))
    assert [u.path for u in result.uploads] == ["c"] and result.deletes == []


def test_dirty_paths_are_debounced_per_path() -> None:
    now = [0.0]
    dirty = DirtyPaths(clock=lambda: now[0])
    dirty.mark("a")
    now[0] = 0.3
    dirty.mark("b")
    now[0] = 0.6
    assert dirty.take(0.5) == (False, frozenset({"a"}))
    now[0] = 0.9
    assert dirty.take(0.5) == (False, frozenset({"b"}))


def test_an_event_overflow_becomes_one_full_scan() -> None:
    now = [0.0]
    dirty = DirtyPaths(max_paths=3, clock=lambda: now[0])
    for i in range(5):
        dirty.mark(f"p{i}")
    now[0] = 1.0
    assert dirty.take(0.5) == (True, frozenset())
    assert dirty.take(0.5) == (False, frozenset())


# -- remote folders: each synced folder under a folder of its own -----------------------------------------

def test_with_a_remote_folder_files_are_uploaded_under_it() -> None:
    world = World(remote_folder="laptop")
    world.write("a.txt", "alpha")
    world.write("docs/b.txt", "beta")
    result = world.sync()
    assert sorted((u.path, u.name) for u in result.uploads) == [("a.txt", "laptop/a.txt"),
                                                                ("docs/b.txt", "laptop/docs/b.txt")]
    assert sorted(e.name for e in world.remote.values()) == ["laptop/a.txt", "laptop/docs/b.txt"]
    world.assert_mirrored()


def test_two_synced_folders_with_the_same_file_make_two_remote_files() -> None:
    shared_remote: dict[str, RemoteEntry] = {}
    work, home = World(remote=shared_remote, remote_folder="work"), World(remote=shared_remote, remote_folder="home")
    for world in (work, home):
        world.write("docs/b.txt", "same bytes")
        world.sync()
    assert sorted(e.name for e in shared_remote.values()) == ["home/docs/b.txt", "work/docs/b.txt"]
    assert len({e.id for e in shared_remote.values()}) == 2
    work.write("keep.txt", "so that the folder is not empty (which would pause deletions)")
    work.sync()
    work.assert_mirrored()
    home.assert_mirrored()
    work.folder.pop("docs/b.txt")
    assert [d.path for d in work.sync().deletes] == ["docs/b.txt"]
    assert sorted(e.name for e in shared_remote.values()) == ["home/docs/b.txt", "work/keep.txt"]
    home.assert_mirrored()


@pytest.mark.parametrize("foreign_name,adopted", [("laptop/docs/b.txt", True), ("docs/b.txt", False),
                                                  ("other/docs/b.txt", False), ("laptop2/docs/b.txt", False)])
def test_only_an_identical_file_under_the_remote_folder_is_adopted(foreign_name: str, adopted: bool) -> None:
    world = World(remote_folder="laptop")
    foreign = world.add_foreign(foreign_name, "beta")
    world.write("docs/b.txt", "beta")
    result = world.plan()
    assert [a.remote_id for a in result.adopts] == ([foreign] if adopted else [])
    assert [u.name for u in result.uploads] == ([] if adopted else ["laptop/docs/b.txt"])


@pytest.mark.parametrize("before,after", [("", "laptop"), ("laptop", "desk/laptop"), ("laptop", "")])
def test_a_changed_remote_folder_moves_each_file_by_upload_then_delete(before: str, after: str) -> None:
    world = World(remote_folder=before)
    for i in range(12):
        world.write(f"f{i}.txt", f"content {i}")
    world.sync()
    old_ids = {e.remote_id for e in world.index.values()}
    world.remote_folder = after
    result = world.plan(guard=GuardSettings(max_count=5))
    assert result.guard is None and result.deletes == []  # not deletions: each old copy is replaced
    assert sorted(u.name for u in result.uploads) == sorted(remote_name(f"f{i}.txt", after) for i in range(12))
    assert {old for u in result.uploads for old in u.replaces} == old_ids
    world.apply(result)
    assert not old_ids & set(world.remote)
    world.assert_mirrored()


def test_a_path_too_long_under_the_remote_folder_is_skipped() -> None:
    world = World(remote_folder="/".join(letter * 200 for letter in "fghi"))  # 803 bytes of the 1024
    world.write("x" * 240 + ".txt", "fits alone, not with the folder in front")
    result = world.plan()
    assert result.uploads == [] and len(result.skips) == 1
