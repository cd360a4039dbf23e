"""`migrate`: copy a single-box store (SQLite + folders) into PostgreSQL + bucket regions (server/migrate.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

from lockr_local.cli import ExitStatus

Options = Callable[[argparse.ArgumentParser], None]


def add_commands(commands: argparse._SubParsersAction, server_options: Options) -> None:
    migrate = commands.add_parser(
        "migrate", help="copy this store into PostgreSQL and bucket regions",
        description="Copy the local store (its SQLite database and folder regions, from --data-dir or --config) "
                    "into a PostgreSQL database and bucket regions: accounts with their passwords, API tokens, "
                    "files by the same ids, keys, folders, and the signing secret, so share links signed "
                    "before still work. Each region's files go to the target region of the same name, "
                    "checked by sha256 on the way. Stop the server first; the source is only read. "
                    "Interrupted, run the same command again: it continues where it stopped. It ends with "
                    "'fsck --verify' of the target. Unfinished upload sessions are not moved (their "
                    "uploaders start those uploads again).",
        epilog="Example: lockr-local migrate --data-dir /var/lib/lockr-local --to-config /etc/lockr-local/new.toml "
               "(a config with database_url and regions), or --to-database-url postgresql://lockr@db/lockr "
               "--to-region local=s3://lockr-blobs/local?endpoint=https://s3.example.net")
    server_options(migrate)
    target = migrate.add_argument_group("the target (read only from these, never from LOCKR_* variables)")
    target.add_argument("--to-config", metavar="FILE",
                        help="a TOML settings file of the new store (its database_url and regions)")
    target.add_argument("--to-database-url", metavar="URL",
                        help="the PostgreSQL database, postgresql://USER[:PASSWORD]@HOST:PORT/DATABASE "
                             "(overrides --to-config's)")
    target.add_argument("--to-region", metavar="NAME=WHERE", action="append", default=[],
                        help="a target region, s3://BUCKET/PREFIX?endpoint=https://HOST (repeat it for each "
                             "region; overrides --to-config's region of that name)")
    migrate.add_argument("--quiet", action="store_true", help="no progress bar")
    migrate.add_argument("--json", action="store_true",
                         help="print the result as JSON: the rows and blobs copied, and the target's check "
                              "(fsck --json's findings, with clean)")
    migrate.set_defaults(handler=migrate_cmd)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def target_settings(args: argparse.Namespace) -> Any:
    """The target's settings: --to-config, then the --to-* flags. The environment is left out: LOCKR_*
    variables describe the store being moved, and must not slip into the one it moves to."""
    from lockr_local.config import SettingsError, load_settings, parse_regions

    flags: dict[str, Any] = {}
    regions: dict[str, str] = {}
    if args.to_config:
        configured = load_settings(config_file=args.to_config, env={})
        if configured.sources["regions"] != "default":  # not the folder in data_dir that stands in for none
            regions = dict(configured.regions)
    for value in args.to_region:
        name, sep, where = value.partition("=")
        if not sep:
            raise SettingsError(f"--to-region {value!r} must be written as NAME=WHERE")
        regions.update(parse_regions({name.strip(): where.strip()}))
    if not regions:
        raise SettingsError("name the target's regions: --to-region NAME=s3://BUCKET/PREFIX?endpoint=... for each "
                            "region of this store, or a regions setting in --to-config")
    flags["regions"] = regions
    if args.to_database_url:
        flags["database_url"] = args.to_database_url
    settings = load_settings(flags, config_file=args.to_config, env={})
    if settings.sources.get("database_url") == "default":
        raise SettingsError("name the target database: --to-database-url postgresql://USER@HOST:PORT/DATABASE, "
                            "or database_url in --to-config")
    return settings


def migrate_cmd(args: argparse.Namespace) -> int:
    from lockr_local.commands.server_cmds import existing_store
    from lockr_local.server.datalock import DataDirLock
    from lockr_local.server.migrate import migrate_store
    from lockr_local.server.models import without_password
    from lockr_local.units import format_size

    source = existing_store(args)
    target = target_settings(args)
    lock = DataDirLock(Path(source.data_dir)).acquire()
    bar = _progress_bar(args.quiet)
    try:
        result = migrate_store(source, target, say=lambda line: say(f"lockr-local: {line}"), progress=bar)
    except KeyboardInterrupt:
        bar.close()
        say("Interrupted: what is copied stays copied; run the same command again to continue.")
        return ExitStatus.INTERRUPTED
    finally:
        bar.close()
        lock.release()
    report = result.report
    assert report is not None
    if args.json:
        from lockr_local.commands.server_cmds import print_json

        print_json({"alreadyMigrated": result.already_done, "rows": dict(result.rows), "blobs": result.blobs,
                    "blobsCopied": result.blobs_copied, "blobsPresent": result.blobs_present,
                    "bytes": result.bytes_total, "bytesCopied": result.bytes_copied,
                    "secretMoved": result.secret_moved, "sessionsLeftBehind": result.dropped_sessions,
                    "check": report.to_json()})
    else:
        for line in report.lines():
            print(line)
    where = without_password(target.database_url)
    if result.already_done:
        say(f"This store was already migrated into {where}; nothing was copied (the check above is of the target).")
    else:
        rows = result.rows
        say(f"Migrated {_count(rows.get('account', 0), 'account')}, {_count(rows.get('apitoken', 0), 'API token')} "
            f"and {_count(rows.get('storedfile', 0), 'file')} ({result.blobs} as blobs, {format_size(result.bytes_total)}; "
            f"{result.blobs_copied} copied now, {format_size(result.bytes_copied)}"
            + (f", {result.blobs_present} copied by an earlier run" if result.blobs_present else "")
            + f") into {where}; " + ("the signing secret moved with them, so links signed before still work."
                                      if result.secret_moved else "the source had no signing secret yet."))
        if result.dropped_sessions:
            say(f"Left behind: {_count(result.dropped_sessions, 'unfinished upload session')} "
                f"({format_size(result.dropped_session_bytes)} received); their uploaders start those uploads again.")
    if not report.clean:
        say("The target has problems (listed above); the source is unchanged. See 'lockr-local fsck' in the README.")
        return ExitStatus.ERROR
    say(f"Start the new store with the target's settings, e.g. lockr-local serve --config FILE (database_url "
        f"{where}); the old store in {source.data_dir} is unchanged: keep it until you have checked the new one.")
    return ExitStatus.OK


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _progress_bar(quiet: bool) -> Any:
    """The client commands' progress bar (bytes, rate, ETA; nothing when stderr is not a terminal)."""
    try:
        from lockr_local.commands.client_cmds import ProgressBar
    except ImportError:  # a build without the client part: no bar
        class Silent:
            def __call__(self, done: int, total: int) -> None: ...

            def close(self) -> None: ...
        return Silent()
    return ProgressBar("migrate", quiet)
