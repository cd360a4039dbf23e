"""Guest uploads expire after `guest_retention` (the background reaper deletes row and bytes), and
`lockr-local guest list` / `guest rm ID` let an admin see and remove them, also while the server runs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from lockr_local.config import SettingsError, parse_duration
from tests.helpers import REPO, ServerProcess, clean_env, create_account, error_code, upload, wait_for


def blob_files(data_dir: Path, file_id: str) -> list[Path]:
    return [path for path in (data_dir / "blobs").rglob(f"*{file_id}*") if path.is_file()]


def cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lockr_local", *args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, env=clean_env(), cwd=REPO, timeout=60)


def test_guest_uploads_past_their_retention_are_deleted_by_the_reaper(server_factory: Any, tmp_path: Path) -> None:
    server = server_factory(guest_retention="2s", reap_interval=0.1)
    data_dir = tmp_path / "data0"
    account = create_account(server.url)
    big = upload(server.url, b"g" * 300_000, "big-guest.bin").json()  # a blob file
    small = upload(server.url, b"small", "small-guest.txt").json()  # inline in the database
    owned = upload(server.url, b"o" * 300_000, "owned.bin", account=account).json()
    assert requests.get(big["downloadUrl"], timeout=10).status_code == 200
    assert blob_files(data_dir, big["id"])

    wait_for(lambda: requests.get(big["downloadUrl"], timeout=10).status_code == 404, timeout=15,
             message="the expired guest upload to be reaped")
    wait_for(lambda: requests.get(small["downloadUrl"], timeout=10).status_code == 404, timeout=15,
             message="the expired inline guest upload to be reaped")
    assert blob_files(data_dir, big["id"]) == []
    # An account's file is never a guest upload, however old.
    assert requests.get(owned["downloadUrl"], headers=account.auth, timeout=10).content == b"o" * 300_000


def test_guest_list_and_rm_see_and_remove_guest_uploads_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServerProcess(data).start()
    try:
        account = create_account(server.url)
        first = upload(server.url, b"1" * 300_000, "first.bin").json()
        second = upload(server.url, b"second", "second.txt").json()
        owned = upload(server.url, b"mine", "mine.txt", account=account).json()

        listed = cli("guest", "list", data_dir=data)
        assert listed.returncode == 0, listed.stderr
        assert first["id"] in listed.stdout and second["id"] in listed.stdout and "first.bin" in listed.stdout
        assert owned["id"] not in listed.stdout
        assert "2 guest uploads" in listed.stderr and "guest_retention = 0" in listed.stderr
        as_json = json.loads(cli("guest", "list", "--json", data_dir=data).stdout)
        assert [(f["id"], f["name"], f["size"]) for f in as_json] == [
            (first["id"], "first.bin", 300_000), (second["id"], "second.txt", 6)]

        # The access log's 8-character prefix is enough; the server keeps running meanwhile.
        removed = cli("guest", "rm", first["id"][:8], data_dir=data)
        assert removed.returncode == 0, removed.stderr
        assert f"Removed guest upload {first['id']}" in removed.stderr
        assert requests.get(first["downloadUrl"], timeout=10).status_code == 404
        assert blob_files(data, first["id"]) == []
        assert requests.get(second["downloadUrl"], timeout=10).content == b"second"

        for text, words in ((owned["id"], "No guest upload has the id"), ("0" * 32, "No guest upload has the id"),
                            ("abc", "is not a file id")):
            refused = cli("guest", "rm", text, data_dir=data)
            assert refused.returncode == 1 and words in refused.stderr, refused.stderr
        assert requests.get(owned["downloadUrl"], headers=account.auth, timeout=10).content == b"mine"
    finally:
        server.stop()


def test_expired_guest_uploads_go_at_server_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServerProcess(data).start()
    try:
        stored = upload(server.url, b"x" * 300_000, "old.bin").json()
        uploaded = time.time()
    finally:
        server.stop()
    wait_for(lambda: time.time() > uploaded + 1.5, message="the upload to be older than guest_retention")
    server = ServerProcess(data, env={"LOCKR_GUEST_RETENTION": "1", "LOCKR_REAP_INTERVAL": "3600"}).start()
    try:
        response = requests.get(stored["downloadUrl"].replace(stored["downloadUrl"].split("/api/")[0], server.url),
                                timeout=10)
        assert response.status_code == 404 and error_code(response) == "not_found"
        assert blob_files(data, stored["id"]) == []
    finally:
        server.stop()


@pytest.mark.parametrize("text, seconds", [("14d", 14 * 86400), ("12h", 43200), ("30m", 1800), ("90", 90),
                                           ("0", 0), ("2w", 14 * 86400)])
def test_durations_parse_with_units(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["two weeks", "14x", "-1d", "1.5d"])
def test_bad_durations_are_refused_with_examples(text: str) -> None:
    with pytest.raises(SettingsError, match="14d"):
        parse_duration(text)
