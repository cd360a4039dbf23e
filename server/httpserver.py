"""LockrHTTPServer: the JSON-error HTTPServer, reading each request's body from the socket in reads sized
for it."""

from __future__ import annotations

import re

from tornado import httputil
from tornado.iostream import IOStream

from lockr_local.server.malformed import JsonErrorHTTPServer, head_content_length
from lockr_local.server.metrics import MeteredRequest, Metrics

# Tornado reads the socket into a fresh bytearray of `read_chunk_size`, zeroed first, on every recv. Small
# reads keep a small request's cost down (1 MiB reads were a fifth of a 10 KiB upload's CPU); large reads
# keep a large body's per-recv overhead down (64 KiB reads cost a 1 GiB upload 40% more CPU). So each
# request's head sets the size of the reads for its body.
SMALL_READ = 64 * 1024
LARGE_READ = 1024 * 1024
_CHUNKED = re.compile(rb"^transfer-encoding:[^\r\n]*chunked", re.IGNORECASE | re.MULTILINE)


def read_size_for(head: bytes) -> int:
    """The socket read size for the body this request head announces."""
    declared = head_content_length(head)
    if declared is not None:
        return LARGE_READ if declared > LARGE_READ else SMALL_READ
    return LARGE_READ if _CHUNKED.search(head) else SMALL_READ


class LockrHTTPServer(JsonErrorHTTPServer):
    """The server `make_http_server` builds; see the module's first line. With `metrics`, each request's
    body bytes and in-flight state are counted (metrics.MeteredRequest)."""

    metrics: Metrics | None = None

    def start_request(self, server_conn: object, request_conn: httputil.HTTPConnection
                      ) -> httputil.HTTPMessageDelegate:
        delegate = super().start_request(server_conn, request_conn)
        return delegate if self.metrics is None else MeteredRequest(delegate, self.metrics, request_conn)

    def on_request_head(self, stream: IOStream, head: bytes) -> None:
        stream.read_chunk_size = read_size_for(head)
