"""LockrHTTPServer: the JSON-error HTTPServer, reading each request's body from the socket in reads sized
for it and for the other bodies streaming in at the same time."""

from __future__ import annotations

from typing import Any

from tornado import httputil
from tornado.iostream import IOStream

from lockr_local.server.bodybudget import MAX_SHARE, BodyBudget
from lockr_local.server.malformed import JsonErrorHTTPServer
from lockr_local.server.metrics import MeteredRequest, Metrics
from lockr_local.server.numbers import saturating_count

# Tornado reads the socket into a fresh bytearray of `read_chunk_size`, zeroed first, on every recv. Small
# reads keep a small request's cost down (1 MiB reads were a fifth of a 10 KiB upload's CPU); large reads
# keep a large body's per-recv overhead down (64 KiB reads cost a 1 GiB upload 40% more CPU). So each
# request's head says whether its body is large, and a large body reads its share of the BodyBudget: 1 MiB
# alone, less when many stream at once (bodybudget.py), so that their buffers do not add up.
SMALL_READ = 64 * 1024
LARGE_READ = MAX_SHARE


def streams_large_body(headers: httputil.HTTPHeaders) -> bool:
    """Whether the request these headers start announces a body larger than LARGE_READ, or a chunked one.
    The headers are not checked yet (the handler refuses a bad Content-Length with its own 400)."""
    declared = headers.get("Content-Length")
    if declared is not None:
        digits = declared.strip()
        return digits.isascii() and digits.isdigit() and saturating_count(digits) > LARGE_READ
    return "chunked" in headers.get("Transfer-Encoding", "").lower()


class BudgetedBody(httputil.HTTPMessageDelegate):
    """Wraps the delegate of one HTTP request: a large body counts in the BodyBudget from its head until its
    last byte is read (or the connection closes), and sets each next socket read of its connection to the
    budget's share at that moment; any other request reads SMALL_READ at a time."""

    __slots__ = ("delegate", "budget", "stream", "large")

    def __init__(self, delegate: httputil.HTTPMessageDelegate, budget: BodyBudget, stream: IOStream) -> None:
        self.delegate = delegate
        self.budget = budget
        self.stream = stream
        self.large = False

    def headers_received(self, start_line: Any, headers: httputil.HTTPHeaders) -> Any:
        if streams_large_body(headers):
            self.large = True
            self.budget.started()
            self.stream.read_chunk_size = self.budget.share()
        return self.delegate.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Any:
        if self.large:
            self.stream.read_chunk_size = self.budget.share()
        return self.delegate.data_received(chunk)

    def finish(self) -> None:
        self._body_read()
        self.delegate.finish()

    def on_connection_close(self) -> None:
        self._body_read()
        self.delegate.on_connection_close()

    def _body_read(self) -> None:
        if self.large:
            self.large = False
            self.budget.ended()
            self.stream.read_chunk_size = SMALL_READ  # the next request's head


class LockrHTTPServer(JsonErrorHTTPServer):
    """The server `make_http_server` builds; see the module's first line. With `metrics`, each request's
    body bytes and in-flight state are counted (metrics.MeteredRequest); with `budget`, each large body reads
its share of it (BudgetedBody)."""

    metrics: Metrics | None = None
    budget: BodyBudget | None = None

    def start_request(self, server_conn: object, request_conn: httputil.HTTPConnection
                      ) -> httputil.HTTPMessageDelegate:
        delegate = super().start_request(server_conn, request_conn)
        stream = getattr(request_conn, "stream", None)
        if self.budget is not None and isinstance(stream, IOStream):
            delegate = BudgetedBody(delegate, self.budget, stream)
        return delegate if self.metrics is None else MeteredRequest(delegate, self.metrics, request_conn)
