"""Client fixtures: an account on the real server, the CLI as a subprocess, a resumable endpoint."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import requests

from lockr_local.client import LockrClient, RemoteFile
from lockr_local.transfer import RetryPolicy
from tests.helpers import REPO, Account, ThreadedServer, clean_env, create_account

FAST_RETRY = RetryPolicy(attempts=6, base_delay=0.01, max_delay=0.05)


@pytest.fixture
def account(server: ThreadedServer) -> Account:
    return create_account(server.url)


@pytest.fixture
def client(server: ThreadedServer, account: Account) -> Iterator[LockrClient]:
    with LockrClient(server.url, account.token, retry=FAST_RETRY) as lockr:
        yield lockr


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def random_file(path: Path, size: int) -> Path:
    """Random bytes written 1 MiB at a time."""
    with open(path, "wb") as out:
        remaining = size
        while remaining:
            block = os.urandom(min(remaining, 1024 * 1024))
            out.write(block)
            remaining -= len(block)
    return path


@dataclass
class Cli:
    """`python -m lockr_local` in a private HOME with the file-backed test keyring."""

    home: Path
    env: dict[str, str]

    def run(self, *args: str, input: str | None = None, timeout: float = 120,
            **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lockr_local", *args], input=input, capture_output=True,
                              text=True, timeout=timeout, env={**self.env, **env}, cwd=REPO)

    def popen(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "lockr_local", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env={**self.env, **env}, cwd=REPO)

    @property
    def keyring_file(self) -> Path:
        return self.home / "keyring.json"

    @property
    def state_file(self) -> Path:
        return self.home / "state" / "lockr-local" / "uploads.json"


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), XDG_STATE_HOME=str(home / "state"),
                    XDG_DATA_HOME=str(home / "data"), PYTHONPATH=str(REPO),
                    PYTHON_KEYRING_BACKEND="tests.file_keyring.FileKeyring",
                    TEST_KEYRING_FILE=str(home / "keyring.json"))
    return Cli(home, env)


class SessionEndpoint:
    """The real server, for resumable uploads: its URL, a token, and the check of what it stored."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token

    def stored_sha256(self, info: RemoteFile) -> str:
        """Downloads the stored file and hashes it (not trusting the sha256 in the file object)."""
        digest = hashlib.sha256()
        with requests.get(info.download_url, headers={"Authorization": f"Bearer {self.token}"}, stream=True,
                          timeout=60) as response:
            assert response.status_code == 200, response.text
            for block in response.iter_content(1024 * 1024):
                digest.update(block)
        return digest.hexdigest()


@pytest.fixture
def session_endpoint(server: ThreadedServer, account: Account) -> SessionEndpoint:
    return SessionEndpoint(server.url, account.token)
