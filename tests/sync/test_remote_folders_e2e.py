"""A remote folder per synced folder (`sync FOLDER --remote-folder NAME`, by default the folder's name): two
synced folders holding the same relative path make two remote files that WebDAV shows apart, an overlapping
mapping is refused before anything is uploaded, and a changed remote folder moves the files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import requests

from tests.helpers import ServerProcess, create_account
from tests.sync.support import remote_tree, run_cli, write


def env_for(server: ServerProcess, token: str, tmp_path: Path) -> dict[str, str]:
    return {"LOCKR_ENDPOINT": server.url, "LOCKR_TOKEN": token, "LOCKR_SYNC_STATE_DIR": str(tmp_path / "state")}


def test_two_synced_folders_with_docs_b_txt_make_two_files_webdav_shows_at_two_paths(
        shared_server: ServerProcess, tmp_path: Path) -> None:
    account = create_account(shared_server.url)
    env = env_for(shared_server, account.token, tmp_path)
    work, home = tmp_path / "work", tmp_path / "elsewhere" / "home"
    write(work / "docs" / "b.txt", "the work copy")
    write(home / "docs" / "b.txt", "the home copy")
    first = run_cli("sync", str(work), "--once", env=env)  # default: the folder's own name
    assert first.returncode == 0, first.stderr
    assert "remote folder work" in first.stdout
    second = run_cli("sync", str(home), "--once", "--remote-folder", "desk/home", "--json", env=env)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["remoteFolder"] == "desk/home"

    tree = remote_tree(shared_server.url, account)
    assert set(tree) == {"work/docs/b.txt", "desk/home/docs/b.txt"}
    dav = f"{shared_server.url}/dav/{account.username}"
    for path, text in (("work/docs/b.txt", "the work copy"), ("desk/home/docs/b.txt", "the home copy")):
        response = requests.get(f"{dav}/{path}", headers=account.auth, timeout=30)
        assert response.status_code == 200 and response.text == text, (path, response.status_code)
    listing = requests.request("PROPFIND", f"{dav}/", headers={"Depth": "1", **account.auth}, timeout=30)
    assert listing.status_code == 207
    assert f"/dav/{account.username}/work/" in listing.text and f"/dav/{account.username}/desk/" in listing.text

    again = run_cli("sync", str(work), "--once", env=env)  # the recorded remote folder is kept
    assert again.returncode == 0, again.stderr
    assert set(remote_tree(shared_server.url, account)) == set(tree)


@pytest.mark.parametrize("first_args,second,second_args,says", [
    (["--remote-folder", "shared"], "other", ["--remote-folder", "shared"], "overlaps shared"),
    (["--remote-folder", "shared"], "other", ["--remote-folder", "shared/sub"], "overlaps shared"),
    (["--remote-folder", "shared/sub"], "other", ["--remote-folder", "shared"], "overlaps shared/sub"),
    (["--remote-folder", "shared"], "other", ["--remote-folder", ""], "(the top level) overlaps shared"),
    ([], "parent/first/inner", ["--remote-folder", "apart"], "are inside one another"),
    ([], "parent", ["--remote-folder", "apart"], "are inside one another"),
], ids=["same", "inside", "around", "top-level", "local-inside", "local-around"])
def test_an_overlapping_synced_folder_is_refused_and_uploads_nothing(
        shared_server: ServerProcess, tmp_path: Path, first_args: list[str], second: str, second_args: list[str],
        says: str) -> None:
    account = create_account(shared_server.url)
    env = env_for(shared_server, account.token, tmp_path)
    first = tmp_path / "parent" / "first"
    write(first / "a.txt", "first")
    done = run_cli("sync", str(first), "--once", *first_args, env=env)
    assert done.returncode == 0, done.stderr
    before = remote_tree(shared_server.url, account)
    other = tmp_path / second
    write(other / "b.txt", "second")

    refused = run_cli("sync", str(other), "--once", *second_args, env=env)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert says in refused.stderr and str(first) in refused.stderr and "Traceback" not in refused.stderr
    assert remote_tree(shared_server.url, account) == before
    assert len(list((tmp_path / "state").glob("*.db"))) == 1  # nothing recorded for the refused folder


def test_a_synced_folder_that_no_longer_exists_does_not_block_its_remote_folder(
        shared_server: ServerProcess, tmp_path: Path) -> None:
    account = create_account(shared_server.url)
    env = env_for(shared_server, account.token, tmp_path)
    gone = tmp_path / "gone"
    write(gone / "a.txt", "a")
    assert run_cli("sync", str(gone), "--once", "--remote-folder", "shared", env=env).returncode == 0
    (gone / "a.txt").unlink()
    os.rmdir(gone)
    other = tmp_path / "other"
    write(other / "b.txt", "b")
    done = run_cli("sync", str(other), "--once", "--remote-folder", "shared", env=env)
    assert done.returncode == 0, done.stderr


def test_a_changed_remote_folder_moves_the_files_and_leaves_no_old_copy(shared_server: ServerProcess,
                                                                         tmp_path: Path) -> None:
    account = create_account(shared_server.url)
    env = env_for(shared_server, account.token, tmp_path)
    folder = tmp_path / "photos"
    write(folder / "2026" / "cat.jpg", b"\xff\xd8 a cat")
    write(folder / "dog.jpg", b"\xff\xd8 a dog")
    assert run_cli("sync", str(folder), "--once", env=env).returncode == 0
    assert set(remote_tree(shared_server.url, account)) == {"photos/2026/cat.jpg", "photos/dog.jpg"}
    moved = run_cli("sync", str(folder), "--once", "--remote-folder", "/backup/photos/", env=env)
    assert moved.returncode == 0, moved.stderr
    assert set(remote_tree(shared_server.url, account)) == {"backup/photos/2026/cat.jpg", "backup/photos/dog.jpg"}


@pytest.mark.parametrize("name", ["../up", "a/../b", "a//b", "bad\\name", "tab\tname"])
def test_an_invalid_remote_folder_is_refused_with_the_reason(shared_server: ServerProcess, tmp_path: Path,
                                                             name: str) -> None:
    account = create_account(shared_server.url)
    folder = tmp_path / "f"
    write(folder / "a.txt", "a")
    result = run_cli("sync", str(folder), "--once", "--remote-folder", name,
                     env=env_for(shared_server, account.token, tmp_path))
    assert result.returncode == 2 and "cannot be used" in result.stderr, result.stderr
    assert remote_tree(shared_server.url, account) == {}
