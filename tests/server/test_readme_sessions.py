"""The README's "Resumable uploads" curl walkthrough, run as written against the real server."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from tests.helpers import REPO, create_account


def readme_blocks(heading: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)


def test_readme_resumable_upload_walkthrough_works(server, tmp_path: Path):
    for tool in ("curl", "split"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    account = create_account(server.url)
    script = "set -euo pipefail\n" + "\n".join(readme_blocks("Resumable uploads"))
    script = script.replace("http://127.0.0.1:8080", server.url)
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "TOKEN": account.token})
    assert result.returncode == 0, result.stderr
    statuses = [code for code in re.findall(r"HTTP/1\.1 (\d+)", result.stdout) if code != "100"]
    assert statuses == ["308", "308", "308", "201", "204", "204", "200", "204", "204"], result.stdout
    assert "Range: bytes=0-2097151" in result.stdout
    assert "Tus-Extension: creation,termination,expiration,checksum" in result.stdout
    assert "Upload-Offset: 1048576" in result.stdout

    expected = hashlib.sha256((tmp_path / "big.bin").read_bytes()).hexdigest()
    files = requests.get(f"{server.url}/api/v1/files", headers=account.auth).json()["files"]
    assert [(f["name"], f["type"]) for f in files] == [("big.bin", "application/octet-stream"),
                                                        ("big.bin", "application/zip")]
    for file in files:
        assert file["sha256"] == expected
        assert hashlib.sha256(requests.get(file["downloadUrl"], headers=account.auth).content).hexdigest() == expected
