"""The HTTPServer whose answer to a request Tornado cannot parse carries the API's JSON error body."""

from __future__ import annotations

import json
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.iostream import IOStream

from lockr_local.errors import error_body

# What tornado/http1connection.py writes, and nothing else, when its parser raises HTTPInputError (a
# garbage request line, a header line without a colon, a bad chunk size, ...): no headers, no body.
# No handler ever writes it: every answer of ours carries headers (X-Content-Type-Options at least).
TORNADO_BARE_400 = b"HTTP/1.1 400 Bad Request\r\n\r\n"


def malformed_request_answer() -> bytes:
    """The whole 400 answer to an unparseable request: the one JSON error shape, then the connection closes
    (Tornado closes it right after, so the answer says so)."""
    body = json.dumps(error_body(
        "bad_request", "The request is malformed: it is not valid HTTP/1.1 (request line, headers or chunked "
        "body).")).encode()
    head = (b"HTTP/1.1 400 Bad Request\r\n"
            b"Content-Type: application/json; charset=utf-8\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n"
            b"Cache-Control: no-store\r\n"
            b"X-Content-Type-Options: nosniff\r\n"
            b"Connection: close\r\n\r\n")
    return head + body


_ANSWER = malformed_request_answer()


class JsonErrorHTTPServer(HTTPServer):
    """HTTPServer whose connections swap Tornado's bare parser 400 for the JSON one.

    Tornado builds the HTTP1Connection that writes the bare 400 inside a private loop, with no hook to
    replace it; the stream it writes to is ours to wrap, here, for each connection.
    """

    def handle_stream(self, stream: IOStream, address: tuple[Any, ...]) -> None:
        write = stream.write

        def write_json_400(data: bytes | memoryview) -> Any:
            if len(data) == len(TORNADO_BARE_400) and bytes(data) == TORNADO_BARE_400:
                data = _ANSWER
            return write(data)

        stream.write = write_json_400  # type: ignore[method-assign]
        super().handle_stream(stream, address)
