"""Runs the README's shell blocks, as written: the curl walkthrough, the signed-link commands and the
account administration commands, against `lockr-local serve` in a subprocess."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from lockr_local.config import parse_size
from tests.helpers import REPO, ServerProcess, clean_env, create_account, upload

README = REPO / "README.md"
PLACEHOLDER = re.compile(r"^(\w+)=\.\.\.")
ASSIGNMENT = re.compile(r"^(\w+)=(.+)$")
# `token revoke lkr_...`: a reader pastes the token the command before printed.
TOKEN_PLACEHOLDER = "lkr_..."
needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def sh_block(marker: str) -> str:
    """The first ```sh block of the README after `marker` (a heading or a bold lead-in)."""
    section = README.read_text().split(marker, 1)[1]
    return section.split("```sh", 1)[1].split("```", 1)[0]


def block_commands(block: str) -> list[str]:
    """The shell commands of a block, continuation lines joined, comments left out."""
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


def walkthrough_commands() -> list[str]:
    """The commands of the 'Try the API with curl' block."""
    return block_commands(sh_block("## Try the API with curl"))


def placeholder_value(name: str, last_output: str) -> str:
    """What a reader would paste for `NAME=...`: read from the previous command's JSON answer."""
    data = json.loads(last_output)
    if name == "TOKEN":
        return data["token"]
    if name == "ID":
        return data["files"][0]["id"]
    if name == "LINK":
        return data["url"]
    raise AssertionError(f"the README has a placeholder {name}=... this test does not know")


def run_commands(commands: list[str], server_url: str, env: dict[str, str], cwd: Path) -> int:
    """Runs the commands one by one as a reader would, filling placeholders from the answers; `env`
    collects the shell variables they set. Returns how many commands ran."""
    last_output = ""
    ran = 0
    for command in commands:
        command = command.replace("http://127.0.0.1:8080", server_url)
        placeholder = PLACEHOLDER.match(command)
        if placeholder:
            env[placeholder.group(1)] = placeholder_value(placeholder.group(1), last_output)
            continue
        if TOKEN_PLACEHOLDER in command:
            command = command.replace(TOKEN_PLACEHOLDER, last_output.strip())
        assignment = ASSIGNMENT.match(command)
        if assignment and not command.startswith("curl"):
            result = subprocess.run(["bash", "-c", f'set -o pipefail; V={assignment.group(2)}; printf %s "$V"'],
                                    capture_output=True, text=True, env=env, cwd=cwd, check=True)
            env[assignment.group(1)] = result.stdout
            continue
        result = subprocess.run(["bash", "-c", "set -o pipefail; " + command], capture_output=True, text=True,
                                env=env, cwd=cwd, timeout=60)
        assert result.returncode == 0, f"{command}\n{result.stderr}"
        if result.stdout.strip().startswith("{"):
            assert "error" not in json.loads(result.stdout), f"{command}\n{result.stdout}"
        last_output = result.stdout
        ran += 1
    return ran


@needs_curl
def test_readme_curl_walkthrough_works_as_written(tmp_path: Path):
    server = ServerProcess(tmp_path / "data").start()
    try:
        env = {"PATH": "/usr/bin:/bin:/usr/local/bin"}
        ran = run_commands(walkthrough_commands(), server.url, env, tmp_path)
        assert ran >= 8
        assert (tmp_path / "copy.pdf").read_bytes() == (tmp_path / "whitepaper.pdf").read_bytes()
        listing = subprocess.run(["curl", "-s", f"{server.url}/api/v1/files", "-H",
                                  f"Authorization: Bearer {env['TOKEN']}"], capture_output=True, text=True)
        assert json.loads(listing.stdout)["files"] == []
        trash = requests.get(f"{server.url}/api/v1/trash", headers={"Authorization": f"Bearer {env['TOKEN']}"})
        assert trash.json()["files"] == [], "the walkthrough's last step deletes the file from the trash too"
    finally:
        assert server.stop() == 0


@needs_curl
def test_readme_signed_link_commands_work_as_written(tmp_path: Path):
    server = ServerProcess(tmp_path / "data").start()
    try:
        # Where the walkthrough stands before its last step: whitepaper.pdf uploaded and keyed. The link
        # needs neither token nor keyHash.
        account = create_account(server.url)
        data = b"hello lockr\n"
        file = upload(server.url, data, "whitepaper.pdf", account=account).json()
        requests.post(f"{server.url}/api/v1/files/{file['id']}/key", json={"key": "open sesame"},
                      headers=account.auth).raise_for_status()
        env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "TOKEN": account.token, "ID": file["id"]}
        ran = run_commands(block_commands(sh_block("**Signed links.**")), server.url, env, tmp_path)
        assert ran == 2
        assert "sig=" in env["LINK"] and "keyHash" not in env["LINK"]
        assert (tmp_path / "shared.pdf").read_bytes() == data
    finally:
        assert server.stop() == 0


def test_readme_admin_commands_work_while_the_server_runs(tmp_path: Path):
    server = ServerProcess(tmp_path / "data").start()
    try:
        # The README runs the commands from the checkout (.venv/bin/...) with --data-dir ./data.
        venv_bin = f"{Path(sys.executable).parent}/"
        commands = [c.replace(".venv/bin/", venv_bin) for c in block_commands(sh_block("## Administering accounts"))]
        assert all(venv_bin + "lockr-local" in c for c in commands), commands
        env = clean_env(HOME=str(tmp_path))
        assert run_commands(commands, server.url, env, tmp_path) == len(commands)
        # The README's last command renamed bob to robert: the password and everything else came along.
        login = requests.post(f"{server.url}/api/v1/login", json={"identifier": "robert", "password": "a long password"})
        assert login.status_code == 200, login.text
        assert login.json()["username"] == "robert"
        auth = {"Authorization": f"Bearer {login.json()['token']}"}
        assert requests.get(f"{server.url}/api/v1/account", headers=auth).json()["quota"] == parse_size("500GB")
        # `user add` printed a first token, `token create` a second, the second `token create` a third that
        # expires in 30 days, which `token revoke` (given the last token printed) revoked; the fourth is
        # this login's.
        tokens = sorted(requests.get(f"{server.url}/api/v1/tokens", headers=auth).json()["tokens"],
                        key=lambda t: t["id"])
        assert [t["revoked"] for t in tokens] == [False, False, True, False], tokens
        assert [t["expiresAt"] is not None for t in tokens] == [False, False, True, False], tokens
    finally:
        assert server.stop() == 0
