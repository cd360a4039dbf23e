"""`guest list` and `guest rm ID...`: the admin's view of guest uploads (files no account owns)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Callable

from lockr_local.cli import ExitStatus
from lockr_local.units import format_size

Options = Callable[[argparse.ArgumentParser], None]


def add_commands(commands: argparse._SubParsersAction, server_options: Options) -> None:
    guest = commands.add_parser("guest", help="list or remove guest uploads on the local store",
                                description="List or remove uploads made without an account (works while "
                                            "the server runs). The setting guest_retention deletes them "
                                            "after a while by itself.")
    actions = guest.add_subparsers(dest="guest_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list guest uploads: id, size, age, name")
    listing.add_argument("--json", action="store_true", help="print them as JSON")
    server_options(listing)
    listing.set_defaults(handler=guest_list)
    remove = actions.add_parser("rm", help="remove guest uploads by id (or the first 8+ characters of one)")
    remove.add_argument("ids", nargs="+", metavar="ID", help="a file id, or a prefix as the access log shows")
    server_options(remove)
    remove.set_defaults(handler=guest_rm)


def _age(created_at: float, now: float) -> str:
    seconds = max(0, int(now - created_at))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def guest_list(args: argparse.Namespace) -> int:
    from lockr_local.commands.server_cmds import local_store
    from lockr_local.server.guests import list_guest_files

    with local_store(args) as service:
        files = list_guest_files()
        retention = service.settings.guest_retention
    if args.json:
        print(json.dumps([{"id": f.file_id, "name": f.name, "size": f.size, "region": f.region,
                           "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(f.created_at)),
                           **({"expiresAt": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                          time.gmtime(f.created_at + retention))}
                              if retention else {})} for f in files], indent=1))
        return ExitStatus.OK
    if not files:
        print("No guest uploads.", file=sys.stderr)
        return ExitStatus.OK
    now = time.time()
    print(f"{'ID':<32}  {'SIZE':>9}  {'AGE':>5}  NAME")
    for f in files:
        print(f"{f.file_id:<32}  {format_size(f.size):>9}  {_age(f.created_at, now):>5}  {f.name}")
    total = sum(f.size for f in files)
    kept = f"kept {_age(0, retention)} (guest_retention)" if retention else "kept until removed (guest_retention = 0)"
    print(f"{len(files)} guest upload{'' if len(files) == 1 else 's'}, {format_size(total)}; {kept}.", file=sys.stderr)
    return ExitStatus.OK


def guest_rm(args: argparse.Namespace) -> int:
    from lockr_local.commands.server_cmds import local_store
    from lockr_local.server.guests import find_guest_file, remove_rows
    from lockr_local.server.retention import delete_bytes

    with local_store(args) as service:
        files = [find_guest_file(text) for text in args.ids]  # all found, or nothing removed
        removed = remove_rows(files)
        delete_bytes(service.blobs, removed)
    for f in removed:
        print(f"Removed guest upload {f.file_id} ({f.name}, {format_size(f.size)}).", file=sys.stderr)
    return ExitStatus.OK
