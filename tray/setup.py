"""The local setup and control page: first-run setup, Settings, and every tray action as a button.

Served by Tornado on 127.0.0.1, a random port, in its own thread ("lockr-tray-web"). The URL the app
opens carries a one-time token: the first request with it gets a session cookie (HttpOnly,
SameSite=Strict) and the token is spent; every later request needs that cookie, posts need Tornado's
XSRF field too, and requests for any other Host are refused (no DNS-rebinding access). The password
typed here is exchanged for a token (`POST /api/v1/login` via `LockrClient`) and then forgotten:
only the token is stored, in the OS keyring (`lockr_local.credentials`).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import secrets
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import tornado.httpserver
import tornado.ioloop
import tornado.netutil
import tornado.web

from lockr_local.errors import (
    BadRequest, ConnectionFailed, LockrError, MethodNotAllowed, NotFound, RateLimited, Unauthorized,
)
from lockr_local.sync.status import SyncStatus
from lockr_local.tray.autostart import AutostartError, set_autostart
from lockr_local.tray.config import TrayConfig
from lockr_local.tray.model import Action, IconState, TrayModel, TrayView
from lockr_local.web import SharedLoader, assets_route, shared_static_url

log = logging.getLogger("lockr.tray.setup")
SESSION_COOKIE = "lockr_tray_session"


@dataclass(frozen=True)
class SetupForm:
    endpoint: str
    identifier: str
    password: str
    folder: str
    autostart: bool
    file_store: bool
    # As typed: "" = the default (the folder's own name), "/" = the top level.
    remote_folder: str = ""


@dataclass(frozen=True)
class SetupDone:
    """A setup that stands; `autostart_problem` says (with the next step) why the login entry is not as asked."""

    config: TrayConfig
    token_place: str
    autostart_problem: str = ""


class Controller(Protocol):
    """What the page needs from the app (TrayApp implements it)."""

    def current(self) -> tuple[TrayConfig, SyncStatus, TrayView]: ...

    def keyring_usable(self) -> bool: ...

    def apply_setup(self, form: SetupForm) -> SetupDone: ...

    def perform(self, action: Action, argument: str = "") -> None: ...


class SetupError(BadRequest):
    """A setup that cannot go on, with the form field it is about ("" for the form as a whole): the page
    shows the message under that field, with the next step in it."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Field:
    """One text field of the setup form: what it asks, how the browser should fill it, and a hint."""

    name: str
    label: str
    type: str
    autocomplete: str
    hint: str = ""
    placeholder: str = ""
    required: bool = True

    def described_by(self, error_field: str) -> str:
        """The ids a screen reader reads after the label: the error when it is about this field, the hint."""
        return " ".join((["error"] if error_field == self.name else []) + ([f"{self.name}-hint"] if self.hint else []))


def check_folder(folder: Path) -> None:
    """Refuses, before anything is stored, a folder that cannot be created or written to; changes nothing."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    next_step = f"Choose a folder you can write to, such as {Path.home() / 'lockr'}."
    if not existing.is_dir():
        place = "it is a file" if existing == folder else f"{existing} is a file, not a folder"
        raise SetupError(f"Cannot use {folder}: {place}. {next_step}", "folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        place = "it" if existing == folder else str(existing)
        raise SetupError(f"Cannot use {folder}: you may not write in {place}. {next_step}", "folder")


def _sign_in_problem(exc: LockrError, endpoint: str) -> SetupError:
    """What a failed sign-in means at the form: which field to look at, and what to do next."""
    if isinstance(exc, ConnectionFailed):
        reason = exc.message.split(";", 1)[0].rstrip(".")  # the CLI's own next step names --endpoint
        return SetupError(f"{reason}. Check the server address (the one you open lockr's web page at) and that "
                          "the server is running, then save again.", "endpoint")
    if isinstance(exc, Unauthorized):
        return SetupError(f"{exc.message} Check both and try again (the password is case-sensitive); if you "
                          "forgot it, the server's administrator can set a new one.", "password")
    if isinstance(exc, RateLimited):
        return SetupError(exc.message, "password")
    if isinstance(exc, (NotFound, MethodNotAllowed)):
        return SetupError(f"{endpoint} answered, but not as a lockr server. Check the server address (the one you "
                          "open lockr's web page at).", "endpoint")
    return SetupError(exc.message)


def complete_setup(form: SetupForm, previous: TrayConfig) -> SetupDone:
    """Checks the form, signs in, stores the token and sets the login entry; returns what was done.

    Blocking (network, keyring): the page calls it on an executor thread. Raises SetupError with a
    message for the person at the form, naming the field it is about. Nothing is stored until every
    field checked out and the server accepted the sign-in. A login entry that cannot be set does not
    undo the rest: it comes back as `autostart_problem`, and tray.json records the entry as it really is.
    """
    from lockr_local.client import LockrClient
    from lockr_local.credentials import ClientSettings, TokenStore, normalize_endpoint, resolve_token
    from lockr_local.transfer import RetryPolicy

    try:
        endpoint = normalize_endpoint(form.endpoint)
    except BadRequest:
        raise SetupError(f"The server address must be a URL starting with https:// or http://, such as "
                         f"https://lockr.example.org (not {form.endpoint.strip()!r}).", "endpoint") from None
    if not form.folder.strip():
        raise SetupError("Choose the folder to keep in sync.", "folder")
    folder = Path(form.folder.strip()).expanduser()
    if not folder.is_absolute():
        raise SetupError(f"Give the folder as a full path (such as {Path.home() / 'lockr'}), not {form.folder!r}.",
                         "folder")
    check_folder(folder)
    from lockr_local.sync.folders import clean_remote_folder

    try:
        remote_folder = clean_remote_folder(form.remote_folder) if form.remote_folder.strip() else None
    except LockrError as exc:
        raise SetupError(exc.message, "remote_folder") from None
    settings = ClientSettings.load()
    store = TokenStore(settings)
    where = "the existing token"
    if form.password:
        if not form.identifier.strip():
            raise SetupError("Enter your username or email address.", "identifier")
        if not form.file_store and not store.uses_file(endpoint):
            from lockr_local.credentials import keyring_usable

            if not keyring_usable():
                raise SetupError(
                    "This computer has no usable keyring to keep your token in. Tick \"keep the token in a "
                    "private file\" below (a file only you can read, 0600), or start lockr-local with the "
                    "LOCKR_TOKEN environment variable set to a token.", "file_store")
        try:
            with LockrClient(endpoint, retry=RetryPolicy(attempts=2, base_delay=0.2, max_delay=1.0)) as client:
                token = client.login(form.identifier.strip(), form.password)
        except LockrError as exc:
            raise _sign_in_problem(exc, endpoint) from exc
        where = store.set(endpoint, token, insecure_file=form.file_store)
    elif not resolve_token(None, endpoint, store=store):
        raise SetupError("Enter your password to sign in to this server.", "password")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SetupError(f"Cannot create the folder {folder}: {exc.strerror or exc}. Choose a folder you can "
                         f"write to, such as {Path.home() / 'lockr'}.", "folder") from exc
    autostart, problem = form.autostart, ""
    try:
        set_autostart(form.autostart)
    except AutostartError as exc:
        log.warning("cannot change the autostart entry: %s", exc)
        autostart, problem = not form.autostart, str(exc)  # neither written nor removed: still as before
    config = TrayConfig(endpoint=endpoint, folder=str(folder), identifier=form.identifier.strip() or previous.identifier,
                        autostart=autostart, remote_folder=remote_folder)
    config.save()
    settings = ClientSettings.load()
    settings.endpoint = endpoint  # `lockr-local upload/ls` then talk to the same server
    settings.save()
    return SetupDone(config, where, problem)


TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"
# Like the server's pages: own scripts and styles only, no framing, forms posted only here.
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'")


def setup_fields(keyring_ok: bool, configured: bool) -> list[Field]:
    password_hint = (f"Exchanged once for a token, kept in {'your system keyring' if keyring_ok else 'the place you choose below'}; "
                     "the password itself is never stored.")
    if configured:
        password_hint += " Leave it empty to keep the current sign-in."
    return [
        Field("endpoint", "Server address", "url", "url", "The address you open lockr's web page at.",
              "https://lockr.example.org"),
        Field("identifier", "Username or email", "text", "username", required=not configured),
        Field("password", "Password", "password", "current-password", password_hint, required=not configured),
        Field("folder", "Folder to keep in sync", "text", "off", "A full path; created if it does not exist."),
        Field("remote_folder", "Remote folder", "text", "off",
              "Where its files go on the server. Empty: a folder named like this one; / : the top level.",
              "the folder's name", required=False),
    ]


# The control page's headline above the tooltip's sentence, one per icon colour.
HEADLINES = {IconState.IN_SYNC: "In sync", IconState.SYNCING: "Syncing", IconState.PAUSED: "Paused",
             IconState.OFFLINE: "Offline", IconState.ERROR: "Needs attention", IconState.NOT_SET_UP: "Not set up"}


class _Handler(tornado.web.RequestHandler):
    def initialize(self, page: "ControlServer") -> None:
        self.page = page

    def set_default_headers(self) -> None:
        self.set_header("Content-Security-Policy", PAGE_CSP)
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Cache-Control", "no-store")

    def prepare(self) -> None:
        if self.request.host not in self.page.allowed_hosts:
            raise tornado.web.HTTPError(403)
        token = self.get_query_argument("t", "")
        if token and self.page.spend_token(token):
            self.set_cookie(SESSION_COOKIE, self.page.session, httponly=True, samesite="Strict")
            # Drop the token from the address bar so a reload or a shared screenshot does not show it.
            self.redirect(self.request.path, status=303)
            return
        if not hmac.compare_digest(self.get_cookie(SESSION_COOKIE, "") or "", self.page.session):
            self.set_status(403)
            self.finish("This page needs the link lockr-local opened; use Settings in the tray menu.")

    def get_template_namespace(self) -> dict[str, Any]:
        namespace = super().get_template_namespace()
        namespace.update(shared_static_url=shared_static_url)
        return namespace

    def render_page(self, page: str, *, error: str = "", field: str = "", note: str = "", status_code: int = 200,
                    values: dict[str, str] | None = None) -> None:
        config, status, view = self.page.controller.current()
        keyring_ok = self.page.controller.keyring_usable()
        actions = [e for e in view.menu if e.action not in (Action.NONE, Action.COPY_LINK, Action.SETTINGS)]
        shown = {"endpoint": config.endpoint, "identifier": config.identifier, "password": "",
                 "folder": config.folder or str(Path.home() / "lockr"),
                 "remote_folder": "/" if config.remote_folder == "" else (config.remote_folder or ""),
                 "autostart": "1" if config.autostart else "",
                 "file_store": ""}
        shown.update(values or {})
        self.set_status(status_code)
        self.render(f"{page}.html", page=page, error=error, field=field, note=note, config=config, status=status,
                    view=view, actions=actions, keyring_ok=keyring_ok, values=shown,
                    fields=setup_fields(keyring_ok, config.configured), headline=HEADLINES[view.icon],
                    progress=TrayModel.progress(status))


class ControlHandler(_Handler):
    def get(self) -> None:
        config, _, _ = self.page.controller.current()
        if not config.configured:
            self.redirect("/settings", status=303)
            return
        self.render_page("control", note=self.get_query_argument("note", ""), error=self.get_query_argument("error", ""))


class SettingsHandler(_Handler):
    def get(self) -> None:
        self.render_page("settings")

    async def post(self) -> None:
        form = SetupForm(endpoint=self.get_body_argument("endpoint", ""),
                         identifier=self.get_body_argument("identifier", ""),
                         password=self.get_body_argument("password", ""),
                         folder=self.get_body_argument("folder", ""),
                         autostart=bool(self.get_body_argument("autostart", "")),
                         file_store=bool(self.get_body_argument("file_store", "")),
                         remote_folder=self.get_body_argument("remote_folder", ""))
        loop = asyncio.get_running_loop()
        try:
            done = await loop.run_in_executor(None, self.page.controller.apply_setup, form)
        except LockrError as exc:
            typed = {"endpoint": form.endpoint, "identifier": form.identifier, "folder": form.folder,
                     "remote_folder": form.remote_folder,
                     "autostart": "1" if form.autostart else "", "file_store": "1" if form.file_store else ""}
            self.render_page("settings", error=exc.message, field=getattr(exc, "field", ""), status_code=400,
                             values=typed)
            return
        outcome = {"note": f"Saved. Your token is kept in {done.token_place}; syncing has started."}
        if done.autostart_problem:
            outcome["error"] = done.autostart_problem  # on the status page, outside the parts that refresh
        self.redirect("/?" + _query(**outcome), status=303)


class ActionHandler(_Handler):
    def post(self) -> None:
        name = self.get_body_argument("action", "")
        try:
            action = Action(name)
        except ValueError:
            raise tornado.web.HTTPError(400, f"unknown action {name!r}") from None
        if action is Action.SETTINGS:
            self.redirect("/settings", status=303)
            return
        self.page.controller.perform(action, self.get_body_argument("argument", ""))
        note = {Action.COPY_LINK: "Link copied to the clipboard.", Action.QUIT: "lockr-local is stopping."}.get(action, "")
        self.redirect("/?" + _query(note=note) if note else "/", status=303)


def _query(**params: str) -> str:
    from urllib.parse import urlencode

    return urlencode(params)


class ControlServer:
    """The page's HTTP server on its own IOLoop thread; `open_url()` mints the one-time link."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.session = secrets.token_urlsafe(32)
        self._tokens: set[str] = set()
        self._tokens_lock = threading.Lock()
        self._loop: tornado.ioloop.IOLoop | None = None
        self._started = threading.Event()
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
        self._sockets = sockets
        self.port = sockets[0].getsockname()[1]
        self.allowed_hosts = {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}
        self._thread = threading.Thread(target=self._run, name="lockr-tray-web", daemon=True)

    def start(self) -> "ControlServer":
        self._thread.start()
        self._started.wait(10)
        return self

    def open_url(self, path: str = "/") -> str:
        """A fresh one-time link to `path`: valid for one visit, which then holds the session cookie."""
        token = secrets.token_urlsafe(24)
        with self._tokens_lock:
            self._tokens.add(token)
        return f"http://127.0.0.1:{self.port}{path}?t={token}"

    def spend_token(self, token: str) -> bool:
        with self._tokens_lock:
            for known in list(self._tokens):
                if hmac.compare_digest(known, token):
                    self._tokens.discard(known)
                    return True
        return False

    def _run(self) -> None:
        async def main() -> None:
            deps: dict[str, Any] = {"page": self}
            app = tornado.web.Application(
                [(r"/", ControlHandler, deps), (r"/settings", SettingsHandler, deps), (r"/action", ActionHandler, deps),
                 assets_route()],
                xsrf_cookies=True, cookie_secret=secrets.token_hex(32), template_loader=SharedLoader(str(TEMPLATES)),
                static_path=str(STATIC))
            server = tornado.httpserver.HTTPServer(app)
            server.add_sockets(self._sockets)
            self._loop = tornado.ioloop.IOLoop.current()
            self._started.set()
            self._stopped = asyncio.Event()
            await self._stopped.wait()
            server.stop()

        asyncio.run(main())

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and hasattr(self, "_stopped"):
            loop.add_callback(self._stopped.set)
        self._thread.join(5)
