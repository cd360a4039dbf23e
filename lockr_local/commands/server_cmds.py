"""`serve`, `user ...` and `token ...`: the commands that run or administer the local store."""

from __future__ import annotations

import argparse
import getpass
import logging
import secrets
import signal
import sys
from contextlib import contextmanager
from typing import Any, Iterator

from lockr_local.cli import ExitStatus
from lockr_local.config import Settings, load_settings, parse_size
from lockr_local.units import format_size


def settings_from_args(args: argparse.Namespace) -> Settings:
    flags: dict[str, Any] = {
        "data_dir": getattr(args, "data_dir", None),
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "public_url": getattr(args, "public_url", None),
    }
    return load_settings(flags, config_file=getattr(args, "config", None))


def serve(args: argparse.Namespace) -> int:
    """Runs the server until SIGINT or SIGTERM; prints the URL it listens on."""
    import asyncio

    from pathlib import Path

    from lockr_local.server.app import Server
    from lockr_local.server.datalock import DataDirLock
    from lockr_local.server.logsafe import configure_server_logging
    from lockr_local.server.private import make_private_dir

    settings = settings_from_args(args)
    configure_server_logging(settings.log_level, sys.stderr)
    make_private_dir(Path(settings.data_dir))
    lock = DataDirLock(Path(settings.data_dir)).acquire()
    try:
        server = Server(settings)
    except BaseException:
        lock.release()
        raise

    async def run() -> None:
        port = server.listen(settings.port, settings.host)
        host = settings.host if ":" not in settings.host else f"[{settings.host}]"
        print(f"lockr-local: store in {settings.data_dir}", file=sys.stderr)
        print(f"lockr-local listening on http://{host}:{port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except NotImplementedError:  # Windows' event loop has no signal handlers: plain signals then
                signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))
        server.start()
        await stop.wait()
        logging.getLogger("lockr.server").info("shutting down")
        await server.stop()

    try:
        asyncio.run(run())
    except asyncio.TimeoutError:
        pass
    finally:
        server.close()
        lock.release()
    return ExitStatus.OK


@contextmanager
def local_store(args: argparse.Namespace) -> Iterator[Any]:
    """The Service on the local store, for administration without a running server."""
    from pathlib import Path

    from lockr_local.server.blobstore import make_blob_store
    from lockr_local.server.models import open_database
    from lockr_local.server.private import make_private_dir
    from lockr_local.server.security import Signer, load_or_create_secret
    from lockr_local.server.service import Service

    settings = settings_from_args(args)
    make_private_dir(Path(settings.data_dir))
    database = open_database(settings.database_url)
    try:
        signer = Signer(load_or_create_secret(settings.secret_key, Path(settings.data_dir)))
        yield Service(settings, make_blob_store(settings), signer)
    finally:
        database.close()


def read_password(args: argparse.Namespace, *, confirm: bool = True) -> str:
    from lockr_local.server.service import validate_password

    if args.password_stdin:
        return validate_password(sys.stdin.readline().rstrip("\r\n"))
    if not sys.stdin.isatty():
        raise SystemExit("lockr-local: no terminal to ask for a password; pipe it in with --password-stdin")
    password = getpass.getpass("Password: ")
    if confirm and getpass.getpass("Repeat it: ") != password:
        raise SystemExit("lockr-local: the passwords differ; nothing was changed")
    return validate_password(password)


def user_add(args: argparse.Namespace) -> int:
    from lockr_local.server.security import PasswordCost, hash_password

    with local_store(args) as service:
        if args.password_stdin or sys.stdin.isatty():
            password = read_password(args)
        else:
            password = secrets.token_urlsafe(24)
            print("No password given: password login stays off until 'lockr-local user passwd "
                  f"{args.name}'. The token below works now.", file=sys.stderr)
        quota = parse_size(args.quota) if args.quota else None
        account, token = service.create_account(args.name, args.email,
                                                hash_password(password, PasswordCost.of(service.settings)), quota)
        print(f"Created account {account.username} ({format_size(account.quota)} quota). Its API token:",
              file=sys.stderr)
        print(token)
    return ExitStatus.OK


def user_list(args: argparse.Namespace) -> int:
    with local_store(args) as service:
        accounts = service.list_accounts()
        if not accounts:
            print("No accounts yet; create one with 'lockr-local user add NAME --email E'.", file=sys.stderr)
            return ExitStatus.OK
        print(f"{'USERNAME':<20} {'EMAIL':<32} {'USED':>10} {'QUOTA':>10}")
        for account in accounts:
            print(f"{account.username:<20} {account.email:<32} {format_size(account.used_bytes):>10} "
                  f"{format_size(account.quota):>10}")
    return ExitStatus.OK


def user_passwd(args: argparse.Namespace) -> int:
    from lockr_local.server.security import PasswordCost, hash_password

    with local_store(args) as service:
        account = service.account_by_username(args.name)
        password = read_password(args)
        service.set_password_hash(account.id, hash_password(password, PasswordCost.of(service.settings)))
        print(f"Password of {account.username} changed.", file=sys.stderr)
    return ExitStatus.OK


def user_quota(args: argparse.Namespace) -> int:
    with local_store(args) as service:
        account = service.account_by_username(args.name)
        quota = parse_size(args.size)
        service.set_quota(account.id, quota)
        print(f"Quota of {account.username} is now {format_size(quota)} "
              f"({format_size(account.used_bytes)} used).", file=sys.stderr)
    return ExitStatus.OK


def user_rename(args: argparse.Namespace) -> int:
    with local_store(args) as service:
        account = service.account_by_username(args.name)
        renamed = service.rename_account(account.id, args.new_name)
        print(f"Account {account.username} is now {renamed.username}; its WebDAV folder is "
              f"/dav/{renamed.username}/.", file=sys.stderr)
    return ExitStatus.OK


def user_delete(args: argparse.Namespace) -> int:
    with local_store(args) as service:
        account = service.account_by_username(args.name)
        if not args.yes:
            if not sys.stdin.isatty():
                raise SystemExit("lockr-local: add --yes to delete without a terminal to confirm on")
            answer = input(f"Delete {account.username} and all {format_size(account.used_bytes)} of its files? "
                           "Type the username to confirm: ")
            if answer.strip() != account.username:
                print("Nothing was deleted.", file=sys.stderr)
                return ExitStatus.ERROR
        count = service.delete_account(account.id)
        print(f"Deleted {account.username} and {count} files.", file=sys.stderr)
    return ExitStatus.OK


def token_create(args: argparse.Namespace) -> int:
    with local_store(args) as service:
        account = service.account_by_username(args.name)
        print(service.create_token(account.id, args.label))
    return ExitStatus.OK


def token_revoke(args: argparse.Namespace) -> int:
    with local_store(args) as service:
        if not service.revoke_token(args.token.strip()):
            print("No such token; nothing was revoked.", file=sys.stderr)
            return ExitStatus.ERROR
        print("Token revoked.", file=sys.stderr)
    return ExitStatus.OK


def fsck(args: argparse.Namespace) -> int:
    """Checks the store; with --repair (server stopped) removes leftovers and recomputes quotas."""
    from pathlib import Path

    from lockr_local.server.datalock import DataDirLock
    from lockr_local.server.fsck import check_store, private_roots

    settings = settings_from_args(args)
    lock = DataDirLock(Path(settings.data_dir)).acquire() if args.repair else None
    try:
        with local_store(args) as service:
            from lockr_local.server.models import database_proxy

            report = check_store(database_proxy.obj, service.blobs, verify=args.verify, repair=args.repair,
                                 private=private_roots(settings))
    finally:
        if lock is not None:
            lock.release()
    for line in report.lines():
        print(line)
    if not report.clean:
        print("Run 'lockr-local fsck --repair' with the server stopped to remove leftovers and recompute "
              "quotas; missing or corrupt files are listed above for you to restore.", file=sys.stderr)
    return ExitStatus.OK if report.clean else ExitStatus.ERROR
