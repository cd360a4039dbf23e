"""What a scenario needs from a server under test: how curl uploads a file to it and where to fetch it."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path

from bench.harness import LockrServer, curl
from bench.peers import Peer


class Target(ABC):
    """A server under test, seen through the curl arguments of an upload and the URL of a download."""

    def __init__(self, name: str, pid: int) -> None:
        self.name = name
        self.pid = pid
        self.urls: dict[str, str] = {}

    @abstractmethod
    def upload_args(self, name: str, path: Path) -> list[str]: ...

    def download_headers(self) -> list[str]:
        return []

    def remember(self, name: str, output: str) -> None:
        pass

    def download_url(self, name: str) -> str:
        return self.urls[name]


class LockrTarget(Target):
    """lockr-local's direct upload (POST /api/v1/upload) and its downloadUrl, with the bench token; `url` is
    where requests go when not straight to the server (nginx in front of one node or more)."""

    def __init__(self, server: LockrServer, name: str = "lockr-local", url: str = "") -> None:
        super().__init__(name, server.pid)
        self.server = server
        self.url = url or server.url

    def upload_args(self, name: str, path: Path) -> list[str]:
        return [f"{self.url}/api/v1/upload", *self.auth_headers(),
                "-H", f"x-file-name: {name}", "-H", "Content-Type: application/octet-stream", "-X", "POST",
                "-T", str(path)]

    def auth_headers(self) -> list[str]:
        return ["-H", f"Authorization: Bearer {self.server.token}"]

    def remember(self, name: str, output: str) -> None:
        self.urls[name] = json.loads(output)["downloadUrl"]

    def download_headers(self) -> list[str]:
        return self.auth_headers()


class PeerTarget(Target):
    """A peer's PUT and GET of the same path."""

    def __init__(self, peer: Peer) -> None:
        super().__init__(peer.name, peer.pid)
        self.peer = peer

    def upload_args(self, name: str, path: Path) -> list[str]:
        return [self.peer.upload_url(name), "-T", str(path)]

    def download_url(self, name: str) -> str:
        return self.peer.download_url(name)


def upload(target: Target, name: str, path: Path) -> float:
    """Uploads `path` with one curl; returns the seconds it took."""
    elapsed, out = curl(target.upload_args(name, path))
    target.remember(name, out)
    return elapsed
