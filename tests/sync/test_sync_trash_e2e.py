"""The sync agent and the server's trash: a local delete lands in the trash, a restore brings the file back on
the server with its id, the agent then leaves it alone, and adopts it once it is back in the folder."""

from __future__ import annotations

import hashlib
from pathlib import Path

import requests

from tests.helpers import ServerProcess, create_account, wait_for
from tests.sync.support import Agents, assert_mirrored, remote_files, write


def trash(url: str, token_headers: dict[str, str]) -> list[dict]:
    response = requests.get(f"{url}/api/v1/trash", headers=token_headers, timeout=30)
    assert response.status_code == 200, response.text
    return list(response.json()["files"])


def test_a_restore_after_the_agent_propagated_a_delete(shared_server: ServerProcess, folder: Path,
                                                       agents: Agents) -> None:
    url, account = shared_server.url, create_account(shared_server.url)
    write(folder / "docs" / "a.txt", "precious")
    write(folder / "b.txt", "b v1")
    agent = agents.start(folder, url, account)
    assert_mirrored(url, account, folder)
    original = {f["name"]: f for f in remote_files(url, account)}["docs/a.txt"]

    (folder / "docs" / "a.txt").unlink()  # the agent deletes it remotely: into the trash
    assert_mirrored(url, account, folder)
    assert [f["id"] for f in trash(url, account.auth)] == [original["id"]]

    restored = requests.post(f"{url}/api/v1/trash/{original['id']}/restore", headers=account.auth, timeout=30)
    assert restored.status_code == 200 and restored.json()["name"] == "docs/a.txt"

    # The agent leaves the restored file alone (it is no longer in its state database) and does not bring it
    # into the folder; later changes still sync.
    write(folder / "c.txt", "later")
    wait_for(lambda: "c.txt" in {f["name"] for f in remote_files(url, account)}, timeout=15)
    names = {f["name"]: f["id"] for f in remote_files(url, account)}
    assert names == {"docs/a.txt": original["id"], "b.txt": names["b.txt"], "c.txt": names["c.txt"]}
    assert not (folder / "docs" / "a.txt").exists()

    # Put back into the folder, the same bytes are adopted: no second upload, the same id, synced again.
    write(folder / "docs" / "a.txt", "precious")
    adopted = wait_for(lambda: agent.index.get("docs/a.txt"), timeout=15, message="the agent to adopt the file")
    assert adopted.remote_id == original["id"]
    assert_mirrored(url, account, folder)
    assert {f["name"]: f["id"] for f in remote_files(url, account)}["docs/a.txt"] == original["id"]
    (folder / "docs" / "a.txt").unlink()
    assert_mirrored(url, account, folder)
    assert original["id"] in [f["id"] for f in trash(url, account.auth)], "adopted, so its delete is synced"


def test_the_copy_a_changed_file_replaces_goes_to_the_trash(shared_server: ServerProcess, folder: Path,
                                                            agents: Agents) -> None:
    url, account = shared_server.url, create_account(shared_server.url)
    write(folder / "notes.txt", "version 1")
    agents.start(folder, url, account)
    assert_mirrored(url, account, folder)
    write(folder / "notes.txt", "version 2, longer")
    assert_mirrored(url, account, folder)
    wait_for(lambda: trash(url, account.auth), timeout=15, message="the old copy in the trash")
    [old] = trash(url, account.auth)
    assert old["name"] == "notes.txt" and old["sha256"] == hashlib.sha256(b"version 1").hexdigest()
