"""The client commands: login, logout, upload, download, ls, rm (any lockr endpoint, via LockrClient)."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlsplit

from lockr_local.cli import ExitStatus
from lockr_local.credentials import ClientSettings, TokenStore, keyring_usable, resolve_endpoint, resolve_token
from lockr_local.errors import ConnectionFailed, Gone, KeyRequired, KeyringUnavailable, LockrError, NotFound, WrongKey
from lockr_local.transfer import DEFAULT_CHUNK_SIZE, ProgressCallback, RetryPolicy, chunk_size_checked
from lockr_local.units import format_size

if TYPE_CHECKING:  # requests and friends load only when a client command runs, keeping `serve` quick
    from lockr_local.client import LockrClient, RemoteFile
    from lockr_local.upload_state import UploadState

Options = Callable[[argparse.ArgumentParser], None]


def add_commands(subparsers: argparse._SubParsersAction, endpoint_options: Options) -> None:
    def client_options(parser: argparse.ArgumentParser) -> None:
        endpoint_options(parser)
        parser.add_argument("-v", "--verbose", action="store_true",
                            help="log each request (method, URL, status, time) and each retry on stderr")
        parser.add_argument("--token-stdin", action="store_true",
                            help="read the API token from standard input (keeps it out of ps and shell history)")

    login = subparsers.add_parser(
        "login", help="log in to a lockr endpoint and keep the token in the OS keyring",
        description="Exchange username-or-email and password for an API token (POST /api/v1/login) and keep "
                    "it in the OS keyring; the endpoint becomes the default for the other client commands. "
                    "With --token, an existing token is checked and stored instead.")
    client_options(login)
    login.add_argument("--identifier", metavar="ID", help="username or email (asked for when absent)")
    login.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    login.add_argument("--insecure-file-store", action="store_true",
                       help="keep the token in a file readable only by you (0600) when no OS keyring is usable")
    login.set_defaults(handler=login_cmd)

    logout = subparsers.add_parser("logout", help="revoke the stored token on the server and forget it",
                                   description="Revoke the token stored for an endpoint on the server "
                                               "(DELETE /api/v1/tokens/ID), then forget it here.")
    client_options(logout)
    logout.set_defaults(handler=logout_cmd)

    upload = subparsers.add_parser(
        "upload", help="upload files and print their share links",
        description="Upload files with a progress bar and print each file's share link. Small files (below "
                    "the setting small_file_max, 8MiB, and below one chunk) go in one request with an "
                    "Idempotency-Key, so a retry after a lost answer stores one file. Larger files go "
                    "through a resumable session: run the same command again after an interruption and "
                    "it continues where the server says it stopped.")
    client_options(upload)
    upload.add_argument("files", nargs="+", metavar="FILE")
    upload.add_argument("--region", metavar="R", help="storage region (default: the account's)")
    upload.add_argument("--key", metavar="PHRASE",
                        help="protect downloads with a key phrase (only its SHA-256 is sent)")
    upload.add_argument("--guest", action="store_true", help="upload without logging in (guest limits apply)")
    upload.add_argument("--chunk-size", metavar="SIZE", type=chunk_size_arg, default=DEFAULT_CHUNK_SIZE,
                        help="bytes per request of a resumable upload, a multiple of 256K such as 256K, 8M "
                             "(default 8M); smaller chunks re-send less after an interruption")
    upload.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    upload.add_argument("--json", action="store_true",
                        help="print the uploaded files as a JSON array (ls --json's fields, plus shareUrl and "
                             "a guest's claimToken)")
    upload.set_defaults(handler=upload_cmd)

    download = subparsers.add_parser(
        "download", help="download a file by id or link, resuming a partial download",
        description="Download a file by id (one of yours) or by its download link, with a progress bar. "
                    "An interrupted download resumes from FILE.part; the bytes are checked against sha256.")
    client_options(download)
    download.add_argument("target", metavar="ID_OR_URL")
    download.add_argument("-o", "--output", metavar="PATH", default=".", help="file or folder (default: .)")
    download.add_argument("--key", metavar="PHRASE", help="the key phrase of a protected file")
    download.add_argument("--no-resume", action="store_true", help="start over instead of resuming FILE.part")
    download.add_argument("--force", action="store_true", help="replace an existing file")
    download.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    download.add_argument("--json", action="store_true",
                          help="print what was saved as JSON: path, name, size, sha256, resumedFrom, id")
    download.set_defaults(handler=download_cmd)

    listing = subparsers.add_parser("ls", help="list your files", description="List the files of your account.")
    client_options(listing)
    listing.add_argument("--json", action="store_true", help="print the file objects as a JSON array")
    listing.set_defaults(handler=ls_cmd)

    remove = subparsers.add_parser("rm", help="delete files (into the server's trash)",
                                   description="Delete files of your account by id, or by name when one file has it. "
                                               "On lockr-local they go to the trash: 'lockr-local trash' lists and "
                                               "restores them.")
    client_options(remove)
    remove.add_argument("ids", nargs="+", metavar="ID_OR_NAME")
    remove.add_argument("--json", action="store_true",
                        help="print the deleted files as a JSON array of {target, id}, even when another failed")
    remove.set_defaults(handler=rm_cmd)

    register = subparsers.add_parser(
        "register", help="add a guest upload to your account",
        description="Add a file uploaded without an account (upload --guest, the /upload page) to your "
                    "account, with the claim code its upload printed; the share link alone is not enough.")
    client_options(register)
    register.add_argument("target", metavar="ID_OR_LINK", help="the file id or its share link")
    register.add_argument("--claim", metavar="CODE", required=True, help="the claim code the upload gave")
    register.add_argument("--json", action="store_true",
                          help="print the file as JSON (ls --json's fields plus shareUrl)")
    register.set_defaults(handler=register_cmd)

    from lockr_local.commands import share_cmds, trash_cmds

    share_cmds.add_commands(subparsers, client_options)
    trash_cmds.add_commands(subparsers, client_options)
    for name in ("whoami", "share", "key"):
        subparsers.choices[name].set_defaults(handler=reporting(subparsers.choices[name].get_default("handler")))


# -- shared --------------------------------------------------------------------------------------

class CommandFailed(Exception):
    """A message for the user plus the exit status; raised where the next step is known."""

    def __init__(self, message: str, status: ExitStatus = ExitStatus.ERROR) -> None:
        super().__init__(message)
        self.status = status


def reporting(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except CommandFailed as exc:
            say(f"lockr-local: {exc}")
            return exc.status
    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    return run


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class BatchStopped(Exception):
    """Ends a command's loop over items early, with the exit status it ends with (see item_failed)."""

    def __init__(self, status: ExitStatus) -> None:
        super().__init__(status)
        self.status = status


def item_failed(item: str, exc: LockrError) -> ExitStatus:
    """Reports why one item of a loop over items (upload's files, rm's targets) failed, and returns the exit
    status the command ends with when the loop goes on to the next item. Raises BatchStopped instead when
    the next items would meet the same: no connection to the server (said without the item, it is not
    about it) or credentials the server refused (401)."""
    if isinstance(exc, ConnectionFailed):
        say(f"lockr-local: {exc.message}")
        raise BatchStopped(ExitStatus.ERROR) from exc
    say(f"lockr-local: {item}: {exc.message}")
    if exc.status == 401:
        raise BatchStopped(ExitStatus.AUTH) from exc
    return ExitStatus.ERROR


def chunk_size_arg(text: str) -> int:
    """'8M', '256K', '1048576': binary units, and a multiple of 256 KiB as GCS requires."""
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    value = text.strip().upper().removesuffix("IB").removesuffix("B")
    factor = units.get(value[-1:], 1)
    number = value[:-1] if value[-1:] in units else value
    try:
        size = int(number) * factor
        return chunk_size_checked(size)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: use a multiple of 256K, such as 256K, 1M or 8M") from exc


# The server's own web pages: an endpoint pasted from the browser's address bar ends in one of them.
_PAGE_PATHS = ("/files", "/account", "/upload", "/download/", "/account/login", "/account/signup", "/dav/")


def endpoint_of(args: argparse.Namespace, fallback_url: str | None = None) -> str:
    if args.endpoint:
        args.endpoint = endpoint_from_page_url(args.endpoint)
    endpoint = resolve_endpoint(args.endpoint)
    if endpoint is None and fallback_url and "://" in fallback_url:
        parts = urlsplit(fallback_url)
        endpoint = f"{parts.scheme}://{parts.netloc}"
    if endpoint is None:
        raise CommandFailed("No endpoint: run 'lockr-local login --endpoint URL', or pass --endpoint URL, "
                            "or set LOCKR_ENDPOINT.", ExitStatus.USAGE)
    return endpoint


def endpoint_from_page_url(url: str) -> str:
    """A web page's URL (http://host/files, .../download/ID) stands for its server: say so and use that."""
    parts = urlsplit(url.strip())
    path = parts.path.rstrip("/")
    for page in _PAGE_PATHS:
        cut = path.find(page.rstrip("/"))
        rest = path[cut:]
        if parts.scheme and cut >= 0 and (rest == page.rstrip("/") or (page.endswith("/") and rest.startswith(page))):
            endpoint = parts._replace(path=path[:cut], query="", fragment="").geturl()
            say(f"lockr-local: {url} is a web page of the server; using its endpoint {endpoint}")
            return endpoint
    return url


def token_from_stdin(args: argparse.Namespace) -> None:
    if getattr(args, "token_stdin", False):
        token = sys.stdin.readline().strip()
        if not token:
            raise CommandFailed("--token-stdin: standard input held no token.", ExitStatus.USAGE)
        args.token = token


def client_for(args: argparse.Namespace, *, need_token: bool = True, fallback_url: str | None = None,
               guest_hint: str = "") -> LockrClient:
    from lockr_local.client import LockrClient

    token_from_stdin(args)
    endpoint = endpoint_of(args, fallback_url)
    token = resolve_token(args.token, endpoint)
    if token is None and need_token:
        hint = "" if keyring_usable() else (" (no OS keyring here: set LOCKR_TOKEN, "
                                            "or log in with --insecure-file-store)")
        raise CommandFailed(f"Not logged in to {endpoint}: run 'lockr-local login --endpoint {endpoint}', "
                            f"or set LOCKR_TOKEN{hint}{guest_hint}.", ExitStatus.AUTH)
    return LockrClient(endpoint, token, retry=cli_retry_policy(args))


def cli_retry_policy(args: argparse.Namespace) -> RetryPolicy:
    """A person is waiting: fail at once on what retrying cannot clear, and say each retry as it starts.
    With -v, every request is logged too (lockr_local.client's `lockr.client` logger)."""
    if getattr(args, "verbose", False):
        import logging

        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("lockr-local: %(message)s"))
        logger = logging.getLogger("lockr.client")
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
    return RetryPolicy(fail_fast=True, on_retry=None if getattr(args, "verbose", False) else
                       (lambda message: say(f"lockr-local: {message}")))


class ProgressBar:
    """A tqdm bar (bytes, rate, ETA) fed by absolute positions; created at the first report."""

    def __init__(self, label: str, quiet: bool) -> None:
        self.label = label
        self.quiet = quiet
        self.bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            # disable=None: a bar on a terminal, nothing when stderr is a pipe or a log file.
            self.bar = tqdm(total=total, initial=done, unit="B", unit_scale=True, unit_divisor=1024,
                            desc=self.label, file=sys.stderr, disable=True if self.quiet else None,
                            dynamic_ncols=True, leave=True)
            return
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# -- login / logout ------------------------------------------------------------------------------

@reporting
def login_cmd(args: argparse.Namespace) -> int:
    endpoint = endpoint_of(args)
    settings = ClientSettings.load()
    store = TokenStore(settings)
    if not args.insecure_file_store and not keyring_usable():
        # Said before any password is typed or any token issued.
        raise KeyringUnavailable()
    from lockr_local.client import LockrClient

    token_from_stdin(args)
    with LockrClient(endpoint, retry=cli_retry_policy(args)) as client:
        if args.token:
            client.token = args.token
            username = client.account().username
            token = args.token
        else:
            identifier = args.identifier or _ask("Username or email: ")
            password = _read_password(args.password_stdin)
            token = client.login(identifier, password)
            username = identifier
    where = store.set(endpoint, token, insecure_file=args.insecure_file_store)
    settings.endpoint = endpoint
    settings.save()
    say(f"Logged in to {endpoint} as {username}; the token is kept in {where}.")
    return ExitStatus.OK


def _ask(prompt: str) -> str:
    print(prompt, end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline().strip()
    if not answer:
        raise CommandFailed("No identifier given: pass --identifier USERNAME_OR_EMAIL.", ExitStatus.USAGE)
    return answer


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
    if not password:
        raise CommandFailed("No password given.", ExitStatus.USAGE)
    return password


@reporting
def logout_cmd(args: argparse.Namespace) -> int:
    endpoint = endpoint_of(args)
    store = TokenStore()
    token = store.get(endpoint)
    revoked = ""
    if token:
        revoked = revoke_on_server(args, endpoint, token)
    if store.delete(endpoint):
        say(f"Logged out of {endpoint}: {revoked}its token was removed from this machine.")
    else:
        say(f"No token was stored for {endpoint}.")
    return ExitStatus.OK


def revoke_on_server(args: argparse.Namespace, endpoint: str, token: str) -> str:
    """Revokes the token where it works (found by its prefix among the account's tokens); says why not."""
    from lockr_local.client import LockrClient

    try:
        with LockrClient(endpoint, token, retry=cli_retry_policy(args)) as client:
            mine = [t for t in client.tokens() if t.get("prefix") == token[:10] and not t.get("revoked")]
            if len(mine) == 1:
                client.revoke_token_id(int(mine[0]["id"]))
                return "the server revoked the token, and "
    except LockrError as exc:
        if exc.status == 401:
            return "the token no longer worked on the server, and "
        say(f"lockr-local: could not revoke the token on the server ({exc.message}); revoke it on the "
            f"account page ({endpoint}/account) or with 'lockr-local token revoke {token[:10]}' there.")
    return ""


# -- upload --------------------------------------------------------------------------------------

@reporting
def upload_cmd(args: argparse.Namespace) -> int:
    from lockr_local.config import load_settings

    client = client_for(args, need_token=not args.guest, guest_hint="; or pass --guest to upload as a guest")
    client.chunk_size = args.chunk_size
    client.small_file_max = load_settings().small_file_max
    if args.guest:
        client.token = None
    uploaded: list[dict[str, Any]] = []
    try:
        with client:
            status = _upload_all(client, args, uploaded)
    except BatchStopped as stopped:
        status = stopped.status
    finally:
        # One JSON document for what did upload, even when a later file failed or the user interrupted.
        if args.json:
            print(json.dumps(uploaded, indent=1), flush=True)
    return status


def _upload_all(client: LockrClient, args: argparse.Namespace, uploaded: list[dict[str, Any]]) -> int:
    status = ExitStatus.OK
    for name in args.files:
        path = Path(name)
        if path.is_dir():
            say(f"lockr-local: {name} is a folder; upload its files, or keep it in step with "
                f"'lockr-local sync {name}'")
            status = ExitStatus.ERROR
            continue
        if not path.is_file():
            say(f"lockr-local: {name}: no such file")
            status = ExitStatus.ERROR
            continue
        try:
            info = upload_one(client, path, args)
        except KeyboardInterrupt:
            if not client.sends_in_one_request(path.stat().st_size):
                say(f"Interrupted: run the same command again to resume {path.name}.")
            raise
        except LockrError as exc:
            status = item_failed(name, exc)
            continue
        say(f"Uploaded {path.name} ({format_size(info.size)}).")
        if info.claim_token:
            # Shown once: the share link lets people download, only this code lets you keep the file.
            say(f"To add it to an account later: lockr-local register {info.id} --claim {info.claim_token}")
        if args.json:
            uploaded.append({**file_json(info), "shareUrl": info.share_url,
                             **({"claimToken": info.claim_token} if info.claim_token else {})})
        else:
            print(info.share_url, flush=True)
    return status


def upload_one(client: LockrClient, path: Path, args: argparse.Namespace) -> RemoteFile:
    """Direct for small files (with an Idempotency-Key: client.sends_in_one_request); for large ones a session
    remembered in the state file until it completes."""
    from lockr_local.upload_state import UploadState

    size = path.stat().st_size
    bar = ProgressBar(path.name, args.quiet)
    try:
        if client.sends_in_one_request(size):
            return client.upload(path, region=args.region, key_phrase=args.key, progress=bar, resumable=False)
        state = UploadState()
        key = state.key_for(client.endpoint, path)
        info = resume_pending(client, state, key, path, size, bar)
        if info is None:
            info = client.upload(path, region=args.region, key_phrase=args.key, progress=bar,
                                 on_session=lambda session: state.put(key, session.upload_url, path, size,
                                                                      session.claim_token))
        state.remove(key)
        return info
    finally:
        bar.close()


def resume_pending(client: LockrClient, state: UploadState, key: str, path: Path, size: int,
                   progress: ProgressCallback) -> RemoteFile | None:
    from lockr_local.client import RemoteFile, with_claim

    pending = state.get(key)
    if pending is None:
        return None
    try:
        status = client.upload_status(pending.session_url, size)
        if isinstance(status, RemoteFile):
            say(f"{path.name} had already finished uploading.")
            return with_claim(status, pending.claim_token)
        percent = 100.0 * status / size if size else 100.0
        say(f"Resuming {path.name} at byte {status} of {size} ({percent:.0f}% already on the server).")
        return client.resume_upload(pending.session_url, path, progress=progress, claim_token=pending.claim_token)
    except (NotFound, Gone):
        say(f"The earlier upload session of {path.name} has expired; starting over.")
        state.remove(key)
        return None


# -- download ------------------------------------------------------------------------------------

@reporting
def download_cmd(args: argparse.Namespace) -> int:
    client = client_for(args, need_token=False, fallback_url=args.target)
    bar = ProgressBar("download", args.quiet)
    with client:
        try:
            result = client.download(args.target, args.output, resume=not args.no_resume, key_phrase=args.key,
                                     progress=bar, overwrite=args.force)
        except FileExistsError as exc:
            raise CommandFailed(f"{exc}: pass --force to replace it, or -o PATH.") from exc
        except (KeyRequired, WrongKey) as exc:
            hint = "pass its key phrase with --key PHRASE" if isinstance(exc, KeyRequired) else \
                "that --key is not this file's key phrase; check it"
            raise CommandFailed(f"{args.target} is protected by a key: {hint}.") from exc
        except KeyboardInterrupt:
            say("Interrupted: run the same command again to resume the download.")
            raise
        finally:
            bar.close()
    resumed = f", resumed at byte {result.resumed_from}" if result.resumed_from else ""
    say(f"Saved {result.path} ({format_size(result.size)}, sha256 verified{resumed}).")
    if args.json:
        from lockr_local.client import file_id_of

        print(json.dumps({"path": str(result.path.resolve()), "name": result.path.name, "size": result.size,
                          "sha256": result.sha256, "resumedFrom": result.resumed_from,
                          "id": file_id_of(args.target)}, indent=1), flush=True)
    else:
        print(result.path, flush=True)
    return ExitStatus.OK


# -- ls / rm -------------------------------------------------------------------------------------

@reporting
def ls_cmd(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        files = client.list_files()
    if args.json:
        print(json.dumps([file_json(f) for f in files], indent=1))
        return ExitStatus.OK
    rows = [("ID", "SIZE", "NAME", "KEY", "DATE")]
    rows += [(f.id, format_size(f.size), f.name, "yes" if f.has_key else "-", f.created_at.replace("T", " ")[:16])
             for f in files]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) if i != 1 else cell.rjust(widths[i])
                        for i, cell in enumerate(row)).rstrip())
    return ExitStatus.OK


def file_json(info: RemoteFile) -> dict[str, Any]:
    """The API's own field names, so `ls --json` matches GET /api/v1/files."""
    return {"id": info.id, "name": info.name, "size": info.size, "type": info.type, "region": info.region,
            "sha256": info.sha256, "hasKey": info.has_key, "createdAt": info.created_at,
            "downloadUrl": info.download_url, "pageUrl": info.page_url}


@reporting
def register_cmd(args: argparse.Namespace) -> int:
    from lockr_local.client import file_id_of

    file_id = file_id_of(args.target)
    if file_id is None:
        raise CommandFailed(f"{args.target!r} is neither a file id nor a lockr share link.")
    with client_for(args) as client:
        info = client.register(file_id, args.claim)
    say(f"Added {info.name} ({format_size(info.size)}) to your files.")
    if args.json:
        print(json.dumps({**file_json(info), "shareUrl": info.share_url}, indent=1), flush=True)
    else:
        print(info.share_url, flush=True)
    return ExitStatus.OK


@reporting
def rm_cmd(args: argparse.Namespace) -> int:
    deleted: list[dict[str, str]] = []
    try:
        with client_for(args) as client:
            return _rm_all(client, args, deleted)
    except BatchStopped as stopped:
        return stopped.status
    finally:
        # One JSON document for what was deleted, even when a later target failed.
        if args.json:
            print(json.dumps(deleted, indent=1), flush=True)


def _rm_all(client: LockrClient, args: argparse.Namespace, deleted: list[dict[str, str]]) -> int:
    from lockr_local.client import file_id_of

    status = ExitStatus.OK
    for target in args.ids:
        file_id = target
        try:
            file_id = file_id_of(target) or file_by_name(client, target).id
            client.delete(file_id)
        except LockrError as exc:
            status = item_failed(file_id, exc)
            continue
        say(f"Deleted {target}" + (f" ({file_id})." if file_id != target else "."))
        deleted.append({"target": target, "id": file_id})
    return status


def file_by_id_or_name(client: LockrClient, target: str) -> RemoteFile:
    """One of your files by id, share link, or name (refused when several files have that name)."""
    from lockr_local.client import file_id_of

    file_id = file_id_of(target)
    if file_id is not None:
        try:
            return client.file(file_id)
        except NotFound:
            pass
    return file_by_name(client, target)


def file_by_name(client: LockrClient, target: str) -> RemoteFile:
    named = [f for f in client.iter_files() if f.name == target]
    if len(named) == 1:
        return named[0]
    if named:
        ids = ", ".join(f.id for f in named)
        raise NotFound(f"{len(named)} of your files are named {target!r} ({ids}); name one by its id.")
    raise NotFound(f"No file of yours has the id or name {target!r}; 'lockr-local ls' lists them.")
