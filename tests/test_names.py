"""Object-name checks: the fast path for printable-ASCII names skips only checks that could not refuse them."""

from __future__ import annotations

import pytest

from lockr_local.errors import InvalidName
from lockr_local.names import _PRINTABLE_ASCII, _check_characters, normalize_name

PRINTABLE_ASCII = "".join(chr(code) for code in range(0x20, 0x7F))


@pytest.mark.parametrize("char", list(PRINTABLE_ASCII))
def test_no_printable_ascii_character_is_one_the_character_checks_refuse(char: str) -> None:
    _check_characters(f"a{char}b")  # what normalize_name skips for a printable-ASCII name refuses none


@pytest.mark.parametrize("name, message", [
    ("tab\there.txt", "control character U+0009"),
    ("del\x7fhere.txt", "control character U+007F"),
    ("nul\x00here.txt", "NUL"),
    ("line\nbreak.txt", "line break"),
    ("invoice\u202egpj.exe", "U+202E"),
    ("a\u00a0b.txt", None),  # NO-BREAK SPACE is past ASCII but visible: accepted through the full check
])
def test_names_past_printable_ascii_still_get_every_check(name: str, message: str | None) -> None:
    assert not _PRINTABLE_ASCII.fullmatch(name)
    if message is None:
        assert normalize_name(name) == name
        return
    with pytest.raises(InvalidName) as refused:
        normalize_name(name)
    assert message in refused.value.message
