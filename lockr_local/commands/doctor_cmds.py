"""`lockr-local doctor`: which tray and keyring backends this machine uses, the paths, and the endpoint."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Callable

from lockr_local import __version__
from lockr_local.cli import ExitStatus


def add_commands(commands: argparse._SubParsersAction, client_options: Callable[[argparse.ArgumentParser], None]) -> None:
    parser = commands.add_parser(
        "doctor", help="show the tray, keyring, paths and endpoint this machine would use",
        description="Print which tray (pystray) and keyring backends are in use, the config and data paths, "
                    "where the token comes from, and whether the endpoint answers GET /healthz. Exits 1 when "
                    "the endpoint is configured but does not answer.")
    client_options(parser)
    parser.add_argument("--json", action="store_true",
                        help="print the findings as one JSON object (keys: the labels in snake_case)")
    parser.set_defaults(handler=doctor)


class Findings:
    """What doctor prints: `label: value` lines and the advice under them; with --json, one object at the
    end (advice goes to stderr then, so stdout stays one JSON document)."""

    def __init__(self, as_json: bool = False) -> None:
        self.as_json = as_json
        self.values: dict[str, str] = {}

    def line(self, label: str, value: str) -> None:
        self.values[label.replace(" ", "_").replace("-", "_")] = value
        if not self.as_json:
            print(f"{label + ':':<18} {value}")

    def note(self, text: str) -> None:
        print(text, file=sys.stderr if self.as_json else sys.stdout)

    def finish(self, status: int) -> int:
        if self.as_json:
            import json

            print(json.dumps(self.values, indent=1), flush=True)
        return status


def tray_backend() -> str:
    """`xorg (menu: no, default action: yes, notifications: no)`, or why there is no tray."""
    from lockr_local.tray.app import load_pystray

    try:
        pystray, name = load_pystray()
    except RuntimeError as exc:
        return f"none - {exc}"
    icon = pystray.Icon
    yes = {True: "yes", False: "no"}
    forced = " (PYSTRAY_BACKEND)" if os.environ.get("PYSTRAY_BACKEND") else ""
    return (f"{name}{forced} (menu: {yes[bool(icon.HAS_MENU)]}, default action: {yes[bool(icon.HAS_DEFAULT_ACTION)]}, "
            f"notifications: {yes[bool(icon.HAS_NOTIFICATION)]})")


def keyring_backend() -> tuple[str, bool]:
    import keyring

    from lockr_local.credentials import keyring_usable

    try:
        backend = keyring.get_keyring()
        name = f"{type(backend).__module__}.{type(backend).__name__}"
        usable = keyring_usable()
    except Exception as exc:  # a misconfigured PYTHON_KEYRING_BACKEND must be reported, not crash doctor
        return f"unavailable ({type(exc).__name__}: {exc})", False
    return (name if usable else f"{name} - NOT usable"), usable


def checksum_backend() -> str:
    """The server's whole-file check: hardware CRC-32C, or zlib's CRC-32 where the compiled module is missing."""
    from lockr_local.server.checks import CRC32C_AVAILABLE

    if CRC32C_AVAILABLE:
        return "CRC-32C (google-crc32c, compiled)"
    return "CRC-32 (zlib) - google-crc32c's compiled module is missing, uploads and downloads use more CPU"


def _explain_store_permissions(out: Findings, data_dir: str) -> None:
    """A store on this machine that other local users can read: the database holds small files' bytes and
    every file id (a download link), so say so and how to close it."""
    from pathlib import Path

    from lockr_local.server.private import fix_command, loose_permissions

    root = Path(data_dir)
    if not root.is_dir():
        return
    loose = loose_permissions([root], shallow=True)
    if not loose:
        out.line("store access", "private (owner only)")
        return
    out.line("store access", f"OPEN to other local users ({len(loose)} folders or files)")
    for entry in loose[:5]:
        out.note(f"  {entry.describe()}")
    out.note("  Other users of this machine can read the database, which holds small files' bytes and every")
    out.note("  file's download id. Make the store private (the server may keep running):")
    out.note(f"    {fix_command([root])}")
    out.note("  `lockr-local fsck` checks every file of the store, blobs included.")


def doctor(args: argparse.Namespace) -> int:
    from lockr_local.config import default_data_dir
    from lockr_local.credentials import SETTINGS_FILE, TOKEN_FILE, ClientSettings, TokenStore, config_dir, state_dir
    from lockr_local.errors import LockrError
    from lockr_local.tray.autostart import autostart_enabled, autostart_location
    from lockr_local.tray.config import TrayConfig, config_path

    out = Findings(args.json)
    out.line("lockr-local", f"{__version__} (Python {sys.version.split()[0]}, {sys.platform})")
    out.line("tray", tray_backend())
    keyring_name, usable = keyring_backend()
    out.line("keyring", keyring_name)
    if not usable:
        out.note("  No usable OS keyring: tokens cannot be stored safely. Either set LOCKR_TOKEN in the environment,")
        out.note("  or choose the private file store (0600) on the setup page / with `lockr-local login --insecure-file-store`.")
    out.line("checksums", checksum_backend())
    out.line("config folder", str(config_dir()))
    tray_config = TrayConfig.load()
    out.line("app settings", f"{config_path()}{'' if config_path().exists() else ' (not created yet)'}")
    out.line("client settings", str(config_dir() / SETTINGS_FILE))
    out.line("state folder", str(state_dir()))
    server_data = os.environ.get("LOCKR_DATA_DIR") or default_data_dir()
    out.line("server data", server_data)
    _explain_store_permissions(out, server_data)
    place = autostart_location()
    out.line("autostart", f"{'on' if autostart_enabled() else 'off'} ({place})" if place else "not supported here")
    out.line("sync folder", tray_config.folder or "(not set up)")

    settings = ClientSettings.load()
    endpoint = args.endpoint or os.environ.get("LOCKR_ENDPOINT") or tray_config.endpoint or settings.endpoint
    if not endpoint:
        out.line("endpoint", "(not set up: run `lockr-local tray` or pass --endpoint URL)")
        return out.finish(ExitStatus.OK)
    endpoint = endpoint.rstrip("/")
    out.line("endpoint", endpoint)
    if args.token:
        source = "--token"
    elif os.environ.get("LOCKR_TOKEN"):
        source = "LOCKR_TOKEN"
    else:
        store = TokenStore(settings)
        try:
            found = store.get(endpoint)
        except LockrError as exc:
            found, source = None, f"keyring error: {exc.message}"
        else:
            where = f"private file {config_dir() / TOKEN_FILE}" if store.uses_file(endpoint) else "the OS keyring"
            source = where if found else "none stored (sign in on the setup page)"
    out.line("token", source)
    return out.finish(_check_endpoint(out, endpoint))


def _check_endpoint(out: Findings, endpoint: str) -> int:
    import requests

    started = time.monotonic()
    try:
        response = requests.get(f"{endpoint}/healthz", timeout=5)
    except requests.RequestException as exc:
        out.line("reachable", f"NO - {type(exc).__name__}: {exc}")
        return ExitStatus.ERROR
    elapsed = (time.monotonic() - started) * 1000
    if response.status_code != 200:
        out.line("reachable", f"answers, but GET /healthz gave HTTP {response.status_code} ({elapsed:.0f} ms)")
        return ExitStatus.ERROR
    version = ""
    try:
        version = f", server {response.json().get('version')}"
    except ValueError:
        pass
    out.line("reachable", f"yes - GET /healthz 200 in {elapsed:.0f} ms{version}")
    return ExitStatus.OK
