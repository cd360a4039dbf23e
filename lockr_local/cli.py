"""The one command `lockr-local` and its subcommands; heavy imports happen inside the commands."""

from __future__ import annotations

import argparse
import enum
import sys
from typing import Callable, Sequence

from lockr_local import __version__


class ExitStatus(enum.IntEnum):
    """The CLI's single mapping of outcomes to exit codes."""

    OK = 0
    ERROR = 1
    USAGE = 2
    NOT_IN_SYNC = 3
    AUTH = 4
    INTERRUPTED = 130


Handler = Callable[[argparse.Namespace], int]


def _server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", metavar="DIR", help="the store's folder (default: the platform data folder)")
    parser.add_argument("--config", metavar="FILE", help="a TOML file of settings (see the README's settings table)")


def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--endpoint", metavar="URL", help="the lockr server (default: LOCKR_ENDPOINT, then saved)")
    parser.add_argument("--token", metavar="TOKEN", help="API token (default: LOCKR_TOKEN, then the keyring)")


def _duration(text: str) -> int:
    from lockr_local.commands.share_cmds import duration

    return duration(text)


def build_parser() -> argparse.ArgumentParser:
    from lockr_local.commands import server_cmds

    parser = argparse.ArgumentParser(
        prog="lockr-local",
        description="A self-hosted lockr file-storage server, and a client and sync agent for any lockr endpoint.",
        epilog="Start a server with 'lockr-local serve'; run 'lockr-local COMMAND --help' for details.",
    )
    parser.add_argument("--version", action="version", version=f"lockr-local {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the server", description="Run the lockr-local server.")
    _server_options(serve)
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080; 0 picks a free one)")
    serve.add_argument("--public-url", metavar="URL", help="the URL clients reach the server at, for links")
    serve.set_defaults(handler=server_cmds.serve)

    user = commands.add_parser("user", help="manage accounts on the local store",
                               description="Manage accounts on the local store (works while the server runs).")
    users = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    add = users.add_parser("add", help="create an account and print its API token")
    add.add_argument("name", help="the username")
    add.add_argument("--email", required=True, help="the account's email address")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.add_argument("--quota", metavar="SIZE", help="storage quota such as 100GB (default: default_quota)")
    add.add_argument("--json", action="store_true", help="print {username, email, quota, token} as JSON")
    _server_options(add)
    add.set_defaults(handler=server_cmds.user_add)
    listing = users.add_parser("list", help="list accounts with their usage")
    listing.add_argument("--json", action="store_true", help="print the accounts as a JSON array")
    _server_options(listing)
    listing.set_defaults(handler=server_cmds.user_list)
    passwd = users.add_parser("passwd", help="set an account's password")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    _server_options(passwd)
    passwd.set_defaults(handler=server_cmds.user_passwd)
    quota = users.add_parser("quota", help="set an account's storage quota")
    quota.add_argument("name")
    quota.add_argument("size", help="such as 500GB or 1TB")
    _server_options(quota)
    quota.set_defaults(handler=server_cmds.user_quota)
    rename = users.add_parser("rename", help="give an account another username (its files stay)")
    rename.add_argument("name")
    rename.add_argument("new_name")
    _server_options(rename)
    rename.set_defaults(handler=server_cmds.user_rename)
    delete = users.add_parser("delete", help="delete an account with all its files")
    delete.add_argument("name")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _server_options(delete)
    delete.set_defaults(handler=server_cmds.user_delete)

    token = commands.add_parser("token", help="issue or revoke API tokens on the local store",
                                description="Issue or revoke API tokens on the local store.")
    tokens = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = tokens.add_parser("create", help="issue a new token for an account and print it")
    create.add_argument("name", help="the username")
    create.add_argument("--label", default="cli", help="a note to recognise the token by")
    create.add_argument("--expires", metavar="DURATION", type=_duration,
                        help="the token stops working after this long: seconds or 90m, 12h, 30d, 1w "
                             "(default: until revoked)")
    create.add_argument("--json", action="store_true", help="print {token, name, expiresAt} as JSON")
    _server_options(create)
    create.set_defaults(handler=server_cmds.token_create)
    token_listing = tokens.add_parser("list", help="list an account's tokens: id, prefix, name, last use")
    token_listing.add_argument("name", help="the username")
    token_listing.add_argument("--json", action="store_true", help="print the tokens as JSON")
    _server_options(token_listing)
    token_listing.set_defaults(handler=server_cmds.token_list)
    revoke = tokens.add_parser("revoke", help="revoke a token by id or prefix (see 'token list'), or the token")
    revoke.add_argument("token", metavar="ID_PREFIX_OR_TOKEN")
    _server_options(revoke)
    revoke.set_defaults(handler=server_cmds.token_revoke)

    check = commands.add_parser("fsck", help="check the store's consistency",
                                description="Check that every file has its bytes (and, with --verify, its "
                                            "recorded sha256), that no bytes lack a file, that quota "
                                            "accounting adds up and that the database is intact.")
    check.add_argument("--verify", action="store_true", help="re-hash every file (reads all bytes)")
    check.add_argument("--repair", action="store_true",
                       help="remove leftovers and recompute quotas (needs the server stopped)")
    check.add_argument("--json", action="store_true", help="print the findings as one JSON object")
    _server_options(check)
    check.set_defaults(handler=server_cmds.fsck)

    from lockr_local.commands import backup_cmds, guest_cmds, migrate_cmds, rclone_cmds

    guest_cmds.add_commands(commands, _server_options)
    backup_cmds.add_commands(commands, _server_options)
    migrate_cmds.add_commands(commands, _server_options)

    rclone_cmds.add_command(commands, rclone_cmds.rclone_config)
    _add_client_commands(commands)
    from lockr_local.commands import sync_cmds

    sync_cmds.add_commands(commands, _client_options)
    _add_desktop_commands(commands)
    from lockr_local.commands import completion_cmds

    completion_cmds.add_commands(commands)
    return parser


def _add_desktop_commands(commands: argparse._SubParsersAction) -> None:
    """`tray` and `doctor` (the desktop app), in their own modules like the client commands."""
    from lockr_local.commands import doctor_cmds, tray_cmds

    tray_cmds.add_commands(commands, _client_options)
    doctor_cmds.add_commands(commands, _client_options)


def _add_client_commands(commands: argparse._SubParsersAction) -> None:
    """Client commands live in their own module so a missing optional part never breaks `serve`."""
    try:
        from lockr_local.commands import client_cmds
    except ImportError:
        return
    client_cmds.add_commands(commands, _client_options)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        default = _default_command() if _has_display() else None
        if default is not None:
            return default(args)
        parser.print_help()
        if not _has_display():
            print("\nNo display here (over SSH?), so no desktop app: run one of the commands above.",
                  file=sys.stderr)
        return ExitStatus.USAGE
    from lockr_local.config import SettingsError
    from lockr_local.errors import LockrError

    try:
        return int(handler(args))
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return ExitStatus.INTERRUPTED
    except SettingsError as exc:
        print(f"lockr-local: {exc}", file=sys.stderr)
        return ExitStatus.USAGE
    except LockrError as exc:
        print(f"lockr-local: {exc.message}", file=sys.stderr)
        return ExitStatus.AUTH if exc.status == 401 else ExitStatus.ERROR


def _has_display() -> bool:
    """Whether a tray icon could show: always on Windows and macOS; on Linux and BSD, an X11 or Wayland
    session (started over SSH there is none, and the tray would only fail)."""
    import os

    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _default_command() -> Handler | None:
    """With no arguments the packaged app starts the tray, when the tray part is present."""
    try:
        from lockr_local.commands import tray_cmds

        return tray_cmds.default_command
    except ImportError:
        pass
    try:
        from lockr_local.commands import client_cmds
    except ImportError:
        return None
    return getattr(client_cmds, "default_command", None)


if __name__ == "__main__":
    raise SystemExit(main())
