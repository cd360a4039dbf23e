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

# Characters that reorder or hide text (U+202E makes "gpj.exe" read as "exe.jpg", U+2060 or U+00AD make
# two names that look the same) are refused: every format character (category Cf: bidi controls, zero
# widths, word joiner, soft hyphen, BOM, tags...), line and paragraph separators, and the invisible
# letters and marks of Unicode's Default_Ignorable_Code_Point list. Three kinds are kept where writing
# needs them (RFC 5892's CONTEXTJ rules, plus emoji): ZWJ/ZWNJ after a virama (Hindi 'क्‍ष') or between
# letters of a joining script (Persian 'می‌خواهم') and ZWJ between emoji (👨‍👩‍👧); variation selectors
# right after a visible character (❤️); tag characters inside an emoji flag sequence (🏴 + tags + CANCEL).
_ZWNJ, _ZWJ = "\u200c", "\u200d"
_VIRAMA = 9  # canonical combining class of the viramas of Indic scripts
_CANCEL_TAG = 0xE007F
_FLAG = 0x1F3F4  # 🏴, the base of emoji tag sequences (subdivision flags)
# Default_Ignorable_Code_Point characters that are not category Cf (DerivedCoreProperties.txt): the
# combining grapheme joiner, Hangul fillers, Khmer inherent vowels, unassigned ignorables.
_INVISIBLE = ((0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x3164, 0x3164), (0xFFA0, 0xFFA0),
              (0xFFF0, 0xFFF8), (0xE0000, 0xE0FFF))
_VARIATION_SELECTORS = ((0x180B, 0x180D), (0x180F, 0x180F), (0xFE00, 0xFE0F), (0xE0100, 0xE01EF))
# Scripts whose letters join (Arabic with its supplements and presentation forms, Syriac, N'Ko, Mandaic,
# Mongolian, Hanifi Rohingya, Sogdian...): ZWNJ/ZWJ between two of their letters chooses a letter form.
_JOINING_SCRIPTS = ((0x0600, 0x07FF), (0x0840, 0x08FF), (0x1800, 0x18AF), (0xA840, 0xA87F),
                    (0xFB50, 0xFDFF), (0xFE70, 0xFEFF), (0x10AC0, 0x10AFF), (0x10B80, 0x10BAF),
                    (0x10D00, 0x10D3F), (0x10F30, 0x10FFF), (0x1E900, 0x1E95F))
# Printable ASCII holds no control, format or invisible character: a name made only of it (most are) skips
# the per-character Unicode checks of normalize_name, which cost a small upload more than its hashing.
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")
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
    if not _PRINTABLE_ASCII.fullmatch(name):
        _check_characters(name)
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


def _check_characters(name: str) -> None:
    """Refuses control characters and characters that hide or reorder text (see _first_hidden_character)."""
    for char in name:
        if char == "\x00":
            raise InvalidName("The file name contains a NUL character.")
        if char in "\r\n":
            raise InvalidName("The file name contains a line break.")
        if unicodedata.category(char) in ("Cc", "Cs"):
            raise InvalidName(f"The file name contains the control character U+{ord(char):04X}.")
    hidden = _first_hidden_character(name)
    if hidden is not None:
        raise InvalidName(f"The file name contains U+{ord(hidden):04X} ({unicodedata.name(hidden, 'unnamed')}), "
                          "an invisible or text-reordering character, where no script needs it.")


def _within(char: str, ranges: tuple[tuple[int, int], ...]) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in ranges)


def _is_emoji(char: str) -> bool:
    """Pictographs, their skin-tone modifiers, and the symbols (♀, ❤, ⚕) emoji ZWJ sequences join."""
    return 0x1F000 <= ord(char) <= 0x1FAFF or unicodedata.category(char) == "So"


def _joining_letter(char: str) -> bool:
    return unicodedata.category(char).startswith("L") and _within(char, _JOINING_SCRIPTS)


def _joiner_allowed(name: str, i: int) -> bool:
    """ZWJ/ZWNJ at name[i]: after a virama, between joining-script letters (marks between them are
    transparent), or (ZWJ only) between two emoji (a variation selector may follow the first)."""
    if i == 0 or i + 1 == len(name):
        return False
    if unicodedata.combining(name[i - 1]) == _VIRAMA:
        return True
    before, after = i - 1, i + 1
    while before > 0 and unicodedata.category(name[before]) == "Mn" and not _within(name[before], _VARIATION_SELECTORS):
        before -= 1
    while after + 1 < len(name) and unicodedata.category(name[after]) == "Mn":
        after += 1
    if _joining_letter(name[before]) and _joining_letter(name[after]):
        return True
    before = i - 1
    while before > 0 and _within(name[before], _VARIATION_SELECTORS):
        before -= 1
    return name[i] == _ZWJ and _is_emoji(name[before]) and _is_emoji(name[i + 1])


def _flag_tags_end(name: str, i: int) -> int | None:
    """For 🏴 at name[i] followed by tag characters ending in CANCEL TAG (an emoji subdivision flag such
    as Scotland's), the index after the CANCEL TAG; else None."""
    end = i + 1
    while end < len(name) and 0xE0020 <= ord(name[end]) <= 0xE007E:
        end += 1
    if end == i + 1 or end == len(name) or ord(name[end]) != _CANCEL_TAG:
        return None
    return end + 1


def _first_hidden_character(name: str) -> str | None:
    """The first character of `name` that hides or reorders text where no script or emoji needs it."""
    i = 0
    while i < len(name):
        char = name[i]
        if ord(char) == _FLAG:
            i = _flag_tags_end(name, i) or i + 1
            continue
        if char in (_ZWJ, _ZWNJ):
            if not _joiner_allowed(name, i):
                return char
        elif _within(char, _VARIATION_SELECTORS):
            # Only right after the visible character it selects a form of; alone it shows nothing.
            previous = name[i - 1] if i else ""
            if (not previous or unicodedata.category(previous)[0] not in "LNSPM"
                    or _within(previous, _VARIATION_SELECTORS)):
                return char
        elif unicodedata.category(char) in ("Cf", "Zl", "Zp") or _within(char, _INVISIBLE):
            return char
        i += 1
    return None


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
