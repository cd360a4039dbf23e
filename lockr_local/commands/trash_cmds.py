"""`trash`: list the files you deleted, restore them, delete them for good, empty the trash."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, Callable

from lockr_local.cli import ExitStatus
from lockr_local.errors import LockrError, NotFound
from lockr_local.units import format_size

if TYPE_CHECKING:
    from lockr_local.client import LockrClient
    from lockr_local.remote import TrashedFile

Options = Callable[[argparse.ArgumentParser], None]


def add_commands(subparsers: argparse._SubParsersAction, client_options: Options) -> None:
    trash = subparsers.add_parser(
        "trash", help="list, restore or empty the files you deleted",
        description="Files you delete (lockr-local rm, the web page, the sync agent, WebDAV) stay in the "
                    "server's trash for its trash_retention (30 days by default), counted against your quota. "
                    "With no action: list them.")
    client_options(trash)
    trash.add_argument("--json", action="store_true",
                       help="print the trash as a JSON array (the file objects with deletedAt and purgeAt)")
    trash.set_defaults(handler=trash_list_cmd)
    actions = trash.add_subparsers(dest="trash_command", metavar="ACTION")
    listing = actions.add_parser("list", help="list the trash (the default)")
    client_options(listing)
    listing.add_argument("--json", action="store_true", help="print the trash as a JSON array")
    listing.set_defaults(handler=trash_list_cmd)
    restore = actions.add_parser(
        "restore", help="bring files back with their ids (and links)",
        description="Bring files back from the trash, with the same ids, so their share and signed links work "
                    "again. A name taken meanwhile comes back as 'NAME (restored).EXT'.")
    client_options(restore)
    restore.add_argument("ids", nargs="+", metavar="ID_OR_NAME", help="a file id, or the name of one trashed file")
    restore.set_defaults(handler=trash_restore_cmd)
    remove = actions.add_parser("rm", help="delete files in the trash for good")
    client_options(remove)
    remove.add_argument("ids", nargs="+", metavar="ID_OR_NAME")
    remove.set_defaults(handler=trash_rm_cmd)
    empty = actions.add_parser("empty", help="delete everything in the trash for good",
                               description="Delete every file in the trash for good, releasing its quota.")
    client_options(empty)
    empty.add_argument("--yes", action="store_true", help="do not ask for confirmation (needed without a terminal)")
    empty.set_defaults(handler=trash_empty_cmd)
    # The options are taken before the action too (`trash --endpoint URL restore ID`): an action's own
    # defaults must not then overwrite what was given there.
    shared = {action.dest for action in trash._actions if action.option_strings}
    for parser in (listing, restore, remove, empty):
        for action in parser._actions:
            if action.dest in shared and action.dest != "help":
                action.default = argparse.SUPPRESS


def _fail(message: str, status: ExitStatus = ExitStatus.ERROR) -> int:
    print(f"lockr-local: {message}", file=sys.stderr, flush=True)
    return status


def trash_json(item: TrashedFile) -> dict[str, Any]:
    from lockr_local.commands.client_cmds import file_json

    return {**file_json(item.file), "deletedAt": item.deleted_at, "purgeAt": item.purge_at}


def trash_list_cmd(args: argparse.Namespace) -> int:
    from lockr_local.commands.client_cmds import CommandFailed, client_for

    try:
        with client_for(args) as client:
            items = list(client.iter_trash())
    except CommandFailed as exc:
        return _fail(str(exc), exc.status)
    if args.json:
        print(json.dumps([trash_json(item) for item in items], indent=1))
        return ExitStatus.OK
    if not items:
        print("The trash is empty.", file=sys.stderr)
        return ExitStatus.OK
    rows = [("ID", "SIZE", "NAME", "DELETED", "PURGED")]
    rows += [(i.file.id, format_size(i.file.size), i.file.name, _when(i.deleted_at), _when(i.purge_at)) for i in items]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) if i != 1 else cell.rjust(widths[i])
                        for i, cell in enumerate(row)).rstrip())
    total = sum(item.file.size for item in items)
    print(f"{len(items)} file{'s' if len(items) != 1 else ''} in the trash, {format_size(total)} (counted in your "
          "quota until the trash is emptied: lockr-local trash empty).", file=sys.stderr)
    return ExitStatus.OK


def _when(iso: str) -> str:
    return iso.replace("T", " ")[:16]


def trashed_file(client: LockrClient, target: str) -> TrashedFile:
    """A file in the trash by id, share link, or name (refused when several trashed files have that name)."""
    from lockr_local.client import file_id_of

    items = list(client.iter_trash())
    file_id = file_id_of(target)
    named = [item for item in items if item.file.id == file_id] or [item for item in items if item.file.name == target]
    if len(named) == 1:
        return named[0]
    if named:
        ids = ", ".join(item.file.id for item in named)
        raise NotFound(f"{len(named)} files in your trash are named {target!r} ({ids}); name one by its id.")
    raise NotFound(f"Your trash has no file with the id or name {target!r}; 'lockr-local trash' lists it.")


def _each(args: argparse.Namespace, act: Callable[[LockrClient, TrashedFile], str]) -> int:
    """Runs `act` on each named trashed file; one failing does not stop the others (exit 1 at the end)."""
    from lockr_local.commands.client_cmds import BatchStopped, CommandFailed, client_for, item_failed

    status = ExitStatus.OK
    try:
        with client_for(args) as client:
            for target in args.ids:
                try:
                    print(act(client, trashed_file(client, target)), file=sys.stderr, flush=True)
                except LockrError as exc:
                    status = item_failed(target, exc)
    except BatchStopped as stopped:
        return stopped.status
    except CommandFailed as exc:
        return _fail(str(exc), exc.status)
    return status


def trash_restore_cmd(args: argparse.Namespace) -> int:
    def restore(client: LockrClient, item: TrashedFile) -> str:
        info = client.restore(item.file.id)
        renamed = f" as {info.name} (the name was taken)" if info.name != item.file.name else ""
        return f"Restored {item.file.name}{renamed} ({info.id})."
    return _each(args, restore)


def trash_rm_cmd(args: argparse.Namespace) -> int:
    def remove(client: LockrClient, item: TrashedFile) -> str:
        client.delete_forever(item.file.id)
        return f"Deleted {item.file.name} for good ({format_size(item.file.size)} freed)."
    return _each(args, remove)


def trash_empty_cmd(args: argparse.Namespace) -> int:
    from lockr_local.commands.client_cmds import CommandFailed, client_for

    try:
        with client_for(args) as client:
            if not args.yes:
                items = list(client.iter_trash())
                if not items:
                    print("The trash is empty.", file=sys.stderr)
                    return ExitStatus.OK
                if not sys.stdin.isatty():
                    return _fail("add --yes to empty the trash without a terminal to confirm on", ExitStatus.USAGE)
                size = format_size(sum(item.file.size for item in items))
                print(f"Delete {len(items)} files ({size}) in the trash for good? [y/N] ", end="", file=sys.stderr,
                      flush=True)
                if sys.stdin.readline().strip().lower() not in ("y", "yes"):
                    print("Nothing was deleted.", file=sys.stderr)
                    return ExitStatus.ERROR
            deleted, freed = client.empty_trash()
    except CommandFailed as exc:
        return _fail(str(exc), exc.status)
    print(f"Emptied the trash: {deleted} file{'s' if deleted != 1 else ''} deleted for good, "
          f"{format_size(freed)} freed.", file=sys.stderr)
    return ExitStatus.OK
