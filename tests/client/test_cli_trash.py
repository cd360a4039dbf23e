"""`lockr-local trash`: list (and --json), restore by id or name, delete for good, empty with a confirmation."""

from __future__ import annotations

import json

import requests

from tests.client.conftest import Cli
from tests.helpers import Account, ThreadedServer, upload


def run(cli: Cli, server: ThreadedServer, account: Account, *args: str, **kwargs):
    return cli.run(*args, LOCKR_ENDPOINT=server.url, LOCKR_TOKEN=account.token, **kwargs)


def trashed(server: ThreadedServer, account: Account, *names: str) -> list[dict]:
    files = [upload(server.url, name.encode() * 100, name, account=account).json() for name in names]
    for file in files:
        assert requests.delete(f"{server.url}/api/v1/files/{file['id']}", headers=account.auth).status_code == 204
    return files


def test_trash_lists_deleted_files_and_restore_brings_one_back_with_its_id(cli, server, account) -> None:
    notes, photo = trashed(server, account, "notes.txt", "photo.jpg")
    listing = run(cli, server, account, "trash")
    assert listing.returncode == 0, listing.stderr
    header, *rows = listing.stdout.splitlines()
    assert header.split() == ["ID", "SIZE", "NAME", "DELETED", "PURGED"]
    assert sorted(row.split()[0] for row in rows) == sorted([notes["id"], photo["id"]])
    assert "2 files in the trash" in listing.stderr
    as_json = json.loads(run(cli, server, account, "trash", "--json").stdout)
    assert {item["name"] for item in as_json} == {"notes.txt", "photo.jpg"}
    assert all(item["deletedAt"] and item["purgeAt"] > item["deletedAt"] for item in as_json)

    restored = run(cli, server, account, "trash", "restore", "notes.txt")
    assert restored.returncode == 0, restored.stderr
    assert f"Restored notes.txt ({notes['id']})." in restored.stderr
    assert requests.get(notes["downloadUrl"], timeout=30).content == b"notes.txt" * 100
    assert [item["id"] for item in json.loads(run(cli, server, account, "trash", "list", "--json").stdout)] == \
        [photo["id"]]


def test_restore_of_a_taken_name_says_the_new_name(cli, server, account) -> None:
    [old] = trashed(server, account, "report.pdf")
    upload(server.url, b"newer", "report.pdf", account=account)
    restored = run(cli, server, account, "trash", "restore", old["id"])
    assert restored.returncode == 0, restored.stderr
    assert "as report (restored).pdf (the name was taken)" in restored.stderr


def test_trash_rm_deletes_for_good_and_an_unknown_name_fails_alone(cli, server, account) -> None:
    gone, kept = trashed(server, account, "gone.bin", "kept.bin")
    result = run(cli, server, account, "trash", "rm", "gone.bin", "nothing-like-it.txt")
    assert result.returncode == 1
    assert "Deleted gone.bin for good" in result.stderr
    assert "nothing-like-it.txt: Your trash has no file with the id or name" in result.stderr
    remaining = json.loads(run(cli, server, account, "trash", "--json").stdout)
    assert [item["id"] for item in remaining] == [kept["id"]]
    assert requests.get(f"{server.url}/api/v1/account", headers=account.auth).json()["used"] == len(b"kept.bin") * 100


def test_trash_empty_asks_first_and_needs_yes_without_a_terminal(cli, server, account) -> None:
    trashed(server, account, "a.txt", "b.txt")
    refused = run(cli, server, account, "trash", "empty", input="")
    assert refused.returncode == 2 and "add --yes" in refused.stderr
    assert len(json.loads(run(cli, server, account, "trash", "--json").stdout)) == 2

    emptied = run(cli, server, account, "trash", "empty", "--yes")
    assert emptied.returncode == 0, emptied.stderr
    assert "Emptied the trash: 2 files deleted for good, 1.0 KB freed." in emptied.stderr
    assert run(cli, server, account, "trash").stderr.strip() == "The trash is empty."
    assert requests.get(f"{server.url}/api/v1/account", headers=account.auth).json()["used"] == 0


def test_trash_takes_the_endpoint_before_the_action(cli, server, account) -> None:
    [file] = trashed(server, account, "early.txt")
    result = cli.run("trash", "--endpoint", server.url, "--token", account.token, "restore", file["id"])
    assert result.returncode == 0, result.stderr
