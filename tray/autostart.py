"""The start-at-login entry, each platform's own way: XDG autostart, a LaunchAgent, the Windows Run key.

Linux and the BSDs get `~/.config/autostart/lockr-local.desktop` (freedesktop Desktop Entry spec, its
Exec key quoted as that spec says, not as a shell would); macOS a LaunchAgent written with `plistlib`;
Windows a `lockr-local` value under the user's Run key. The Run key rather than a Startup-folder
shortcut: a value is one documented registry write through the standard library's `winreg` (a .lnk
needs COM or a hand-made binary file, a .cmd flashes a console window at every login), it needs no
admin rights, and Task Manager's Startup tab lists and toggles it like any other app's.

Every failure is an `AutostartError` whose message names the entry and says what to do next, for the
setup page to show: a login entry that silently is not there is what this module exists to prevent.
"""

from __future__ import annotations

import os
import plistlib
import subprocess
import sys
from pathlib import Path
from typing import Protocol

DESKTOP_FILE = "lockr-local.desktop"
AGENT_LABEL = "org.lockr-local.tray"
LAUNCH_AGENT = AGENT_LABEL + ".plist"
RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
RUN_VALUE = "lockr-local"
MANUAL_START = "start lockr-local yourself after you log in (run `lockr-local tray`)"

# Characters that force an argument into double quotes (Desktop Entry spec, "The Exec key").
_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")
# Inside double quotes these four are escaped with a backslash (same section).
_QUOTE_ESCAPED = set('"`$\\')
# The string-value escapes (spec, "Possible value types"), applied after the quoting rule.
_STRING_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


class AutostartError(Exception):
    """The entry could not be written or removed; the message is for the user, next step included."""


class RunKey(Protocol):
    """The per-user Run key, as far as autostart needs it (the seam the tests fill with a recorder)."""

    def set(self, name: str, command_line: str) -> None: ...

    def delete(self, name: str) -> None:
        """Removes the value; no error when it is not there."""

    def get(self, name: str) -> str | None: ...


class WinregRunKey:
    """`HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run` through `winreg` (Windows only)."""

    def set(self, name: str, command_line: str) -> None:
        if sys.platform == "win32":  # lets mypy on Linux skip the Windows-only module's names
            import winreg

            with winreg.CreateKeyEx(winreg.HKEY_CURRENT_USER, RUN_KEY, 0, winreg.KEY_SET_VALUE) as key:
                winreg.SetValueEx(key, name, 0, winreg.REG_SZ, command_line)
            return
        raise OSError("the Windows registry exists only on Windows")

    def delete(self, name: str) -> None:
        if sys.platform == "win32":
            import winreg

            try:
                with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY, 0, winreg.KEY_SET_VALUE) as key:
                    winreg.DeleteValue(key, name)
            except FileNotFoundError:
                pass
            return
        raise OSError("the Windows registry exists only on Windows")

    def get(self, name: str) -> str | None:
        if sys.platform == "win32":
            import winreg

            try:
                with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY, 0, winreg.KEY_QUERY_VALUE) as key:
                    value, _kind = winreg.QueryValueEx(key, name)
            except FileNotFoundError:
                return None
            return str(value)
        return None


def launch_command(platform: str = sys.platform) -> list[str]:
    """How to start the tray again: the frozen executable itself, or this Python with `-m lockr_local`."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "tray"]
    python = Path(sys.executable)
    if platform == "win32" and python.name.lower() == "python.exe" and python.with_name("pythonw.exe").exists():
        python = python.with_name("pythonw.exe")  # no console window left open at every login
    return [str(python), "-m", "lockr_local", "tray"]


def _is_windows(platform: str) -> bool:
    return platform == "win32"


def _is_xdg(platform: str) -> bool:
    return platform.startswith(("linux", "freebsd", "openbsd", "netbsd"))


def autostart_path(platform: str = sys.platform) -> Path | None:
    """The entry's file: XDG autostart on Linux/BSD, a LaunchAgent on macOS; None where it is no file."""
    if platform == "darwin":
        return Path.home() / "Library" / "LaunchAgents" / LAUNCH_AGENT
    if _is_xdg(platform):
        base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        return Path(base) / "autostart" / DESKTOP_FILE
    return None


def autostart_location(platform: str = sys.platform) -> str | None:
    """Where the entry lives, for people: its file, or the registry value; None where unsupported."""
    if _is_windows(platform):
        return f"HKEY_CURRENT_USER\\{RUN_KEY}\\{RUN_VALUE}"
    path = autostart_path(platform)
    return str(path) if path else None


def exec_argument(argument: str) -> str:
    """One argument of a Desktop Entry Exec key, as the file holds it (quoted only when it must be)."""
    if argument and not _RESERVED.intersection(argument):
        return argument.replace("%", "%%")
    quoted = "".join("\\" + c if c in _QUOTE_ESCAPED else c for c in argument)
    quoted = quoted.replace("%", "%%")
    # The string escapes come on top of the quoting ones: a literal backslash is four in the file.
    return '"' + "".join(_STRING_ESCAPES.get(c, c) for c in quoted) + '"'


def desktop_entry(command: list[str]) -> str:
    """An XDG autostart entry (freedesktop Desktop Entry spec 1.5)."""
    exec_line = " ".join(exec_argument(part) for part in command)
    return ("[Desktop Entry]\n"
            "Type=Application\n"
            "Name=lockr-local\n"
            "Comment=Keeps a folder in sync with a lockr server\n"
            f"Exec={exec_line}\n"
            "Terminal=false\n"
            "X-GNOME-Autostart-enabled=true\n")


def launch_agent(command: list[str]) -> bytes:
    """A LaunchAgent that starts the tray at login, in the graphical session only (it needs a menu bar)."""
    return plistlib.dumps({"Label": AGENT_LABEL, "ProgramArguments": list(command), "RunAtLoad": True,
                           "LimitLoadToSessionType": "Aqua"})


def run_command_line(command: list[str]) -> str:
    """The Run value: one command line in the quoting Windows' own argument parser undoes."""
    return subprocess.list2cmdline(command)


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    temp.write_bytes(data)
    os.replace(temp, path)  # never a half-written entry for the session manager to read


def set_autostart(enabled: bool, platform: str = sys.platform, command: list[str] | None = None,
                  run_key: RunKey | None = None) -> str:
    """Writes or removes the login entry; returns where it is. Raises AutostartError with the next step."""
    if _is_windows(platform):
        key = run_key or WinregRunKey()
        where = autostart_location(platform)
        try:
            if enabled:
                key.set(RUN_VALUE, run_command_line(command or launch_command(platform)))
            else:
                key.delete(RUN_VALUE)
        except OSError as exc:
            raise AutostartError(
                f"Could not {'add' if enabled else 'remove'} the registry value {where}: {exc.strerror or exc}. "
                f"Use the Startup tab of Task Manager instead, or {MANUAL_START}.") from exc
        return str(where)
    path = autostart_path(platform)
    if path is None:
        if not enabled:
            return "nowhere"  # nothing was ever written here, so nothing to remove
        raise AutostartError(f"lockr-local cannot start itself at login on this system ({platform}); {MANUAL_START}.")
    command = command or launch_command(platform)
    try:
        if not enabled:
            path.unlink(missing_ok=True)
        elif platform == "darwin":
            _write_file(path, launch_agent(command))
        else:
            _write_file(path, desktop_entry(command).encode("utf-8"))
    except OSError as exc:
        raise AutostartError(
            f"Could not {'write' if enabled else 'remove'} the login entry {path}: {exc.strerror or exc}. "
            f"Check that you own {path.parent} and can write to it, then save again; or {MANUAL_START}.") from exc
    return str(path)


def autostart_enabled(platform: str = sys.platform, run_key: RunKey | None = None) -> bool:
    if _is_windows(platform):
        try:
            return (run_key or WinregRunKey()).get(RUN_VALUE) is not None
        except OSError:
            return False
    path = autostart_path(platform)
    return bool(path and path.exists())
