"""Whole numbers read from requests (headers, query parameters, cursors): ASCII digits within 64 bits."""

from __future__ import annotations

import re

# SQLite integers are signed 64-bit; every size, offset, id and cursor the server stores fits in one.
MAX_INT64 = 2**63 - 1
# Not str.isdigit() nor the regex \d: they also take '²' or '٣' (int() refuses the first, takes the
# second), and int() alone takes ' 5', '1_0' and '+5'.
_DIGITS = re.compile(r"[0-9]+")


def parse_count(text: str | None, maximum: int = MAX_INT64) -> int | None:
    """The value of `text` when it is ASCII digits (surrounding spaces allowed) no larger than `maximum`;
    None for anything else, so each caller answers with its own 400. Past 64 bits int() would feed SQLite
    an OverflowError, and past 4300 digits raise a ValueError of its own."""
    if text is None:
        return None
    text = text.strip()
    if not _DIGITS.fullmatch(text):
        return None
    value = saturating_count(text)
    return value if value <= maximum else None


def saturating_count(digits: str) -> int:
    """ASCII digits as a number, where anything past 64 bits counts as MAX_INT64 + 1: larger than any
    size, for comparisons such as a Range past the end of a file."""
    significant = digits.lstrip("0") or "0"
    if len(significant) > len(str(MAX_INT64)):
        return MAX_INT64 + 1
    return min(int(significant), MAX_INT64 + 1)
