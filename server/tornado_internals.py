"""Every use of Tornado's private attributes, in one place (tornado>=6.4,<7; tested through 6.6).

Tornado has no public API for these: whether a handler has sent its headers or finished, whether a
streamed request body is still arriving (and a future for its end), whether prepare() is still running,
telling an HTTP/1 connection that body bytes went out by sendfile (and asking what it has not sent), a
response header already set, and replacing a connection's stream
methods (to answer Tornado's own bare parser errors with JSON; malformed.py). Everything else goes
through the public API. tests/server/test_tornado_internals.py fails loudly when an upgrade moves any
of them, and guards that no other module reaches for a private Tornado attribute.
"""

from __future__ import annotations

from typing import Any, Callable

import tornado.web
from tornado.http1connection import HTTP1Connection
from tornado.httputil import HTTPServerRequest
from tornado.iostream import IOStream

# The private names used below, for the upgrade test.
HANDLER_ATTRIBUTES = ("_headers_written", "_finished", "_prepared_future", "_headers")
REQUEST_ATTRIBUTES = ("_body_future",)
CONNECTION_ATTRIBUTES = ("_expected_content_remaining",)


def headers_written(handler: tornado.web.RequestHandler) -> bool:
    """Whether the response's headers have gone out (after that only closing can signal an error)."""
    return bool(handler._headers_written)


def finished(handler: tornado.web.RequestHandler) -> bool:
    """Whether the handler has answered (finish() was called)."""
    return bool(handler._finished)


def preparing(handler: tornado.web.RequestHandler) -> bool:
    """True while prepare() runs (Tornado then never calls the verb method if it answers)."""
    prepared = getattr(handler, "_prepared_future", None)
    return prepared is not None and not prepared.done()


def body_future(request: HTTPServerRequest) -> Any | None:
    """The future that resolves when a streamed request's body has been read; None when not streamed."""
    return getattr(request, "_body_future", None)


def body_unread(request: HTTPServerRequest) -> bool:
    """Whether a streamed request's body is still arriving."""
    future = body_future(request)
    return future is not None and not future.done()


def response_header(handler: tornado.web.RequestHandler, name: str) -> str | None:
    """A header of the response being built (the access log reads Content-Length); Tornado has a setter
    and no getter."""
    value = handler._headers.get(name)
    return None if value is None else str(value)


def body_unsent(connection: Any) -> int:
    """Body bytes of a framed (Content-Length) response that the HTTP/1 connection has not sent: 0 after
    a complete response, the rest when it was cut off."""
    remaining = getattr(connection, "_expected_content_remaining", None) if counts_sent_body(connection) else None
    return int(remaining or 0)


def counts_sent_body(connection: Any) -> bool:
    """Whether `connection` keeps the count body_sent_outside can correct (Tornado's HTTP/1 connection)."""
    return isinstance(connection, HTTP1Connection) and hasattr(connection, "_expected_content_remaining")


def body_sent_outside(connection: HTTP1Connection, length: int) -> None:
    """Tells the HTTP/1 connection that `length` bytes of the body it framed went out around its write()
    (sendfile): it counts body bytes only through its own write() and has no public hook for others."""
    remaining = connection._expected_content_remaining
    if remaining is not None:
        connection._expected_content_remaining = remaining - length


def replace_stream_methods(stream: IOStream, *, write: Callable[..., Any], read_until_regex: Callable[..., Any],
                           close: Callable[..., Any]) -> None:
    """Replaces three methods of one connection's stream. Tornado builds the HTTP1Connection that reads
    heads and writes its bare errors inside a private loop, with no hook; the stream is the one seam."""
    stream.write = write  # type: ignore[method-assign]
    stream.read_until_regex = read_until_regex  # type: ignore[method-assign]
    stream.close = close  # type: ignore[method-assign]
