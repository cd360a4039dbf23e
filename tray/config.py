"""The desktop app's own configuration: endpoint, folder, its remote folder, identifier and whether to start at
login.

Kept in the platform config folder next to the client's settings (`tray.json`, 0600); the token is
never in it: that lives in the OS keyring through `lockr_local.credentials`. The login entry itself is
`lockr_local.tray.autostart`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lockr_local.credentials import config_dir, read_json, write_private_json

CONFIG_FILE = "tray.json"


def config_path() -> Path:
    return config_dir() / CONFIG_FILE


@dataclass
class TrayConfig:
    """What the setup page asks for; `configured` once it has both an endpoint and a folder."""

    endpoint: str = ""
    folder: str = ""
    identifier: str = ""
    autostart: bool = False
    # The remote folder the folder's files go under ("" = the top level); None = the sync agent's default
    # (the folder's own name the first time, then the one it recorded).
    remote_folder: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.endpoint and self.folder)

    @classmethod
    def load(cls, path: Path | None = None) -> "TrayConfig":
        data = read_json(path or config_path())
        remote_folder = data.get("remote_folder")
        return cls(endpoint=str(data.get("endpoint") or ""), folder=str(data.get("folder") or ""),
                   identifier=str(data.get("identifier") or ""), autostart=bool(data.get("autostart")),
                   remote_folder=remote_folder if isinstance(remote_folder, str) else None)

    def save(self, path: Path | None = None) -> None:
        write_private_json(path or config_path(), {"endpoint": self.endpoint, "folder": self.folder,
                                                   "identifier": self.identifier, "autostart": self.autostart,
                                                   **({"remote_folder": self.remote_folder}
                                                      if self.remote_folder is not None else {})})
