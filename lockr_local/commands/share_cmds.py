"""`whoami`, `share` and `key`: the account you are, a signed link to a file, a file's key phrase."""

from __future__ import annotations

import argparse
import json
import re
from typing import Callable

from lockr_local.cli import ExitStatus

Options = Callable[[argparse.ArgumentParser], None]
_DURATION = re.compile(r"(\d+)\s*([smhdw]?)")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration(text: str) -> int:
    """'3600', '90m', '12h', '7d', '1w' -> seconds."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None or int(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: use a duration such as 3600, 90m, 12h, 7d or 1w")
    return int(match.group(1)) * _SECONDS[match.group(2)]


def add_commands(subparsers: argparse._SubParsersAction, client_options: Options) -> None:
    whoami = subparsers.add_parser("whoami", help="show the account your token belongs to",
                                   description="Show the endpoint, the account of the token in use and its usage.")
    client_options(whoami)
    whoami.add_argument("--json", action="store_true", help="print the account as JSON")
    whoami.set_defaults(handler=whoami_cmd)

    share = subparsers.add_parser(
        "share", help="print a signed link to a file that works without a token until it expires",
        description="Make a signed download link for one of your files (POST /api/v1/files/ID/link): anyone "
                    "with it downloads the file without a token or key, until it expires.")
    client_options(share)
    share.add_argument("target", metavar="ID_OR_NAME", help="a file id, share link or the name of one of your files")
    share.add_argument("--expires", metavar="DURATION", type=duration, default=86400,
                       help="how long the link works: seconds or 90m, 12h, 7d, 1w (default 1d; the server "
                            "caps it at its max_link_lifetime)")
    share.add_argument("--json", action="store_true", help="print {url, expiresAt} as JSON")
    share.set_defaults(handler=share_cmd)

    key = subparsers.add_parser(
        "key", help="set or clear the key phrase a file's downloads need",
        description="Protect one of your files with a key phrase (POST /api/v1/files/ID/key), or clear it; "
                    "downloads then need the phrase (lockr-local download --key PHRASE).")
    client_options(key)
    key.add_argument("target", metavar="ID_OR_NAME")
    which = key.add_mutually_exclusive_group(required=True)
    which.add_argument("--set", metavar="PHRASE", dest="phrase", help="the new key phrase")
    which.add_argument("--clear", action="store_true", help="remove the key: the share link works alone")
    key.set_defaults(handler=key_cmd)


def whoami_cmd(args: argparse.Namespace) -> int:
    from lockr_local.commands.client_cmds import client_for
    from lockr_local.units import format_size

    with client_for(args) as client:
        account = client.account()
    if args.json:
        print(json.dumps({"endpoint": client.endpoint, "username": account.username, "email": account.email,
                          "quota": account.quota, "used": account.used, "reserved": account.reserved,
                          "defaultRegion": account.default_region, "regions": list(account.regions)}, indent=1))
        return ExitStatus.OK
    print(f"{account.username} <{account.email}> at {client.endpoint}: {format_size(account.used)} of "
          f"{format_size(account.quota)} used")
    return ExitStatus.OK


def share_cmd(args: argparse.Namespace) -> int:
    from lockr_local.commands.client_cmds import client_for, file_by_id_or_name, say

    with client_for(args) as client:
        info = file_by_id_or_name(client, args.target)
        link = client.share_link(info.id, args.expires)
    if args.json:
        print(json.dumps({"url": link["url"], "expiresAt": link.get("expiresAt")}, indent=1))
        return ExitStatus.OK
    say(f"A link to {info.name}, valid until {link.get('expiresAt')} (no token or key needed):")
    print(link["url"], flush=True)
    return ExitStatus.OK


def key_cmd(args: argparse.Namespace) -> int:
    from lockr_local.commands.client_cmds import client_for, file_by_id_or_name, say

    with client_for(args) as client:
        info = file_by_id_or_name(client, args.target)
        if args.clear:
            client.clear_key(info.id)
            say(f"{info.name} has no key now: its share link works alone.")
        else:
            client.set_key(info.id, args.phrase)
            say(f"{info.name} now needs the key phrase: download it with --key PHRASE.")
    return ExitStatus.OK
