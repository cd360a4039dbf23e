"""`backup DEST` and `restore SRC`: an online copy of the local store, and a new store made from one."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from lockr_local.cli import ExitStatus

Options = Callable[[argparse.ArgumentParser], None]


def add_commands(commands: argparse._SubParsersAction, server_options: Options) -> None:
    backup = commands.add_parser(
        "backup", help="copy the store into a folder, while the server runs",
        description="Copy the local store into DEST (a new or empty folder): a consistent snapshot of the "
                    "database through SQLite's backup API, then the files' bytes, then the secret. The "
                    "server may keep running and taking uploads; every file acknowledged before the "
                    "backup started is in it.")
    backup.add_argument("dest", metavar="DEST", help="a new or empty folder")
    server_options(backup)
    backup.set_defaults(handler=backup_cmd)

    restore = commands.add_parser(
        "restore", help="make a store from a backup folder",
        description="Make the store of --data-dir (or --config) from a folder 'lockr-local backup' wrote, "
                    "then check it with 'fsck --verify'. The data folder must be new or empty: an "
                    "existing store is never overwritten.")
    restore.add_argument("source", metavar="SRC", help="a folder 'lockr-local backup' wrote")
    restore.add_argument("--json", action="store_true",
                         help="print {files, dataDir, fsck} as JSON (fsck: what 'fsck --json' prints)")
    server_options(restore)
    restore.set_defaults(handler=restore_cmd)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def backup_cmd(args: argparse.Namespace) -> int:
    from lockr_local.commands.server_cmds import existing_store
    from lockr_local.server.backup import backup_store

    settings = existing_store(args)
    dest = Path(args.dest).expanduser().resolve()
    say(f"lockr-local: backing it up to {dest}")
    result = backup_store(settings, dest, say=lambda line: say(f"  {line}"))
    left_out = f"; {result.left_out} files deleted while it ran are left out" if result.left_out else ""
    secret = ("the secret (secret.key)" if result.secret_included else
              "no secret file (secret_key is set in your configuration: keep that file too)")
    say(f"Backed up {result.files - result.left_out} files ({result.blob_files} as blob files, "
        f"{result.bytes_copied} bytes) and {secret}{left_out}.")
    say(f"Restore it with: lockr-local restore {dest} --data-dir NEW_FOLDER")
    return ExitStatus.OK


def restore_cmd(args: argparse.Namespace) -> int:
    from lockr_local.commands.server_cmds import local_store, settings_from_args
    from lockr_local.server.backup import restore_store
    from lockr_local.server.fsck import check_store, private_roots
    from lockr_local.server.models import bound_database

    settings = settings_from_args(args)
    source = Path(args.source).expanduser().resolve()
    manifest = restore_store(source, settings)
    say(f"lockr-local: restored {manifest.get('files')} files from {source} into {settings.data_dir}; "
        "checking it (fsck --verify) ...")
    with local_store(args, settings) as service:
        report = check_store(bound_database(), service.blobs, verify=True, private=private_roots(settings))
    if args.json:
        from lockr_local.commands.server_cmds import print_json

        print_json({"files": manifest.get("files"), "dataDir": str(settings.data_dir), "fsck": report.to_json()})
    else:
        for line in report.lines():
            print(line)
    if not report.clean:
        say("The restored store has problems (listed above); keep the backup and see 'lockr-local fsck'.")
        return ExitStatus.ERROR
    say(f"Start it with: lockr-local serve --data-dir {settings.data_dir}")
    return ExitStatus.OK
