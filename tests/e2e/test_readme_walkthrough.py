"""Runs the README's curl walkthrough, as written, against `lockr-local serve` in a subprocess."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import REPO, ServerProcess

README = REPO / "README.md"
PLACEHOLDER = re.compile(r"^(\w+)=\.\.\.")
ASSIGNMENT = re.compile(r"^(\w+)=(.+)$")


def walkthrough_commands() -> list[str]:
    """The shell commands of the README's 'Try the API with curl' block, continuation lines joined."""
    text = README.read_text()
    section = text.split("## Try the API with curl", 1)[1]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    commands: list[str] = []
    current = ""
    for line in block.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        current += line.rstrip("\\").rstrip() + " " if line.rstrip().endswith("\\") else line
        if not line.rstrip().endswith("\\"):
            commands.append(current.strip())
            current = ""
    return commands


def placeholder_value(name: str, last_output: str) -> str:
    """What a reader would paste for `NAME=...`: read from the previous command's JSON answer."""
    data = json.loads(last_output)
    if name == "TOKEN":
        return data["token"]
    if name == "ID":
        return data["files"][0]["id"]
    raise AssertionError(f"the README has a placeholder {name}=... this test does not know")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_curl_walkthrough_works_as_written(tmp_path: Path):
    server = ServerProcess(tmp_path / "data").start()
    try:
        env = {"PATH": "/usr/bin:/bin:/usr/local/bin"}
        last_output = ""
        ran = 0
        for command in walkthrough_commands():
            command = command.replace("http://127.0.0.1:8080", server.url)
            placeholder = PLACEHOLDER.match(command)
            if placeholder:
                env[placeholder.group(1)] = placeholder_value(placeholder.group(1), last_output)
                continue
            assignment = ASSIGNMENT.match(command)
            if assignment and not command.startswith("curl"):
                result = subprocess.run(["bash", "-c", f'set -o pipefail; V={assignment.group(2)}; printf %s "$V"'],
                                        capture_output=True, text=True, env=env, cwd=tmp_path, check=True)
                env[assignment.group(1)] = result.stdout
                continue
            result = subprocess.run(["bash", "-c", "set -o pipefail; " + command], capture_output=True, text=True,
                                    env=env, cwd=tmp_path, timeout=60)
            assert result.returncode == 0, f"{command}\n{result.stderr}"
            if result.stdout.strip().startswith("{"):
                assert "error" not in json.loads(result.stdout), f"{command}\n{result.stdout}"
            last_output = result.stdout
            ran += 1
        assert ran >= 8
        assert (tmp_path / "copy.pdf").read_bytes() == (tmp_path / "whitepaper.pdf").read_bytes()
        listing = subprocess.run(["curl", "-s", f"{server.url}/api/v1/files", "-H",
                                  f"Authorization: Bearer {env['TOKEN']}"], capture_output=True, text=True)
        assert json.loads(listing.stdout)["files"] == []
    finally:
        assert server.stop() == 0
