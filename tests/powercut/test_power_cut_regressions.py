"""Deterministic replays of what the power-cut harness found: a kill (or a named crash point), a power cut,
and a check that what was acknowledged is still there."""

from __future__ import annotations

import hashlib

import pytest
import requests

from tests.helpers import ServerProcess, create_account, upload
from tests.powercut.forgetfs import MODES


@pytest.mark.parametrize("mode", MODES)
def test_fresh_store_keeps_its_account_and_first_upload_through_a_power_cut(power_mount, mode):
    """The server creates its data folder, database, blob folders and secret: all of it must be durable
    before the first 201, or a power cut loses the whole store (it came back empty: 401 after reboot)."""
    server = ServerProcess(power_mount.mountpoint / "data").start()
    try:
        account = create_account(server.url, "first")
        data = b"the first file" * 1000
        assert upload(server.url, data, "first.bin", account=account).status_code == 201
        secret = (server.data_dir / "secret.key").read_bytes()
        server.kill()
        power_mount.cut(mode, seed=7)
        server.start()
        listed = requests.get(f"{server.url}/api/v1/files", headers=account.auth, timeout=30)
        assert listed.status_code == 200, listed.text
        files = listed.json()["files"]
        assert [(f["name"], f["sha256"]) for f in files] == [("first.bin", hashlib.sha256(data).hexdigest())]
        assert (server.data_dir / "secret.key").read_bytes() == secret  # signed links stay valid
    finally:
        server.kill()
