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
import secrets
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import tornado.httpserver
import tornado.ioloop
import tornado.netutil
import tornado.template
import tornado.web

from lockr_local.errors import BadRequest, LockrError
from lockr_local.sync.status import SyncStatus
from lockr_local.tray.autostart import AutostartError, set_autostart
from lockr_local.tray.config import TrayConfig
from lockr_local.tray.model import Action, TrayView

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


def complete_setup(form: SetupForm, previous: TrayConfig) -> SetupDone:
    """Checks the form, signs in, stores the token and sets the login entry; returns what was done.

    Blocking (network, keyring): the page calls it on an executor thread. Raises LockrError with a
    message for the person at the form. A login entry that cannot be set does not undo the rest: it
    comes back as `autostart_problem`, and tray.json records the entry as it really is.
    """
    from lockr_local.client import LockrClient
    from lockr_local.credentials import ClientSettings, TokenStore, normalize_endpoint, resolve_token
    from lockr_local.transfer import RetryPolicy

    endpoint = normalize_endpoint(form.endpoint)
    if not form.folder.strip():
        raise BadRequest("Choose the folder to keep in sync.")
    folder = Path(form.folder.strip()).expanduser()
    if not folder.is_absolute():
        raise BadRequest(f"Give the folder as a full path (such as {Path.home() / 'lockr'}), not {form.folder!r}.")
    from lockr_local.sync.folders import clean_remote_folder

    remote_folder = clean_remote_folder(form.remote_folder) if form.remote_folder.strip() else None
    settings = ClientSettings.load()
    store = TokenStore(settings)
    where = "the existing token"
    if form.password:
        if not form.identifier.strip():
            raise BadRequest("Enter your username or email address.")
        if not form.file_store and not store.uses_file(endpoint):
            from lockr_local.credentials import keyring_usable
            from lockr_local.errors import KeyringUnavailable

            if not keyring_usable():
                raise KeyringUnavailable(
                    "This computer has no usable keyring to keep your token in. Tick \"keep the token in a "
                    "private file\" below (a file only you can read, 0600), or start lockr-local with the "
                    "LOCKR_TOKEN environment variable set to a token.")
        with LockrClient(endpoint, retry=RetryPolicy(attempts=2, base_delay=0.2, max_delay=1.0)) as client:
            token = client.login(form.identifier.strip(), form.password)
        where = store.set(endpoint, token, insecure_file=form.file_store)
    elif not resolve_token(None, endpoint, store=store):
        raise BadRequest("Enter your password to sign in to this server.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadRequest(f"Cannot create the folder {folder}: {exc.strerror or exc}.") from exc
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


PAGE = tornado.template.Template("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lockr-local</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
{% if refresh %}<meta http-equiv="refresh" content="3">{% end %}
<style>
body { font: 15px/1.45 system-ui, sans-serif; max-width: 40em; margin: 2em auto; padding: 0 1em; color: #222 }
label { display: block; margin-top: .8em; font-weight: 600 } input[type=text], input[type=url],
input[type=password], input:not([type]) { width: 100%; padding: .4em; box-sizing: border-box }
.check { font-weight: normal } .error { background: #fde2e2; padding: .6em; border-radius: 4px }
.note { background: #e6f4ea; padding: .6em; border-radius: 4px } .state { font-size: 1.2em; font-weight: 600 }
form.inline { display: inline } button { margin: .2em .2em .2em 0; padding: .4em .8em } small { color: #666 }
</style></head><body>
<h1>lockr-local</h1>
{% if error %}<p class="error" id="error">{{ error }}</p>{% end %}
{% if note %}<p class="note" id="note">{{ note }}</p>{% end %}
{% if page == "control" %}
<p class="state" id="state" data-icon="{{ view.icon.value }}">{{ view.title }}</p>
<p>Folder <code>{{ config.folder }}</code> &rarr; <code>{{ config.endpoint }}</code></p>
{% for entry in actions %}<form class="inline" method="post" action="/action">{% module xsrf_form_html() %}
<input type="hidden" name="action" value="{{ entry.action.value }}">
<button type="submit" {% if not entry.enabled %}disabled{% end %}>{{ "Resume syncing" if entry.checked else entry.label }}</button></form>{% end %}
<h2>Recent uploads</h2>
{% if not status.recent_uploads %}<p>No uploads yet.</p>{% end %}
<ul>{% for upload in status.recent_uploads[:10] %}<li>{{ upload.path }} &middot;
<a href="{{ upload.share_url }}">{{ upload.share_url }}</a>
<form class="inline" method="post" action="/action">{% module xsrf_form_html() %}
<input type="hidden" name="action" value="copy_link"><input type="hidden" name="argument" value="{{ upload.share_url }}">
<button type="submit">Copy link</button></form></li>{% end %}</ul>
<p><a href="/settings">Settings</a></p>
{% else %}
<p>{% if config.configured %}Change where lockr-local syncs to.{% else %}Welcome! Connect a folder on this
computer to your lockr server.{% end %}</p>
<form method="post" action="/settings" id="setup">{% module xsrf_form_html() %}
<label for="endpoint">Server address</label>
<input type="url" id="endpoint" name="endpoint" required value="{{ config.endpoint }}" placeholder="https://lockr.example.org">
<label for="identifier">Username or email</label>
<input type="text" id="identifier" name="identifier" autocomplete="username" value="{{ config.identifier }}">
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password">
<small>Exchanged once for a token, which is kept in {{ "your system keyring" if keyring_ok else "the place you choose below" }};
the password itself is never stored.{% if config.configured %} Leave it empty to keep the current sign-in.{% end %}</small>
<label for="folder">Folder to keep in sync</label>
<input type="text" id="folder" name="folder" required value="{{ config.folder or default_folder }}">
<label for="remote_folder">Remote folder</label>
<input type="text" id="remote_folder" name="remote_folder" value="{{ "/" if config.remote_folder == "" else (config.remote_folder or "") }}" placeholder="the folder's name">
<small>Where its files go on the server. Empty: a folder named like this one; <code>/</code>: the top level.</small>
<label class="check"><input type="checkbox" id="autostart" name="autostart" value="1"
{% if config.autostart %}checked{% end %}> Start lockr-local when I log in</label>
{% if not keyring_ok %}<p class="error" id="keyring-missing">No usable system keyring was found. Either start
lockr-local with <code>LOCKR_TOKEN</code> set to a token, or tick the box to keep the token in a private
file only you can read (permissions 0600).</p>
<label class="check"><input type="checkbox" id="file_store" name="file_store" value="1"> Keep the token in a private file</label>
{% end %}
<p><button type="submit" id="save">Save and start syncing</button></p>
</form>
{% if config.configured %}<p><a href="/">Back to the status page</a></p>{% end %}
{% end %}
</body></html>
""")


class _Handler(tornado.web.RequestHandler):
    def initialize(self, page: "ControlServer") -> None:
        self.page = page

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

    def render_page(self, page: str, *, error: str = "", note: str = "", status_code: int = 200) -> None:
        config, status, view = self.page.controller.current()
        actions = [e for e in view.menu if e.action not in (Action.NONE, Action.COPY_LINK, Action.SETTINGS)]
        self.set_status(status_code)
        self.set_header("Cache-Control", "no-store")
        self.finish(PAGE.generate(page=page, error=error, note=note, config=config, status=status, view=view,
                                  actions=actions, keyring_ok=self.page.controller.keyring_usable(),
                                  default_folder=str(Path.home() / "lockr"), refresh=page == "control" and not error,
                                  handler=self, _tt_modules=_Modules(self)))


class _Modules:
    """The `{% module xsrf_form_html() %}` hook for a template rendered outside Tornado's loader."""

    def __init__(self, handler: tornado.web.RequestHandler) -> None:
        self.handler = handler

    def xsrf_form_html(self) -> str:
        return self.handler.xsrf_form_html()


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
            self.render_page("settings", error=exc.message, status_code=400)
            return
        outcome = {"note": f"Saved. Your token is kept in {done.token_place}; syncing has started."}
        if done.autostart_problem:
            outcome["error"] = done.autostart_problem  # shown on the status page, which stops refreshing for it
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
                [(r"/", ControlHandler, deps), (r"/settings", SettingsHandler, deps), (r"/action", ActionHandler, deps)],
                xsrf_cookies=True, cookie_secret=secrets.token_hex(32))
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
