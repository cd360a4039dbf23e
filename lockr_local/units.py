"""Sizes as people read them: the one formatter the server's messages and pages, the CLI and the tray share."""

from __future__ import annotations


def format_size(n: int) -> str:
    """1_500_000 -> '1.5 MB': decimal units, as the lockr plans state their limits; bytes as a whole number."""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")
