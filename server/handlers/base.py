"""BaseHandler: the one place errors become JSON, plus auth, client address, JSON bodies and links."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, TypeVar

import tornado.httputil
import tornado.web
from tornado.http1connection import HTTP1Connection
from tornado.iostream import StreamClosedError
from tornado.log import app_log

from lockr_local.config import Settings
from lockr_local.errors import BadRequest, LockrError, TooLarge, Unauthorized, error_body
from lockr_local.server.auth import Authenticator
from lockr_local.server.backfill import DigestBackfill
from lockr_local.server.blobstore import BlobStore, HelperThreads
from lockr_local.server.bodybudget import BodyBudget
from lockr_local.server.db import Database
from lockr_local.server import tornado_internals
from lockr_local.server.faults import Faults
from lockr_local.server.filebytes import FileBytes
from lockr_local.server.idempotency import HEADER as IDEMPOTENCY_KEY, IdempotencyKeys, parse_key
from lockr_local.server.ingest import Ingest
from lockr_local.server.logsafe import loggable_path
from lockr_local.server.metrics import Metrics
from lockr_local.server.resumable import ResumableUploads
from lockr_local.server.security import Signer
from lockr_local.server.handlers.linger import LingeringClose
from lockr_local.server.handlers.watchdog import BodyWatchdog, BodyWatchdogs
from lockr_local.server.numbers import MAX_INT64, parse_count
from lockr_local.server.service import Principal, Service

log = logging.getLogger("lockr.server")
T = TypeVar("T")

MAX_JSON_BODY = 64 * 1024
# Tornado's own body limit is replaced, for streamed bodies, by ours (the plan's object size), which
# answers with JSON.
UNLIMITED_BODY = 2**62
# No request of the API nests deeper than 2 levels; the limit leaves room and keeps walks short.
MAX_JSON_DEPTH = 32
_SURROGATE = re.compile("[\ud800-\udfff]")
# A request refused before its body streams waits for a body up to this size, so the connection stays
# usable; bigger bodies, and refusals in the middle of a body, get the lingering close instead.
DRAIN_BEFORE_ERROR = 1024 * 1024
# Tornado's own errors (unknown route, bad method, malformed request) get the same JSON shape.
_HTTP_CODES = {
    400: ("bad_request", "The request is malformed."),
    401: ("unauthorized", "Missing or invalid credentials."),
    403: ("forbidden", "You are not allowed to do that."),
    404: ("not_found", "There is nothing at this address."),
    405: ("method_not_allowed", "That method is not allowed on this resource."),
    411: ("length_required", "Send a Content-Length header."),
    413: ("too_large", "The request body is too large."),
    415: ("unsupported_media_type", "Unsupported content type."),
}


@dataclass
class ServerContext:
    """Everything a handler may need, built once by `make_app` and handed over through `initialize()`."""

    settings: Settings
    db: Database
    service: Service
    auth: Authenticator
    blobs: BlobStore
    signer: Signer
    io: ThreadPoolExecutor
    threads: HelperThreads  # the I/O threads above, and the side-hashing and flush threads of the blob store
    faults: Faults
    ingest: Ingest
    files: FileBytes
    sessions: ResumableUploads
    backfill: DigestBackfill
    watchdogs: BodyWatchdogs
    metrics: Metrics
    bodies: BodyBudget  # the memory large bodies streaming in at once share (bodybudget.py)
    idempotency: IdempotencyKeys


def declared_length(headers: tornado.httputil.HTTPHeaders) -> int | None:
    """A streamed request's Content-Length, or None for a chunked body; 400 for nonsense, 413 past 64 bits."""
    value = headers.get("Content-Length")
    if value is None:
        return None
    length = parse_count(value)
    if length is None:
        if parse_count(value, maximum=MAX_INT64 + 1) is not None:  # digits, past 64 bits
            raise TooLarge("The Content-Length is larger than any file this server can store.")
        raise BadRequest("Content-Length must be a whole number of bytes.")
    return length


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def parse_json(body: bytes) -> Any:
    """A request body as JSON, or a 400: the one place the server reads JSON from a client.

    Besides what `json.loads` refuses, it refuses what Python's parser accepts but JSON does not allow or
    the server cannot store: NaN and Infinity, nesting deeper than MAX_JSON_DEPTH (`[[[[...` would
    otherwise end in a RecursionError, a 500 and a logged traceback per request), and strings that are
    not Unicode text (a lone surrogate such as "\\ud800" cannot be encoded as UTF-8 later on).
    """
    try:
        data = json.loads(body, parse_constant=_refuse_constant)
    except RecursionError as exc:
        raise BadRequest(f"The JSON body is nested too deeply (at most {MAX_JSON_DEPTH} levels).") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"The body is not valid JSON: {exc}.") from exc
    pending: list[tuple[Any, int]] = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                raise BadRequest("The JSON body contains a string that is not valid Unicode (a lone surrogate "
                                 "such as \\ud800).")
        elif isinstance(value, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise BadRequest(f"The JSON body is nested too deeply (at most {MAX_JSON_DEPTH} levels).")
            items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
            pending.extend((item, depth + 1) for item in items)
    return data


class BaseHandler(tornado.web.RequestHandler):
    """Shared behaviour of every lockr-local handler."""

    principal: Principal
    _watchdog: BodyWatchdog | None = None
    _idempotency_claim: tuple[str, str] | None = None  # (owner, key hash) claimed until the request ends

    def initialize(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.settings_ = ctx.settings
        self.principal = Principal.guest()

    # -- errors -------------------------------------------------------------------------------

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Every error response of the server is built here, as the contract's JSON error body."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, LockrError):
            body = exc.body()
            for name, value in exc.headers.items():
                self.set_header(name, value)
        else:
            code, message = _HTTP_CODES.get(status_code, ("internal_error", LockrError.default_message))
            if isinstance(exc, tornado.web.HTTPError) and exc.log_message and status_code < 500:
                message = f"{message} ({exc.log_message % exc.args if exc.args else exc.log_message})"
            body = error_body(code, message)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body))

    def _body_left_unread(self) -> bool:
        return tornado_internals.body_unread(self.request)

    @property
    def answered(self) -> bool:
        """Whether this request has had its answer (finish() was called)."""
        return tornado_internals.finished(self)

    @property
    def http_connection(self) -> HTTP1Connection:
        """The request's connection: always HTTP/1 (LockrHTTPServer), where Tornado's type says any."""
        connection = self.request.connection
        assert isinstance(connection, HTTP1Connection)
        return connection

    def finish(self, chunk: str | bytes | dict[str, Any] | None = None) -> Any:
        linger = None
        if not tornado_internals.headers_written(self) and self._body_left_unread():
            # Tornado closes a connection whose request body it did not read, but only after the answer,
            # without saying so: a client would send its next request on it (Go's, rclone's, does), and a
            # PUT there fails. Saying it keeps that request off this connection.
            self.set_header("Connection", "close")
            linger = self._lingering_close()
        written = super().finish(chunk)
        if linger is not None:
            written.add_done_callback(lambda _: linger.start())
        return written

    def _lingering_close(self) -> LingeringClose | None:
        """Keeps the refused body's connection draining after Tornado closes it, so the client reads
        our answer instead of a reset (see linger.py)."""
        sock = getattr(getattr(self.request.connection, "stream", None), "socket", None)
        if sock is None:
            return None
        try:
            return LingeringClose(sock)
        except OSError:
            return None

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, LockrError):
            status_code = exc.status
        if tornado_internals.headers_written(self):
            # A streamed download broke mid-way: the only honest signal left is closing the connection.
            if not self.answered:
                self.http_connection.close()
            return
        if self._unread_small_body() and self._refused_before_body():
            self._answer_after_body(status_code, kwargs)
            return
        super().send_error(status_code, **kwargs)

    def _refused_before_body(self) -> bool:
        """True while prepare() runs: Tornado then never calls the verb method, so the answer may wait for
        the body. Mid-body (data_received) the verb method would run once the body ends, and race it."""
        return tornado_internals.preparing(self)

    def _unread_small_body(self) -> bool:
        """A streamed body that is still arriving but small enough to read and discard."""
        if not self._body_left_unread() or self.answered:
            return False
        length = parse_count(self.request.headers.get("Content-Length"))
        return length is not None and length <= DRAIN_BEFORE_ERROR

    def _answer_after_body(self, status_code: int, kwargs: dict[str, Any]) -> None:
        """Reads the rest of a small refused body, discards it, then answers on a connection that stays
        usable for the client's next request."""
        self.data_received = self._discard_body  # type: ignore[method-assign]

        def answer(body_future: Any) -> None:
            if body_future.cancelled() or body_future.exception() is not None or self.answered:
                return
            super(BaseHandler, self).send_error(status_code, **kwargs)

        future = tornado_internals.body_future(self.request)
        assert future is not None  # _unread_small_body checked that the body is still arriving
        future.add_done_callback(answer)

    def _discard_body(self, chunk: bytes) -> None:
        return None

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, LockrError) and value.status < 500:
            return
        if isinstance(value, StreamClosedError):
            return
        if isinstance(value, LockrError):
            log.error("%s failed: %s", self._request_summary(), value.message,
                      exc_info=value.__cause__ is not None and (type(value.__cause__), value.__cause__,
                                                                value.__cause__.__traceback__))
            return
        if isinstance(value, tornado.web.HTTPError):
            super().log_exception(typ, value, tb)  # a warning line, with _request_summary below
            return
        # Tornado's own line adds repr(self.request), which holds the whole URI with its query string.
        app_log.error("Uncaught exception %s", self._request_summary(), exc_info=(typ, value, tb))

    def _request_summary(self) -> str:
        """The request as every log line of Tornado's and ours shows it: no query string (keyHash, sig),
        capability ids cut short."""
        return f"{self.request.method} {loggable_path(self.request.path)} ({self.request.remote_ip})"

    def write_json(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body))

    def set_default_headers(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")
        self.clear_header("Server")

    # -- who is asking ------------------------------------------------------------------------

    @property
    def client_address(self) -> str:
        """The peer's address; X-Forwarded-For is believed only from a configured proxy."""
        remote = self.request.remote_ip or ""
        if not self._is_trusted_proxy(remote):
            return remote
        forwarded = [hop.strip() for hop in self.request.headers.get("X-Forwarded-For", "").split(",") if hop.strip()]
        for hop in reversed(forwarded):
            if not self._is_trusted_proxy(hop):
                return hop
        return forwarded[0] if forwarded else remote

    def _is_trusted_proxy(self, address: str) -> bool:
        trusted = self.settings_.trusted_proxies
        if not trusted:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        for entry in trusted:
            try:
                if ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
        return False

    def base_url(self) -> str:
        """Absolute links start here: public_url when set, else what the (trusted) request says."""
        if self.settings_.public_url:
            return self.settings_.public_url
        protocol, host = self.request.protocol, self.request.host
        if self._is_trusted_proxy(self.request.remote_ip or ""):
            protocol = self.request.headers.get("X-Forwarded-Proto", protocol).split(",")[0].strip() or protocol
            host = self.request.headers.get("X-Forwarded-Host", host).split(",")[0].strip() or host
        if protocol not in ("http", "https"):
            protocol = "http"
        return f"{protocol}://{host}"

    async def authenticate(self, *, limit: bool = True) -> Principal:
        """Sets and returns self.principal; applies burst protection."""
        self.principal = await self.ctx.auth.principal(self.request.headers.get("Authorization"),
                                                       self.client_address)
        if limit:
            self.ctx.auth.limit_request(self.principal, self.client_address)
        return self.principal

    async def require_account(self) -> Principal:
        principal = await self.authenticate()
        if principal.is_guest:
            raise Unauthorized()
        return principal

    def get_current_user(self) -> Any:
        return self.principal.username

    # -- helpers ------------------------------------------------------------------------------

    def json_body(self) -> dict[str, Any]:
        """The request body as a JSON object, or a 400 that says what is wrong with it."""
        body = self.request.body or b""
        if len(body) > MAX_JSON_BODY:
            raise TooLarge(f"A JSON request body may have at most {MAX_JSON_BODY // 1024} KiB.")
        if not body.strip():
            return {}
        data = parse_json(body)
        if not isinstance(data, dict):
            raise BadRequest("The JSON body must be an object, like {\"name\": ...}.")
        return data

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Runs a service method on the database thread."""
        return await self.ctx.db.run(fn, *args, **kwargs)

    async def run_io(self, fn: Callable[..., T], *args: Any) -> T:
        """Runs blocking file I/O on the `lockr-io` threads."""
        return await asyncio.get_running_loop().run_in_executor(self.ctx.io, fn, *args)

    def body_too_large(self, received: int) -> TooLarge:
        """Why a streamed body that ran past its limit is refused: its Content-Length, or the plan."""
        if self.request.headers.get("Content-Length") is not None:
            return TooLarge("The body is longer than its Content-Length.")
        try:
            self.ctx.service.check_object_size(self.principal, received)
        except TooLarge as exc:
            return exc
        return TooLarge()

    def watch_body(self, on_timeout: Callable[[], None]) -> BodyWatchdog:
        """Starts cutting off this request's body if it stalls or trickles (see BodyWatchdog)."""

        def cut_off() -> None:
            on_timeout()
            self.http_connection.close()

        self._watchdog = self.ctx.watchdogs.watch(cut_off)
        return self._watchdog

    def claim_idempotency_key(self, owner: str) -> str | None:
        """The request's Idempotency-Key as its SHA-256, marked in flight for `owner` until this request ends
        (idempotency.py); None without the header, or when the server keeps no keys (then it is ignored)."""
        keys = self.ctx.idempotency
        key_hash = parse_key(self.request.headers.get(IDEMPOTENCY_KEY)) if keys.enabled else None
        if key_hash is not None:
            keys.claim(owner, key_hash)
            self._idempotency_claim = (owner, key_hash)
        return key_hash

    def _release_idempotency_key(self) -> None:
        # On a cut connection too: the record may still be under way, but a retry that overtakes it meets
        # its row in the database (the first to commit wins; the other is answered as a replay).
        claim = self._idempotency_claim
        if claim is not None:
            self.ctx.idempotency.release(*claim)
            self._idempotency_claim = None

    def on_finish(self) -> None:
        self._release_idempotency_key()
        if self._watchdog is not None:
            self._watchdog.stop()

    def on_connection_close(self) -> None:
        self._release_idempotency_key()
        if self._watchdog is not None:
            self._watchdog.stop()
        super().on_connection_close()

    def check_xsrf_cookie(self) -> Awaitable[None] | None:  # type: ignore[override]
        # The API is token-authenticated (no cookies), so cross-site forms cannot ride on it.
        return None


class NotFoundHandler(BaseHandler):
    """Answers every unknown route with the JSON 404."""

    def prepare(self) -> None:
        raise tornado.web.HTTPError(404)
