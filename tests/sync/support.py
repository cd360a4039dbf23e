"""Helpers of the sync agent's end-to-end tests: remote and local trees, agents on a real folder, the CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import requests

from lockr_local.sync.agent import AgentOptions, SyncAgent
from lockr_local.sync.ignore import IgnoreRules
from lockr_local.sync.remote import Throttle, make_remote
from tests.helpers import REPO, Account, clean_env, wait_for

FAST = dict(debounce=0.1, settle=0.3, scan_interval=30.0, retry_unreadable=0.5, max_backoff=1.0)


def remote_files(url: str, account: Account) -> list[dict]:
    files: list[dict] = []
    cursor = None
    while True:
        params = {"limit": "1000", **({"cursor": cursor} if cursor else {})}
        response = wait_for(lambda: _unless_limited(requests.get(
            f"{url}/api/v1/files", params=params, headers=account.auth, timeout=30)), interval=0.25,
            message="the listing past the rate limit")
        assert response.status_code == 200, response.text
        body = response.json()
        files.extend(body["files"])
        cursor = body["next"]
        if not cursor:
            return files


def _unless_limited(response: requests.Response) -> requests.Response | None:
    return None if response.status_code == 429 else response


def remote_tree(url: str, account: Account, under: str = "") -> dict[str, str]:
    """name -> sha256 of the remote files; a name listed twice (an old copy not yet deleted) maps to a list.
    With `under` (a synced folder's remote folder, as `sync` maps it by default to the folder's name): only
    the files in it, named as in the folder."""
    tree: dict = {}
    prefix = under + "/" if under else ""
    for f in remote_files(url, account):
        if not f["name"].startswith(prefix):
            continue
        name = f["name"][len(prefix):]
        tree[name] = [tree[name], f["sha256"]] if name in tree else f["sha256"]
    return tree


def local_tree(folder: Path) -> dict[str, str]:
    rules = IgnoreRules(folder)
    tree = {}
    for path in folder.rglob("*"):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and not path.is_symlink() and not rules.ignores(rel):
            tree[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return tree


def assert_mirrored(url: str, account: Account, folder: Path, timeout: float = 15.0, interval: float = 0.05,
                    under: str = "") -> None:
    """The remote (the remote folder `under`, and nothing outside it) mirrors the folder."""
    wait_for(lambda: remote_tree(url, account, under) == local_tree(folder)
             and len(remote_files(url, account)) == len(remote_tree(url, account, under)),
             timeout=timeout, interval=interval, message="the remote to mirror the folder")


class Agents:
    """Starts agents on `folder` with the test's own state directory; stops them all at the end."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.started: list[SyncAgent] = []

    def start(self, folder: Path, url: str, account: Account, *, throttle: int = 0, chunk: int | None = None,
              retry_delay: float | None = None, small_file_max: int | None = None, **options: object) -> SyncAgent:
        """`retry_delay` shortens the client's first retry delay (it doubles from there, up to 8 times it)."""
        remote = make_remote(url, account.token, throttle=Throttle(throttle), chunk_size=chunk,
                             small_file_max=small_file_max, concurrency=int(options.get("concurrency", 4)))
        if retry_delay is not None:
            client = remote.client  # type: ignore[attr-defined]
            client.retry = dataclasses.replace(client.retry, base_delay=retry_delay, max_delay=8 * retry_delay)
        merged = {**FAST, **options}
        agent = SyncAgent(folder, remote, endpoint=url,
                          options=AgentOptions(state_dir=self.state_dir, **merged))  # type: ignore[arg-type]
        self.started.append(agent)
        return agent.start()

    def stop_all(self) -> None:
        for agent in self.started:
            if agent._thread is not None and agent._thread.is_alive():
                agent.stop()


def write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lockr_local", *args], capture_output=True, text=True,
                          env=clean_env(**(env or {})), cwd=REPO, timeout=120)


@dataclass(frozen=True)
class Answered:
    at: float  # when the server logged the answer (time.time())
    seconds: float  # how long the request took, from its headers to the answer
    method: str
    path: str
    status: int
    who: str


class AccessLog(logging.Handler):
    """The server's own access log (the `lockr.access` logger), one `Answered` per request."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.answered: list[Answered] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = record.access  # type: ignore[attr-defined]  # server/accesslog.py's structured fields
        self.answered.append(Answered(record.created, fields["duration"], fields["method"], fields["path"],
                                      int(fields["status"]), fields["user"]))

    def handleError(self, record: logging.LogRecord) -> None:
        raise  # a record this cannot read is a broken test, not a line to skip quietly
