"""The HTTPServer whose answer to a request Tornado cannot parse carries the API's JSON error body."""

from __future__ import annotations

import json
import re
from asyncio import Future
from typing import Any, cast

from tornado.httpserver import HTTPServer
from tornado.iostream import IOStream, UnsatisfiableReadError

from lockr_local.errors import error_body
from lockr_local.server import tornado_internals
from lockr_local.server.handlers.linger import LingeringClose
from lockr_local.server.numbers import saturating_count

# What tornado/http1connection.py writes, and nothing else, when its parser raises HTTPInputError (a
# garbage request line, a header line without a colon, a bad chunk size, ...): no headers, no body.
# No handler ever writes it: every answer of ours carries headers (X-Content-Type-Options at least).
TORNADO_BARE_400 = b"HTTP/1.1 400 Bad Request\r\n\r\n"


def error_answer(status_line: bytes, code: str, message: str) -> bytes:
    """A whole error answer in the one JSON error shape; the connection closes after it (Tornado closes
    it right after, so the answer says so)."""
    body = json.dumps(error_body(code, message)).encode()
    head = (b"HTTP/1.1 " + status_line + b"\r\n"
            b"Content-Type: application/json; charset=utf-8\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n"
            b"Cache-Control: no-store\r\n"
            b"X-Content-Type-Options: nosniff\r\n"
            b"Connection: close\r\n\r\n")
    return head + body


def malformed_request_answer() -> bytes:
    return error_answer(b"400 Bad Request", "bad_request", "The request is malformed: it is not valid HTTP/1.1 "
                        "(request line, headers or chunked body).")


def body_too_large_answer(limit: int) -> bytes:
    size = f"{limit >> 20} MiB" if limit and limit % (1 << 20) == 0 else f"{limit} bytes"
    return error_answer(b"413 Payload Too Large", "too_large",
                        f"The request body is too large for this endpoint (at most {size}).")


def head_too_large_answer(limit: int) -> bytes:
    return error_answer(b"431 Request Header Fields Too Large", "headers_too_large",
                        f"The request line and headers are larger than {limit >> 10} KiB; send fewer or "
                        "shorter headers (a long URL query or cookie, most likely).")


def answer_and_linger(stream: IOStream, answer: bytes) -> None:
    """Hands `answer` to the kernel on a connection Tornado is about to close without a word, and keeps
    draining it (linger.py) so the client reads the answer rather than a reset."""
    sock = stream.socket
    if sock is None:
        return
    try:
        sock.send(answer)  # a few hundred bytes: the send buffer of a fresh connection takes them whole
        LingeringClose(sock).start()
    except OSError:
        pass


_ANSWER = malformed_request_answer()
_CONTENT_LENGTH = re.compile(rb"^content-length:[ \t]*([0-9]+)[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)


def head_content_length(header_block: bytes) -> int | None:
    """The Content-Length a raw request head declares (saturating past 64 bits), before Tornado parses it;
    handlers read theirs, strictly, with handlers.base.declared_length."""
    match = _CONTENT_LENGTH.search(header_block)
    return saturating_count(match.group(1).decode("ascii")) if match else None


class JsonErrorHTTPServer(HTTPServer):
    """HTTPServer whose connections swap Tornado's bare parser 400 for the JSON one.

    Tornado builds the HTTP1Connection that writes the bare 400 inside a private loop, with no hook to
    replace it; the stream it writes to is ours to wrap, here, for each connection.
    """

    def handle_stream(self, stream: IOStream, address: tuple[Any, ...]) -> None:
        write, read_headers, close = stream.write, stream.read_until_regex, stream.close
        limit = self.conn_params.max_body_size or 0
        head_limit = self.conn_params.max_header_size or 65536
        last_head = [b""]  # the latest request head read on this connection
        reading_head = [False]

        def keep(done: Any) -> None:
            reading_head[0] = False
            last_head[0] = done.result() if not done.cancelled() and done.exception() is None else b""
            if last_head[0]:
                self.on_request_head(stream, last_head[0])

        def remember_head(*args: Any, **kwargs: Any) -> Any:
            reading_head[0] = True
            # Typed Awaitable; IOStream returns a Future, whose state is read here.
            future = cast("Future[bytes]", read_headers(*args, **kwargs))
            if future.done():  # already buffered: the caller goes on without yielding, so keep it now
                keep(future)
            else:
                future.add_done_callback(keep)
            return future

        def write_json_error(data: bytes | memoryview) -> Any:
            if len(data) == len(TORNADO_BARE_400) and bytes(data) == TORNADO_BARE_400:
                # Tornado refuses a non-streamed body over max_body_size with the same bare 400 ("Content-
                # Length too long"), before reading it: that one is a 413.
                declared = head_content_length(last_head[0])
                data = body_too_large_answer(limit) if declared is not None and declared > limit else _ANSWER
            return write(data)

        def close_with_answer(exc_info: Any = False) -> None:
            # A head past max_header_size ends in the stream closing itself with UnsatisfiableReadError,
            # and Tornado then drops the connection without an answer: give it the JSON 431 first.
            if reading_head[0] and isinstance(exc_info, UnsatisfiableReadError) and not stream.closed():
                reading_head[0] = False
                answer_and_linger(stream, head_too_large_answer(head_limit))
            close(exc_info)

        tornado_internals.replace_stream_methods(stream, write=write_json_error, read_until_regex=remember_head,
                                                 close=close_with_answer)
        super().handle_stream(stream, address)

    def on_request_head(self, stream: IOStream, head: bytes) -> None:
        """Called with each request's head as read, before its body: for subclasses."""
