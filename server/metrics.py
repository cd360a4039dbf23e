"""Server metrics: plain counters kept on the IOLoop, and their Prometheus text exposition for /metrics.

Counting costs a few dict and integer operations per request (and one per body chunk), all on the IOLoop
thread, so no lock is needed. Values that need the database or the disk (open sessions, free space) are
gathered only when /metrics is scraped, off the IOLoop. The exposition format (version 0.0.4) is simple
enough to write here; prometheus_client would bring a registry and global state for the same lines.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any, Iterable

from tornado import httputil

# Methods the API answers; anything else a client sends is counted as "other" (bounded label values).
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND", "PROPPATCH",
                      "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Seconds; from a cached fsync of a small file to a slow disk's.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Small uploads recorded by one database commit (groupcommit.py).
GROUP_BUCKETS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0)


def route_label(pattern: str) -> str:
    """A route pattern of make_app as a label: `/api/v1/files/([0-9a-fA-F]{1,64})/key` -> `/api/v1/files/{}/key`."""
    label = re.sub(r"\(\?:[^)]*\)\??", "", pattern)
    label = re.sub(r"\([^)]*\)", "{}", label)
    return label.replace("/?", "").rstrip("$") or "/"


@dataclass
class Histogram:
    """A Prometheus histogram: counts per upper bound (cumulated when written), sum and count."""

    buckets: tuple[float, ...] = LATENCY_BUCKETS
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = self.counts or [0] * (len(self.buckets) + 1)

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.buckets, seconds)] += 1
        self.total += seconds
        self.count += 1

    def lines(self, name: str, number: str = "{:.6f}") -> Iterable[str]:
        running = 0
        for bound, count in zip(self.buckets, self.counts):
            running += count
            yield f'{name}_bucket{{le="{bound}"}} {running}'
        yield f'{name}_bucket{{le="+Inf"}} {self.count}'
        yield f"{name}_sum {number.format(self.total)}"
        yield f"{name}_count {self.count}"


class Metrics:
    """One server's counters. Updated on the IOLoop only (histograms are observed there too)."""

    def __init__(self) -> None:
        self.routes: dict[type, str] = {}
        self.requests: dict[tuple[str, str, int], int] = {}
        self.bytes_in = 0
        self.bytes_out = 0
        self.in_flight = 0
        self.uploads_in_flight = 0
        self.rate_limited = 0
        self.commit_seconds = Histogram()
        self.fsync_seconds = Histogram()
        self.group_commit_size = Histogram(GROUP_BUCKETS)

    def name_routes(self, routes: Iterable[tuple[Any, ...]]) -> None:
        """Labels each handler class with (the first of) its route patterns."""
        for pattern, handler_class, *_ in routes:
            self.routes.setdefault(handler_class, route_label(pattern))

    def answered(self, handler_class: type, method: str | None, status: int, bytes_out: int) -> None:
        """A response went out (called from the access log hook, once per request)."""
        key = (self.routes.get(handler_class, "unmatched"), method if method in _METHODS else "other", status)
        self.requests[key] = self.requests.get(key, 0) + 1
        self.bytes_out += bytes_out
        if status == 429:
            self.rate_limited += 1

    def render(self, sessions_open: int | None, free_bytes: dict[str, int | None]) -> str:
        """The exposition text; `sessions_open` and `free_bytes` were gathered off the IOLoop."""
        out = ["# HELP lockr_http_requests_total HTTP requests answered, by route, method and status.",
               "# TYPE lockr_http_requests_total counter"]
        for (route, method, status), count in sorted(self.requests.items()):
            out.append(f'lockr_http_requests_total{{route="{_escape(route)}",method="{method}",'
                       f'status="{status}"}} {count}')
        out += _single("lockr_http_received_bytes_total", "counter", "Request body bytes received.", self.bytes_in)
        out += _single("lockr_http_sent_bytes_total", "counter", "Response body bytes sent.", self.bytes_out)
        out += _single("lockr_http_requests_in_flight", "gauge", "Requests being received or answered.",
                       self.in_flight)
        out += _single("lockr_uploads_in_flight", "gauge", "Requests with a body (POST, PUT, PATCH) not yet "
                       "answered.", self.uploads_in_flight)
        out += _single("lockr_rate_limited_total", "counter", "Requests refused by a rate limit (429).",
                       self.rate_limited)
        if sessions_open is not None:
            out += _single("lockr_upload_sessions_open", "gauge", "Resumable upload sessions not yet completed "
                           "(API sessions and tus).", sessions_open)
        out += ["# HELP lockr_region_free_bytes Free bytes on the disk of each storage region.",
                "# TYPE lockr_region_free_bytes gauge"]
        for region, free in sorted(free_bytes.items()):
            if free is not None:
                out.append(f'lockr_region_free_bytes{{region="{_escape(region)}"}} {free}')
        out += ["# HELP lockr_blob_commit_seconds Time to make an upload's bytes durable (flush, fsync, rename).",
                "# TYPE lockr_blob_commit_seconds histogram", *self.fsync_seconds.lines("lockr_blob_commit_seconds")]
        out += ["# HELP lockr_db_record_seconds Time to record an upload in the database (one commit).",
                "# TYPE lockr_db_record_seconds histogram", *self.commit_seconds.lines("lockr_db_record_seconds")]
        out += ["# HELP lockr_db_group_commit_size Small (inline) uploads recorded by one database commit: the "
                "count is the commits, the sum the uploads (group commit).",
                "# TYPE lockr_db_group_commit_size histogram",
                *self.group_commit_size.lines("lockr_db_group_commit_size", "{:g}")]
        return "\n".join(out) + "\n"


def _single(name: str, kind: str, help_text: str, value: int) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value}"]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class MeteredRequest(httputil.HTTPMessageDelegate):
    """Wraps the delegate of one HTTP request to count its body bytes and keep the in-flight gauges.

    Kept on its connection as `lockr_metered` (an HTTP/1 connection carries one request at a time), so
    the access log finds it through `request.connection` however early the handler answers."""

    __slots__ = ("delegate", "metrics", "bytes_in", "has_body", "done")

    def __init__(self, delegate: httputil.HTTPMessageDelegate, metrics: Metrics,
                 connection: httputil.HTTPConnection) -> None:
        self.delegate = delegate
        self.metrics = metrics
        self.bytes_in = 0
        self.has_body = False
        self.done = True  # until the request's head arrives: nothing to take off the gauges before
        connection.lockr_metered = self  # type: ignore[attr-defined]

    def headers_received(self, start_line: Any, headers: httputil.HTTPHeaders) -> Any:
        self.metrics.in_flight += 1
        self.done = False
        if getattr(start_line, "method", None) in _BODY_METHODS:
            self.has_body = True
            self.metrics.uploads_in_flight += 1
        return self.delegate.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Any:
        self.bytes_in += len(chunk)
        self.metrics.bytes_in += len(chunk)
        return self.delegate.data_received(chunk)

    def finish(self) -> None:
        self.delegate.finish()

    def on_connection_close(self) -> None:
        self.answered()
        self.delegate.on_connection_close()

    def answered(self) -> None:
        """The response went out or the connection went away: the request leaves the gauges (once)."""
        if self.done:
            return
        self.done = True
        self.metrics.in_flight -= 1
        if self.has_body:
            self.metrics.uploads_in_flight -= 1
