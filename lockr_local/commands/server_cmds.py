"""`serve`, `user ...` and `token ...`: the commands that run or administer the local store."""

from __future__ import annotations

import argparse
import errno
import getpass
import json
import logging
import os
import secrets
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from lockr_local.cli import ExitStatus
from lockr_local.config import Settings, is_postgresql, load_settings, parse_size
from lockr_local.errors import StoreUnusable
from lockr_local.units import format_size

# Where the packaged server keeps its settings (packaging/lockr-local.service): read when a command names
# no store itself, so that `sudo -u lockr lockr-local user add ...` finds the server's store.
DEFAULT_CONFIG_FILE = Path("/etc/lockr-local/config.toml")
_STORE_CHOOSERS = ("LOCKR_CONFIG", "LOCKR_DATA_DIR", "LOCKR_DATABASE_URL")


def print_json(value: Any) -> None:
    """A command's --json answer: one JSON document on stdout (messages stay on stderr)."""
    print(json.dumps(value, indent=1), flush=True)


def settings_from_args(args: argparse.Namespace) -> Settings:
    flags: dict[str, Any] = {
        "data_dir": getattr(args, "data_dir", None),
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "public_url": getattr(args, "public_url", None),
    }
    return load_settings(flags, config_file=config_file_of(args))


def config_file_of(args: argparse.Namespace) -> str | None:
    """--config; else, when neither a flag nor the environment names a store, the packaged default."""
    if getattr(args, "config", None):
        return str(args.config)
    if getattr(args, "data_dir", None) or any(os.environ.get(name) for name in _STORE_CHOOSERS):
        return None
    return str(DEFAULT_CONFIG_FILE) if DEFAULT_CONFIG_FILE.is_file() else None


def store_origin(settings: Settings) -> str:
    """Why this store: the flag, a config file, the environment, or the platform default."""
    source = settings.sources.get("data_dir", "default")
    if source == "flag":
        return "--data-dir"
    if source.startswith(("file ", "env ")):
        return source.replace("file ", "config ", 1).replace("env ", "", 1)
    return "the default data folder; choose another with --data-dir or --config"


def existing_store(args: argparse.Namespace) -> Settings:
    """The settings of a store that exists, said on stderr; refuses (creating nothing) when it does not.
    Only `serve` makes a new store: a mistyped --data-dir must not become an empty second one."""
    from lockr_local.server.models import sqlite_file

    settings = settings_from_args(args)
    database = sqlite_file(settings.database_url)
    if database is not None and not database.is_file():
        raise StoreUnusable(f"No lockr-local store in {settings.data_dir} (no {database.name}; from "
                            f"{store_origin(settings)}). Check the folder, pass --data-dir or --config "
                            f"(the packaged server's: {DEFAULT_CONFIG_FILE}), or make a store with "
                            "'lockr-local serve'.")
    print(f"lockr-local: store in {settings.data_dir} (from {store_origin(settings)})", file=sys.stderr)
    return settings


def listening_sockets(settings: Settings) -> list[Any]:
    """Binds the port before anything is created, so a port in use leaves nothing behind."""
    from tornado.netutil import bind_sockets

    try:
        return bind_sockets(settings.port, address=settings.host)
    except OSError as exc:
        where = f"{settings.host}:{settings.port}"
        if exc.errno == errno.EADDRINUSE:
            raise SystemExit(f"lockr-local: port {where} is in use (another lockr-local or another program); "
                             "stop it, or pick a free port with --port (0 picks one).") from exc
        raise SystemExit(f"lockr-local: cannot listen on {where}: {exc.strerror or exc}; "
                         "check --host and --port.") from exc


def exposure_warning(settings: Settings) -> str | None:
    """The warning `serve` prints when a non-loopback address meets open sign-up or guest uploads: then
    anyone who reaches the port can make an account or store files."""
    import ipaddress

    host = settings.host.strip().strip("[]")
    try:
        loopback = host.lower() == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False  # a host name: it may resolve to any interface
    if loopback or not (settings.signup or settings.guest_uploads):
        return None
    what = [name for name, on in (("sign-up", settings.signup), ("guest uploads", settings.guest_uploads)) if on]
    settings_off = [f"{name} = false" for name, on in (("signup", settings.signup),
                                                         ("guest_uploads", settings.guest_uploads)) if on]
    env_off = [f"LOCKR_{name.split(' ')[0].upper()}=false" for name in settings_off]
    return (f"lockr-local: warning: listening on {settings.host}, reachable from other machines, with "
            f"{' and '.join(what)} open: anyone who reaches this port can "
            f"{'create an account' if settings.signup else ''}{' and ' if len(what) == 2 else ''}"
            f"{'upload files' if settings.guest_uploads else ''}. To close {'them' if len(what) == 2 else 'it'}, "
            f"set {' and '.join(settings_off)} in the config file (or {' '.join(env_off)})"
            + ("; then add accounts with 'lockr-local user add'." if settings.signup else "."))


def leave_out_postgresql_driver(settings: Settings) -> None:
    """Keeps peewee from importing psycopg in a server on SQLite, which never uses it.

    peewee imports the PostgreSQL driver whenever it is installed (the `postgres` extra, and the test
    extras): about 10 MiB of a server's resident memory, a fifth of an idle server's. Marking it missing
    in sys.modules before peewee's first import makes that import fail as if it were not installed; a
    process that has imported peewee already is left as it is."""
    if is_postgresql(settings.database_url) or "peewee" in sys.modules:
        return
    for driver in ("psycopg", "psycopg2"):
        sys.modules.setdefault(driver, None)  # type: ignore[arg-type]


def serve(args: argparse.Namespace) -> int:
    """Runs the server until SIGINT or SIGTERM; prints the URL it listens on."""
    import asyncio

    settings = settings_from_args(args)
    leave_out_postgresql_driver(settings)

    from lockr_local.server.app import Server
    from lockr_local.server.datalock import DataDirLock
    from lockr_local.server.accesslog import configure_access_log
    from lockr_local.server.logsafe import configure_server_logging
    from lockr_local.server.private import make_private_dir

    configure_server_logging(settings.log_level, sys.stderr)
    configure_access_log(settings.access_log, settings.log_level, sys.stderr)
    warning = exposure_warning(settings)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    bound = listening_sockets(settings)
    make_private_dir(Path(settings.data_dir))
    lock = DataDirLock(Path(settings.data_dir)).acquire()
    try:
        server = Server(settings)
    except BaseException:
        for sock in bound:
            sock.close()
        lock.release()
        raise

    async def run() -> None:
        port = server.serve_on(bound)
        host = settings.host if ":" not in settings.host else f"[{settings.host}]"
        print(f"lockr-local: store in {settings.data_dir} (from {store_origin(settings)})", file=sys.stderr)
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
def local_store(args: argparse.Namespace, settings: Settings | None = None) -> Iterator[Any]:
    """The Service on an existing local store, for administration with or without a running server."""
    from lockr_local.server.blobstore import make_blob_store
    from lockr_local.server.models import open_database
    from lockr_local.server.private import make_private_dir
    from lockr_local.server.security import Signer, load_or_create_secret
    from lockr_local.server.service import Service

    settings = settings or existing_store(args)
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
        if args.json:
            print_json({"username": account.username, "email": account.email, "quota": account.quota,
                        "token": token})
        else:
            print(token)
    return ExitStatus.OK


def user_list(args: argparse.Namespace) -> int:
    with local_store(args) as service:
        accounts = service.list_accounts()
        if args.json:
            print_json([{"username": a.username, "email": a.email, "used": a.used_bytes, "quota": a.quota}
                        for a in accounts])
            return ExitStatus.OK
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
    """Prints a new token on stdout (one line); with --expires, says on stderr when it stops working."""
    import time

    from lockr_local.server.service import MAX_TOKEN_LIFETIME
    from lockr_local.server.wire import iso8601

    if args.expires is not None and args.expires > MAX_TOKEN_LIFETIME:
        print(f"lockr-local: --expires is at most {MAX_TOKEN_LIFETIME // 86400}d (ten years); leave it out for a "
              "token that lasts until revoked.", file=sys.stderr)
        return ExitStatus.USAGE
    with local_store(args) as service:
        account = service.account_by_username(args.name)
        now = time.time()
        token = service.create_token(account.id, args.label, args.expires, now)
    expires_at = iso8601(now + args.expires) if args.expires is not None else None
    if expires_at:
        print(f"This token works until {expires_at}; then it answers 401 token_expired.", file=sys.stderr)
    if args.json:
        print_json({"token": token, "name": args.label, "expiresAt": expires_at})
    else:
        print(token)
    return ExitStatus.OK


def token_list(args: argparse.Namespace) -> int:
    """An account's tokens by id, prefix and name, with when each was last used; never the secrets."""
    from lockr_local.server.wire import token_json

    with local_store(args) as service:
        account = service.account_by_username(args.name)
        tokens = [token_json(token) for token in service.list_tokens(account.id)]
    if args.json:
        print_json(tokens)
        return ExitStatus.OK
    rows = [("ID", "PREFIX", "NAME", "CREATED", "LAST USED", "EXPIRES", "STATE")]
    rows += [(str(t["id"]), t["prefix"], t["name"] or "-", t["createdAt"][:16].replace("T", " "),
              (t["lastUsedAt"] or "never")[:16].replace("T", " "), (t["expiresAt"] or "never")[:16].replace("T", " "),
              "revoked" if t["revoked"] else "expired" if t["expired"] else "active")
             for t in tokens]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    return ExitStatus.OK


def token_revoke(args: argparse.Namespace) -> int:
    """Revokes by id or prefix (what 'token list' shows), or by the token itself."""
    from lockr_local.server.models import ApiToken

    text = args.token.strip()
    with local_store(args) as service:
        if text.isdigit() or len(text) <= len("lkr_") + 6:
            match = ApiToken.id == int(text) if text.isdigit() else ApiToken.prefix == text
            rows = list(ApiToken.select(ApiToken.id).where(match & (ApiToken.revoked == False)))  # noqa: E712
            if len(rows) > 1:
                print(f"{len(rows)} tokens have the prefix {text}; revoke one by its id ('lockr-local token "
                      "list NAME' shows them). Nothing was revoked.", file=sys.stderr)
                return ExitStatus.ERROR
            revoked = bool(rows) and ApiToken.update(revoked=True).where(ApiToken.id == rows[0].id).execute() > 0
        else:
            revoked = service.revoke_token(text)
        if not revoked:
            print("No such active token; nothing was revoked ('lockr-local token list NAME' shows the ids).",
                  file=sys.stderr)
            return ExitStatus.ERROR
        print("Token revoked.", file=sys.stderr)
    return ExitStatus.OK


def fsck(args: argparse.Namespace) -> int:
    """Checks the store; with --repair (server stopped) removes leftovers and recomputes quotas."""
    from lockr_local.server.datalock import DataDirLock
    from lockr_local.server.fsck import check_store, private_roots

    settings = existing_store(args)
    lock = DataDirLock(Path(settings.data_dir)).acquire() if args.repair else None
    try:
        with local_store(args, settings) as service:
            from lockr_local.server.models import bound_database

            report = check_store(bound_database(), service.blobs, verify=args.verify, repair=args.repair,
                                 private=private_roots(settings))
    finally:
        if lock is not None:
            lock.release()
    if args.json:
        print_json(report.to_json())
    else:
        for line in report.lines():
            print(line)
    if not report.clean:
        print("Run 'lockr-local fsck --repair' with the server stopped to remove leftovers and recompute "
              "quotas; missing or corrupt files are listed above for you to restore.", file=sys.stderr)
    return ExitStatus.OK if report.clean else ExitStatus.ERROR
