"""The code base stays free of what pyflakes finds (unused imports, undefined names, shadowed fixtures):
the same check as `make lint`, run with the suite so CI holds it."""

from __future__ import annotations

import io

from pyflakes.api import checkRecursive
from pyflakes.reporter import Reporter

from tests.helpers import REPO

CHECKED = ["lockr_local", "server", "sync", "tray", "tests", "bench", "packaging"]


def test_pyflakes_finds_nothing() -> None:
    found, errors = io.StringIO(), io.StringIO()
    count = checkRecursive([str(REPO / part) for part in CHECKED], Reporter(found, errors))
    assert count == 0, found.getvalue() + errors.getvalue()
