"""`lockr-local rclone-config`: prints the rclone remote that makes `rclone sync SRC lockr:ACCOUNT` work."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, TextIO

from lockr_local.errors import BadRequest, LockrError

DEFAULT_ENDPOINT = "http://127.0.0.1:8080"


def add_command(commands: argparse._SubParsersAction, handler: Callable[[argparse.Namespace], int]) -> None:
    """Registers the subcommand on the CLI's parser."""
    parser = commands.add_parser(
        "rclone-config", help="print an rclone remote for migrating into lockr with 'rclone sync'",
        description="Print an rclone remote section (rclone's own webdav backend, ownCloud conventions) that "
                    "makes 'rclone sync SRC NAME:ACCOUNT' copy into the lockr account ACCOUNT. Append it to "
                    "~/.config/rclone/rclone.conf.")
    parser.add_argument("--endpoint", metavar="URL",
                        help=f"the lockr server (default: LOCKR_ENDPOINT, then {DEFAULT_ENDPOINT})")
    parser.add_argument("--token", metavar="TOKEN", help="API token (default: LOCKR_TOKEN, then the keyring)")
    parser.add_argument("--name", default="lockr", help="the remote's name (default: lockr)")
    parser.set_defaults(handler=handler)


def resolve_endpoint(flag: str | None) -> str:
    """--endpoint, then LOCKR_ENDPOINT, then the endpoint the client saved at login, then the local server."""
    try:
        from lockr_local import credentials
    except ImportError:
        text = (flag or os.environ.get("LOCKR_ENDPOINT") or DEFAULT_ENDPOINT).strip().rstrip("/")
        if not text.startswith(("http://", "https://")):
            raise BadRequest(f"The endpoint must be a URL like {DEFAULT_ENDPOINT}, not {text!r}.")
        return text
    return credentials.resolve_endpoint(flag) or DEFAULT_ENDPOINT


def resolve_token(flag: str | None, endpoint: str) -> tuple[str | None, str]:
    """--token, then LOCKR_TOKEN, then the token `lockr-local login` kept (keyring), when that part exists.

    Returns (token or None, why the keyring could not help, or "").
    """
    try:
        from lockr_local import credentials
    except ImportError:
        return flag or os.environ.get("LOCKR_TOKEN") or None, ""
    try:
        return credentials.resolve_token(flag, endpoint), ""
    except LockrError as exc:
        return None, exc.message


def remote_section(name: str, endpoint: str, token: str) -> str:
    """The remote: rclone's webdav backend on /dav/, so NAME:ACCOUNT is the folder /dav/ACCOUNT/.

    vendor = owncloud makes rclone keep modification times (X-OC-Mtime) and compare SHA-1/MD5
    (oc:checksums), so a second sync transfers nothing; 'nextcloud' would switch to chunked uploads.
    """
    return (f"[{name}]\n"
            "type = webdav\n"
            f"url = {endpoint}/dav/\n"
            "vendor = owncloud\n"
            f"bearer_token = {token}\n")


def rclone_config(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    from lockr_local.cli import ExitStatus

    out = out or sys.stdout
    err = err or sys.stderr
    if not args.name or any(c in args.name for c in "[]:\n "):
        print("lockr-local: --name must be a plain word such as 'lockr'.", file=err)
        return ExitStatus.USAGE
    endpoint = resolve_endpoint(args.endpoint)
    token, keyring_problem = resolve_token(args.token, endpoint)
    if not token:
        print("lockr-local: no API token: pass --token, set LOCKR_TOKEN, or run 'lockr-local login' first "
              "(a server admin can also run 'lockr-local token create USERNAME').", file=err)
        if keyring_problem:
            print(f"lockr-local: {keyring_problem}", file=err)
        return ExitStatus.AUTH
    out.write(f"# lockr-local at {endpoint}: rclone sync SRC {args.name}:YOUR_USERNAME --transfers=16 --checkers=8\n")
    out.write(remote_section(args.name, endpoint, token))
    return ExitStatus.OK
