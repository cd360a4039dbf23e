"""The type hints hold: mypy finds no error in the installed package (lockr_local with server, sync and tray),
the same check as `make lint` (tests/typecheck.py), run with the suite so CI holds it."""

from __future__ import annotations

import re

import pytest

from tests.typecheck import CHECKED_PACKAGE, run_mypy

ERROR_LINE = re.compile(r"^(?P<path>[^:\s]+\.py):\d+: error: ")


@pytest.fixture(scope="module")
def mypy_errors() -> dict[str, list[str]]:
    """mypy's errors, by file (one run for the module)."""
    status, report = run_mypy()
    errors: dict[str, list[str]] = {}
    for line in report.splitlines():
        match = ERROR_LINE.match(line)
        if match:
            errors.setdefault(match["path"], []).append(line)
    assert status in (0, 1), f"mypy did not run (exit status {status}):\n{report}"
    assert status == 0 or errors, f"mypy failed without naming an error:\n{report}"
    return errors


def test_mypy_finds_no_type_error(mypy_errors: dict[str, list[str]]) -> None:
    found = mypy_errors
    assert not found, f"mypy -p {CHECKED_PACKAGE}:\n" + "\n".join(line for lines in found.values() for line in lines)

