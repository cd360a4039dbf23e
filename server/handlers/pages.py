"""The web pages: /account, /files, /upload and /download/<id>, server-rendered, with cookie sessions.

How pages and the API fit together (see README, "Web pages"):
- Signing up or logging in on /account (an HTML form, XSRF-checked) creates an API token named
  "web session" and keeps it in a signed, HttpOnly, SameSite=Lax cookie. Logging out revokes it.
- A page for a signed-in user carries that token in `<meta name="lockr-token">`; its script calls
  the JSON API with `Authorization: Bearer`, like any other client. The API never reads cookies, so
  a cross-site request cannot ride on the session, and the only cookie-authenticated endpoints are
  the form posts here, which Tornado's XSRF check guards (`xsrf_cookies=True` in app.py).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import tornado.web

from lockr_local.units import format_size
from lockr_local.web import shared_static_url
from lockr_local.errors import (
    BadRequest, LockrError, NotFound, RateLimited, SignupDisabled, Unauthorized,
)
from lockr_local.server.handlers.base import BaseHandler
from lockr_local.server.handlers.files import checked_file_id
from lockr_local.server.service import (
    AccountInfo, FileInfo, Principal, validate_email, validate_password, validate_username,
)

SESSION_COOKIE = "lockr_session"
SESSION_DAYS = 30
SESSION_TOKEN_NAME = "web session"
# Remembers (signed, not secret) which accounts logged in from this browser; it outlives logging out.
DEVICE_COOKIE = "lockr_device"
DEVICE_DAYS = 365
DEVICE_MAX_ACCOUNTS = 10

# Pages load only their own scripts and styles, may be framed by no one and post forms only to us.
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'")

_XSRF_MESSAGE = ("This form was sent without its security token, so it was refused (it may have come from "
                 "another site). Reload the page and try again.")


class PageHandler(BaseHandler):
    """HTML instead of JSON, a cookie session, and the XSRF check that the API handlers switch off."""

    account: AccountInfo | None = None
    session_token: str | None = None

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Content-Security-Policy", PAGE_CSP)
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Cache-Control", "no-store")

    def check_xsrf_cookie(self) -> None:
        # Undo BaseHandler's opt-out: page forms are cookie-authenticated, so they need the token.
        tornado.web.RequestHandler.check_xsrf_cookie(self)

    async def prepare(self) -> None:
        token = self.get_signed_cookie(SESSION_COOKIE, max_age_days=SESSION_DAYS)
        principal = Principal.guest()
        if token:
            try:
                principal = await self.call(self.ctx.service.authenticate_token, token.decode())
                self.account = await self.call(self.ctx.service.account, principal.account_id)
                self.session_token = token.decode()
            except Unauthorized:
                # Revoked elsewhere (or the account is gone): the browser is simply signed out.
                self.clear_cookie(SESSION_COOKIE)
                principal = Principal.guest()
        self.principal = principal
        self.ctx.auth.limit_request(principal, self.client_address)

    def get_template_namespace(self) -> dict[str, Any]:
        namespace = super().get_template_namespace()
        namespace.update(account=self.account, session_token=self.session_token, format_size=format_size,
                         format_date=format_date, page_title="lockr", shared_static_url=shared_static_url,
                         guest_uploads=self.settings_.guest_uploads)
        return namespace

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Errors of the pages are pages too: the same sentence the API would give, in HTML."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, LockrError):
            message = exc.message
            for name, value in exc.headers.items():
                self.set_header(name, value)
        elif isinstance(exc, tornado.web.HTTPError) and status_code == 403 and "_xsrf" in (exc.log_message or ""):
            message = _XSRF_MESSAGE
        elif status_code == 404:
            message = "There is nothing at this address."
        elif status_code < 500:
            message = "The request could not be carried out."
        else:
            message = LockrError.default_message
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.render("error.html", status=status_code, message=message, page_title=f"Error {status_code}")

    def start_session(self, token: str) -> None:
        secure = self.base_url().startswith("https://")
        self.set_signed_cookie(SESSION_COOKIE, token, expires_days=SESSION_DAYS, httponly=True, samesite="Lax",
                               secure=secure, path="/")

    def device_accounts(self) -> frozenset[int]:
        """The accounts this browser has logged in to before (the signed device cookie): password guesses
        made elsewhere do not hold it back from them (Authenticator.limit_login)."""
        value = self.get_signed_cookie(DEVICE_COOKIE, max_age_days=DEVICE_DAYS)
        ids = (value or b"").decode("ascii", "replace").split(",")
        return frozenset(int(i) for i in ids if i.isdigit())

    def remember_device(self, account_id: int) -> None:
        kept = [i for i in self.device_accounts() if i != account_id][:DEVICE_MAX_ACCOUNTS - 1]
        self.set_signed_cookie(DEVICE_COOKIE, ",".join(map(str, [account_id, *kept])), expires_days=DEVICE_DAYS,
                               httponly=True, samesite="Lax", secure=self.base_url().startswith("https://"),
                               path="/account")

    def safe_next(self, default: str) -> str:
        """Where to go after signing in: only a path on this site (no open redirect)."""
        # Unstripped: what was sent is judged, not a trimmed version of it.
        return same_site_path(self.get_argument("next", "", strip=False)) or default


class HomeHandler(PageHandler):
    """GET /: the files page for a signed-in user, else the guest upload page (or, when the server takes
    no guest uploads, the account page)."""

    def get(self) -> None:
        if self.account:
            self.redirect("/files")
        else:
            self.redirect("/upload" if self.settings_.guest_uploads else "/account")


class GuestUploadPageHandler(PageHandler):
    """GET /upload: uploads without an account (resumable sessions, no credentials) and shows each file's
    share link. A signed-in user uploads on /files, into the account."""

    def get(self) -> None:
        if self.account is not None:
            self.redirect("/files")
            return
        self.render("upload.html", max_size=self.settings_.guest_max_object, page_title="Upload")


class AccountPageHandler(PageHandler):
    """GET /account: sign up / log in forms, or the account dashboard."""

    def get(self) -> None:
        self.render_account()

    def render_account(self, error: str | None = None, form: str = "", values: dict[str, str] | None = None
                       ) -> None:
        fresh_token = None
        if self.account is not None:
            flash = self.get_signed_cookie("lockr_new_token", max_age_days=1)
            if flash:
                fresh_token = flash.decode()
                self.clear_cookie("lockr_new_token", path="/account")
        self.render("account.html", error=error, form=form, values=values or {}, fresh_token=fresh_token,
                    signup_enabled=self.settings_.signup, next_url=self.safe_next("/files"),
                    page_title="Account")


class SignupHandler(AccountPageHandler):
    """POST /account/signup: creates the account, signs this browser in and shows the first API token."""

    async def post(self) -> None:
        values = {"username": self.get_body_argument("username", ""), "email": self.get_body_argument("email", "")}
        try:
            if not self.settings_.signup:
                raise SignupDisabled()
            username = validate_username(values["username"].strip())
            email = validate_email(values["email"])
            password = validate_password(self.get_body_argument("password", ""))
            self.ctx.auth.limit_signup(self.client_address)
            password_hash = await self.ctx.auth.hash_password(password)
            account, api_token = await self.call(self.ctx.service.create_account, username, email, password_hash)
            session = await self.call(self.ctx.service.create_token, account.id, SESSION_TOKEN_NAME)
        except LockrError as exc:
            if isinstance(exc, RateLimited) or exc.status >= 500:
                raise
            self.set_status(exc.status)
            self.render_account(error=exc.message, form="signup", values=values)
            return
        self.start_session(session)
        self.remember_device(account.id)
        # Shown once on the next page: the token is stored only as a hash, so it cannot be shown later.
        self.set_signed_cookie("lockr_new_token", api_token, expires_days=None, httponly=True, samesite="Strict",
                               secure=self.base_url().startswith("https://"), path="/account")
        self.redirect("/account")


class LoginPageHandler(AccountPageHandler):
    """POST /account/login: username-or-email and password -> a web session."""

    async def post(self) -> None:
        identifier = self.get_body_argument("identifier", "").strip()
        password = self.get_body_argument("password", "")
        try:
            if not identifier or not password:
                raise BadRequest("Enter your username or email and your password.")
            account = await self.ctx.auth.verify_credentials(identifier, password, self.client_address,
                                                             self.device_accounts())
            session = await self.call(self.ctx.service.create_token, account.id, SESSION_TOKEN_NAME)
        except (BadRequest, Unauthorized) as exc:
            self.set_status(exc.status)
            self.render_account(error=exc.message, form="login", values={"identifier": identifier})
            return
        self.start_session(session)
        self.remember_device(account.id)
        self.redirect(self.safe_next("/files"))


class LogoutHandler(PageHandler):
    """POST /account/logout: revokes this browser's session token and forgets the cookie."""

    async def post(self) -> None:
        if self.session_token:
            await self.call(self.ctx.service.revoke_token, self.session_token)
        self.clear_cookie(SESSION_COOKIE, path="/")
        self.redirect("/account")


class FilesPageHandler(PageHandler):
    """GET /files: the signed-in user's files; the list and every action go through the JSON API."""

    def get(self) -> None:
        if self.account is None:
            self.redirect("/account?next=/files")
            return
        self.render("files.html", regions=self.ctx.blobs.regions(),
                    default_region=self.account.default_region or self.settings_.default_region,
                    max_link_lifetime=self.settings_.max_link_lifetime, page_title="Files",
                    trash_retention=self.settings_.trash_retention,
                    retention_text=format_duration(self.settings_.trash_retention))


class DownloadPageHandler(PageHandler):
    """GET /download/<id>: what the file is and a download button; nothing of the file is shown inline.
    For a keyed file, nothing derived from its content either (its SHA-256 would let anyone confirm a
    guess of short content offline), except to its signed-in owner."""

    def compute_etag(self) -> None:
        # Tornado's default ETag hashes the page, so it would fingerprint whatever the page shows.
        return None

    async def get(self, file_id: str) -> None:
        try:
            # Any text after /download/ gets this page (an HTML "not found" rather than the API's JSON).
            info: FileInfo = await self.call(self.ctx.service.file, checked_file_id(file_id.strip().lower()))
        except NotFound:
            self.set_status(404)
            self.render("download.html", file=None, download_url="", page_title="File not found", show_digest=False)
            return
        owner = self.account is not None and self.account.id == info.owner_id
        self.render("download.html", file=info, download_url=info.download_path(), page_title=info.name,
                    show_digest=not info.has_key or owner)


MAX_NEXT_LENGTH = 2048


def same_site_path(target: str) -> str | None:
    """`target` if a browser would resolve it to a path on this site, else None.

    Judged on what a browser makes of it, not on its prefix: WHATWG URL parsing drops tabs and newlines
    anywhere and reads a backslash as a slash, so `/\t/evil.example` becomes `//evil.example`. Only
    printable ASCII without backslashes passes (a control character in a header would also fail the
    answer), then the parsed URL must have no scheme, no host and a path with exactly one leading slash.
    """
    if not target or len(target) > MAX_NEXT_LENGTH:
        return None
    if any(not "!" <= char <= "~" or char == "\\" for char in target):
        return None
    try:
        parts = urlsplit(target)
    except ValueError:  # e.g. "http://[::1", an unclosed IPv6 host
        return None
    # urlsplit reads "///host" as the path "/host"; a browser reads it as the host.
    if target.startswith("//") or parts.scheme or parts.netloc or not parts.path.startswith("/") \
            or parts.path.startswith("//"):
        return None
    return target


def format_duration(seconds: int) -> str:
    """30 days, 12 hours, 45 minutes: the largest whole unit, as a person says it."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def format_date(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))
