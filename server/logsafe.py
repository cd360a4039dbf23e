"""What of a request may reach a log line: paths with capability ids cut short, never a query string,
and a formatter that scrubs any secret that slips through anyway."""

from __future__ import annotations

import logging
import re
from typing import TextIO

# Download ids, upload-session ids and tus ids are 128-bit capabilities (32 hex characters): a log line
# keeps the first 8, enough to tell them apart. Longer hex runs (sha256 digests) are left alone.
_CAPABILITY_ID = re.compile(r"(?<![0-9A-Fa-f])([0-9a-fA-F]{8})[0-9a-fA-F]{24}(?![0-9A-Fa-f])")
# Query parameters that carry secrets: a file's key hash, a signed link's signature, tokens.
_SECRET_PARAM = re.compile(r"(?<![A-Za-z0-9_])((?:keyHash|key|sig|signature|token|access_token|_xsrf)=)"
                           r"[^&\s'\"<>]+", re.IGNORECASE)
# API tokens (security.TOKEN_PREFIX) wherever they appear, and credentials quoted from a bad header.
_API_TOKEN = re.compile(r"lkr_[A-Za-z0-9_\-]{8,}")
_CREDENTIALS = re.compile(r"\b(Basic|Bearer)\s+[A-Za-z0-9+/=._~\-]+", re.IGNORECASE)


def loggable_path(path: str) -> str:
    """A request path as logs show it: capability ids shortened (the query string is never passed in)."""
    return _CAPABILITY_ID.sub(r"\1...", path)


def redact(text: str) -> str:
    """`text` with secret query parameters, API tokens and capability ids blanked or shortened."""
    text = _SECRET_PARAM.sub(r"\1[redacted]", text)
    text = _CREDENTIALS.sub(r"\1 [redacted]", text)
    text = _API_TOKEN.sub("lkr_[redacted]", text)
    return _CAPABILITY_ID.sub(r"\1...", text)


class RedactingFormatter(logging.Formatter):
    """The server's log format, with `redact` applied to the whole line and its traceback.

    Tornado's signed-cookie warnings ("Expired cookie %r") print the cookie, which holds a web session's
    API token (base64, so `redact` cannot recognise it): their value is left out.
    """

    def format(self, record: logging.LogRecord) -> str:
        if record.name == "tornado.general" and record.args and "cookie" in str(record.msg).lower():
            record = logging.makeLogRecord({**record.__dict__, "args": ("(value not logged)",)})
        return redact(super().format(record))


def configure_server_logging(level: str, stream: TextIO) -> None:
    """The `serve` command's logging: one redacting stream handler; SQL statements (peewee's debug lines,
    with key hashes and ids as parameters) are never logged."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                                            datefmt="%Y-%m-%d %H:%M:%S"))
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler])
    logging.getLogger("tornado.access").setLevel(logging.WARNING)
    logging.getLogger("peewee").setLevel(logging.INFO)
