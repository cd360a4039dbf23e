"""The access log: one line per HTTP request, in Combined Log Format or as JSON lines, with no secrets.

A line is written when a request is answered (Tornado's `log_function`), so a resumable upload in 8 MiB
chunks writes one line per chunk PUT, which is one HTTP request each; nothing is logged per body chunk.

Combined, as Apache and nginx write it, plus two fields their tools accept as custom ones:

    client - user [10/Oct/2025:13:55:36 +0000] "PUT /api/v1/upload/session/0123abcd... HTTP/1.1" 308 0 "-" "curl/8.5" 8388608 0.042

`user` is the account name or `-`; after the user agent come the request body bytes received and the
seconds taken. JSON lines carry the same fields by name (`time`, `remote`, `user`, `method`, `path`,
`protocol`, `status`, `bytes_in`, `bytes_out`, `duration`, `referer`, `user_agent`).
Paths and referers lose their query strings (keyHash, sig) and have capability ids cut short (logsafe).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import re
import sys
import time
from typing import Any, TextIO

import tornado.web

from lockr_local.server import tornado_internals
from lockr_local.server.logsafe import loggable_path, redact

access_log = logging.getLogger("lockr.access")


def configure_access_log(destination: str, level: str, stream: TextIO | None = None) -> None:
    """Gives the access log its own handler with a bare format (no level or logger prefix), so that log
    tools read its lines as they are. `destination`: "" the server log's stream, a path, or "off"."""
    for old in list(access_log.handlers):
        access_log.removeHandler(old)
        old.close()
    access_log.propagate = False
    if destination.strip().lower() == "off":
        access_log.setLevel(logging.CRITICAL + 1)
        return
    handler: logging.Handler
    if destination:
        handler = logging.handlers.WatchedFileHandler(destination, encoding="utf-8")
        access_log.setLevel(logging.INFO)  # a file of its own is written whatever log_level says
    else:
        handler = logging.StreamHandler(stream or sys.stderr)
        access_log.setLevel(getattr(logging, level.upper()))
    handler.setFormatter(logging.Formatter("%(message)s"))
    access_log.addHandler(handler)


def bytes_sent(handler: tornado.web.RequestHandler) -> int:
    """Body bytes sent: the response's Content-Length less what a cut connection left unsent."""
    if handler.request.method == "HEAD" or handler.get_status() in (204, 304):
        return 0
    try:
        length = int(tornado_internals.response_header(handler, "Content-Length") or 0)
    except ValueError:
        return 0
    return max(0, length - tornado_internals.body_unsent(handler.request.connection))


def bytes_received(handler: tornado.web.RequestHandler) -> int:
    """Body bytes received, counted by the HTTP server's MeteredRequest (see metrics.py)."""
    metered = getattr(handler.request.connection, "lockr_metered", None)
    return int(getattr(metered, "bytes_in", 0))


# What a quoted field escapes; most fields (paths, user agents, names) hold none, and are written as they are.
_ESCAPED = re.compile(r'["\\\x00-\x1f\x7f]')


def _field(text: str) -> str:
    """A quoted field of a Combined line: quotes and backslashes escaped, control characters hex-escaped."""
    if not _ESCAPED.search(text):
        return text
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return "".join(out)


def _referer(value: str) -> str:
    return loggable_path(value.split("?", 1)[0].split("#", 1)[0]) if value else ""


def entry(handler: tornado.web.RequestHandler, now: float | None = None) -> dict[str, Any]:
    """The fields of one request's line."""
    request = handler.request
    principal = getattr(handler, "principal", None)
    try:
        remote = getattr(handler, "client_address", None) or request.remote_ip or "-"
    except Exception:  # a handler that failed in initialize() has no settings to judge proxies by
        remote = request.remote_ip or "-"
    return {
        "time": time.time() if now is None else now,
        "remote": remote,
        "user": getattr(principal, "username", None) or "-",
        "method": request.method or "-",
        "path": loggable_path(request.path),
        "protocol": request.version,
        "status": handler.get_status(),
        "bytes_in": bytes_received(handler),
        "bytes_out": bytes_sent(handler),
        "duration": round(request.request_time(), 6),
        "referer": redact(_referer(request.headers.get("Referer", ""))),
        "user_agent": redact(request.headers.get("User-Agent", "")),
    }


def format_combined(fields: dict[str, Any]) -> str:
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(fields["time"]))
    request_line = _field(f"{fields['method']} {fields['path']} {fields['protocol']}")
    return (f"{fields['remote']} - {_field(fields['user'])} [{stamp}] \"{request_line}\" {fields['status']} "
            f"{fields['bytes_out'] or '-'} \"{_field(fields['referer']) or '-'}\" "
            f"\"{_field(fields['user_agent']) or '-'}\" {fields['bytes_in']} {fields['duration']:.3f}")


def format_json(fields: dict[str, Any]) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(fields["time"]))
    return json.dumps({**fields, "time": stamp}, ensure_ascii=False, separators=(",", ":"))


FORMATS = {"combined": format_combined, "json": format_json}


def log_access(handler: tornado.web.RequestHandler, log_format: str) -> None:
    """Writes the request's line (5xx at error level, so a server log at `error` still shows them)."""
    level = logging.INFO if handler.get_status() < 500 else logging.ERROR
    if access_log.isEnabledFor(level):
        fields = entry(handler)
        # The fields ride along on the record (`record.access`) for handlers that want them unformatted.
        access_log.log(level, "%s", FORMATS[log_format](fields), extra={"access": fields})
