"""The desktop app's own configuration (endpoint, folder, autostart) and the autostart-at-login entry.

Kept in the platform config folder next to the client's settings (`tray.json`, 0600); the token is
never in it: that lives in the OS keyring through `lockr_local.credentials`.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from lockr_local.credentials import config_dir, read_json, write_private_json

CONFIG_FILE = "tray.json"
DESKTOP_FILE = "lockr-local.desktop"
LAUNCH_AGENT = "org.lockr-local.tray.plist"


def config_path() -> Path:
    return config_dir() / CONFIG_FILE


@dataclass
class TrayConfig:
    """What the setup page asks for; `configured` once it has both an endpoint and a folder."""

    endpoint: str = ""
    folder: str = ""
    identifier: str = ""
    autostart: bool = False

    @property
    def configured(self) -> bool:
        return bool(self.endpoint and self.folder)

    @classmethod
    def load(cls, path: Path | None = None) -> "TrayConfig":
        data = read_json(path or config_path())
        return cls(endpoint=str(data.get("endpoint") or ""), folder=str(data.get("folder") or ""),
                   identifier=str(data.get("identifier") or ""), autostart=bool(data.get("autostart")))

    def save(self, path: Path | None = None) -> None:
        write_private_json(path or config_path(), {"endpoint": self.endpoint, "folder": self.folder,
                                                   "identifier": self.identifier, "autostart": self.autostart})


def launch_command() -> list[str]:
    """How to start the tray again: the frozen executable itself, or this Python with `-m lockr_local`."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "tray"]
    return [sys.executable, "-m", "lockr_local", "tray"]


def autostart_path(platform: str = sys.platform) -> Path | None:
    """Where the login entry lives: XDG autostart on Linux/BSD, a LaunchAgent on macOS; None elsewhere."""
    if platform == "darwin":
        return Path.home() / "Library" / "LaunchAgents" / LAUNCH_AGENT
    if platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        return Path(base) / "autostart" / DESKTOP_FILE
    return None


def desktop_entry(command: list[str]) -> str:
    """An XDG autostart entry (freedesktop Desktop Entry spec; Exec quoted as the spec asks)."""
    exec_line = " ".join(shlex.quote(part) for part in command)
    return ("[Desktop Entry]\n"
            "Type=Application\n"
            "Name=lockr-local\n"
            "Comment=Keeps a folder in sync with a lockr server\n"
            f"Exec={exec_line}\n"
            "Terminal=false\n"
            "X-GNOME-Autostart-enabled=true\n")


def launch_agent(command: list[str]) -> str:
    from xml.sax.saxutils import escape

    arguments = "".join(f"    <string>{escape(part)}</string>\n" for part in command)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n'
            '<plist version="1.0">\n<dict>\n'
            "  <key>Label</key><string>org.lockr-local.tray</string>\n"
            f"  <key>ProgramArguments</key>\n  <array>\n{arguments}  </array>\n"
            "  <key>RunAtLoad</key><true/>\n"
            "</dict>\n</plist>\n")


def set_autostart(enabled: bool, platform: str = sys.platform, command: list[str] | None = None) -> Path | None:
    """Writes or removes the login entry; returns its path (None where the platform has none we write)."""
    path = autostart_path(platform)
    if path is None:
        return None
    if not enabled:
        path.unlink(missing_ok=True)
        return path
    command = command or launch_command()
    text = launch_agent(command) if platform == "darwin" else desktop_entry(command)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)
    return path


def autostart_enabled(platform: str = sys.platform) -> bool:
    path = autostart_path(platform)
    return bool(path and path.exists())
