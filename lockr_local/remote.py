"""Values the lockr API answers with, as dataclasses shared by the client, the CLI, sync and tray."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RemoteFile:
    """A file object as the API describes it."""

    id: str
    name: str
    size: int
    type: str
    region: str
    sha256: str | None
    has_key: bool
    created_at: str
    download_url: str
    page_url: str | None = None
    # Only on the answer to a guest's upload: the secret that lets its uploader register it later.
    claim_token: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RemoteFile":
        return cls(id=str(data["id"]), name=str(data["name"]), size=int(data["size"]),
                   type=str(data.get("type") or "application/octet-stream"), region=str(data.get("region") or ""),
                   sha256=data.get("sha256"), has_key=bool(data.get("hasKey")),
                   created_at=str(data.get("createdAt") or ""), download_url=str(data["downloadUrl"]),
                   page_url=data.get("pageUrl"), claim_token=data.get("claimToken"))

    @property
    def share_url(self) -> str:
        """The link to hand to people: the download page when the server has one, else the bytes."""
        return self.page_url or self.download_url


@dataclass(frozen=True)
class TrashedFile:
    """A file in the account's trash: the file as it was, when it was deleted and when it goes for good."""

    file: RemoteFile
    deleted_at: str
    purge_at: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TrashedFile":
        return cls(RemoteFile.from_json(data), str(data.get("deletedAt") or ""), str(data.get("purgeAt") or ""))


@dataclass(frozen=True)
class UploadSession:
    """An open resumable upload: `upload_url` is the capability to write it (no token needed)."""

    id: str
    upload_url: str
    download_url: str
    expires_at: str
    claim_token: str | None = None  # a guest's session: see RemoteFile.claim_token


@dataclass(frozen=True)
class AccountInfo:
    username: str
    email: str
    quota: int
    used: int = 0
    reserved: int = 0
    default_region: str | None = None
    regions: tuple[str, ...] = ()


@dataclass(frozen=True)
class NewAccount:
    username: str
    email: str
    quota: int
    token: str


@dataclass(frozen=True)
class Download:
    path: Path
    size: int
    sha256: str
    resumed_from: int
