"""`upload --json` and `download --json` against a real server: one JSON document on stdout that a
script can read (ids, names, sizes, sha256, share links; the saved path), the messages staying on stderr."""

from __future__ import annotations

import json
from pathlib import Path

import requests

from tests.client.conftest import Cli, sha256_of
from tests.helpers import Account, ThreadedServer

FILE_FIELDS = {"id", "name", "size", "type", "region", "sha256", "hasKey", "createdAt", "downloadUrl", "pageUrl",
               "shareUrl"}


def test_upload_json_lists_each_uploaded_file_and_ls_agrees(cli: Cli, server: ThreadedServer, account: Account,
                                                            tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("alpha")
    (tmp_path / "b.bin").write_bytes(bytes(range(256)) * 40)
    result = cli.run("upload", str(tmp_path / "a.txt"), str(tmp_path / "b.bin"), "--json", "-q",
                     LOCKR_ENDPOINT=server.url, LOCKR_TOKEN=account.token)
    assert result.returncode == 0, result.stderr
    uploaded = json.loads(result.stdout)
    assert [f["name"] for f in uploaded] == ["a.txt", "b.bin"]
    assert [f["size"] for f in uploaded] == [5, 10240]
    assert [f["sha256"] for f in uploaded] == [sha256_of(tmp_path / "a.txt"), sha256_of(tmp_path / "b.bin")]
    assert all(set(f) == FILE_FIELDS for f in uploaded)
    assert requests.get(uploaded[0]["downloadUrl"], timeout=30).text == "alpha"
    assert "Uploaded a.txt" in result.stderr
    listed = json.loads(cli.run("ls", "--json", LOCKR_ENDPOINT=server.url, LOCKR_TOKEN=account.token).stdout)
    assert {f["id"]: f["sha256"] for f in listed} == {f["id"]: f["sha256"] for f in uploaded}


def test_upload_json_still_prints_the_files_that_did_upload_when_one_fails(cli: Cli, server: ThreadedServer,
                                                                           account: Account, tmp_path: Path) -> None:
    (tmp_path / "ok.txt").write_text("fine")
    result = cli.run("upload", str(tmp_path / "missing.txt"), str(tmp_path / "ok.txt"), "--json", "-q",
                     LOCKR_ENDPOINT=server.url, LOCKR_TOKEN=account.token)
    assert result.returncode == 1
    assert "missing.txt: no such file" in result.stderr
    assert [f["name"] for f in json.loads(result.stdout)] == ["ok.txt"]


def test_a_guest_upload_json_carries_its_claim_token(cli: Cli, server: ThreadedServer, tmp_path: Path) -> None:
    (tmp_path / "g.txt").write_text("from a guest")
    result = cli.run("upload", str(tmp_path / "g.txt"), "--guest", "--json", "-q", "--endpoint", server.url)
    assert result.returncode == 0, result.stderr
    [info] = json.loads(result.stdout)
    assert info["claimToken"] and info["claimToken"] in result.stderr  # the same code the message gives


def test_download_json_names_the_saved_file_and_its_checked_sha256(cli: Cli, server: ThreadedServer,
                                                                   account: Account, tmp_path: Path) -> None:
    (tmp_path / "doc.txt").write_text("the contents")
    [info] = json.loads(cli.run("upload", str(tmp_path / "doc.txt"), "--json", "-q",
                                LOCKR_ENDPOINT=server.url, LOCKR_TOKEN=account.token).stdout)
    out = tmp_path / "out"
    out.mkdir()
    result = cli.run("download", info["shareUrl"], "-o", str(out), "--json", "-q", LOCKR_ENDPOINT=server.url)
    assert result.returncode == 0, result.stderr
    saved = json.loads(result.stdout)
    assert saved == {"path": str((out / "doc.txt").resolve()), "name": "doc.txt", "size": 12,
                     "sha256": info["sha256"], "resumedFrom": 0, "id": info["id"]}
    assert Path(saved["path"]).read_text() == "the contents"
    assert "sha256 verified" in result.stderr
