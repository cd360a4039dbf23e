"""Validation and normalisation of object names, key hashes and ids shared by server and clients."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote

from lockr_local.errors import BadRequest, InvalidName

# Whole names may be as long as S3 keys (1024 bytes) so a bucket migrates as is; each folder or
# file name within stays within what every filesystem allows.
MAX_NAME_BYTES = 1024
MAX_SEGMENT_BYTES = 255

# Characters that reorder or hide text (U+202E makes "gpj.exe" read as "exe.jpg") or are invisible.
_DECEPTIVE = set(
    "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff"
)
_HEX64 = re.compile(r"[0-9a-f]{64}")
_FILE_ID = re.compile(r"[0-9a-f]{32}")


def normalize_name(raw: str) -> str:
    """Returns the NFC form of a valid object name or raises InvalidName saying what is wrong.

    Names may contain '/' (shown as folders in WebDAV and by the sync agent) but never a leading
    '/', empty, '.' or '..' segments, backslashes, control characters or deceptive format characters.
    """
    if not isinstance(raw, str):
        raise InvalidName("The file name must be a string.")
    name = unicodedata.normalize("NFC", raw)
    if not name:
        raise InvalidName("The file name is empty.")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise InvalidName(f"The file name is longer than {MAX_NAME_BYTES} bytes.")
    for char in name:
        if char == "\x00":
            raise InvalidName("The file name contains a NUL character.")
        if char in "\r\n":
            raise InvalidName("The file name contains a line break.")
        if unicodedata.category(char) in ("Cc", "Cs") or char in _DECEPTIVE:
            raise InvalidName(f"The file name contains the control character U+{ord(char):04X}.")
    if "\\" in name:
        raise InvalidName("The file name contains a backslash; use '/' between folders.")
    if name.startswith("/"):
        raise InvalidName("The file name starts with '/'; give a relative name such as 'docs/a.pdf'.")
    if name.endswith("/"):
        raise InvalidName("The file name ends with '/'; name a file, not a folder.")
    for segment in name.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidName("The file name contains an empty, '.' or '..' path segment.")
        if segment != segment.strip():
            raise InvalidName("A path segment of the file name starts or ends with a space.")
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise InvalidName(f"A folder or file name within the name is longer than {MAX_SEGMENT_BYTES} bytes.")
    return name


def decode_header_name(header_value: str) -> str:
    """Decodes an `x-file-name` header: raw UTF-8 (which HTTP delivers as latin-1) or percent-encoded."""
    try:
        text = header_value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        text = header_value
    if "%" in text:
        try:
            text = unquote(text, encoding="utf-8", errors="strict")
        except UnicodeDecodeError as exc:
            raise InvalidName("The percent-encoded file name is not valid UTF-8.") from exc
    return normalize_name(text)


def validate_key_hash(value: object) -> str:
    """A keyHash is the lowercase hex SHA-256 of the key phrase: 64 hex characters."""
    if not isinstance(value, str) or not _HEX64.fullmatch(value.lower()):
        raise BadRequest("keyHash must be the SHA-256 of the key phrase as 64 hex characters.",
                         field="keyHash")
    return value.lower()


def is_file_id(value: str) -> bool:
    """File and session ids are 128-bit random values written as 32 lowercase hex characters."""
    return bool(_FILE_ID.fullmatch(value))


def validate_content_type(value: object) -> str:
    """A MIME type such as 'application/pdf'; anything unusable falls back to octet-stream."""
    if not isinstance(value, str) or not value.strip():
        return "application/octet-stream"
    value = value.strip()
    if len(value) > 255 or not re.fullmatch(r"[\x21-\x7e]+/[\x21-\x7e]+(\s*;[\x20-\x7e]*)?", value):
        raise BadRequest("The content type must look like 'application/pdf'.", field="type")
    return value
