"""The packaged program's entry point: `lockr-local` exactly as the installed command behaves."""

from __future__ import annotations

import multiprocessing
import sys


def _hide_own_console_on_windows() -> None:
    """Started by a double-click, Windows opens a console just for us: close it while the tray runs.

    Started from a terminal, the console is shared with the shell (more than one process attached),
    so it stays and the output of every command still appears there.
    """
    import ctypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    processes = (ctypes.c_uint * 2)()
    if kernel32.GetConsoleProcessList(processes, 2) == 1:
        kernel32.FreeConsole()
        import os

        # Writes to the detached console would fail; logging goes nowhere instead of crashing the tray.
        sys.stdout = sys.stderr = open(os.devnull, "w")


def run() -> int:
    multiprocessing.freeze_support()  # a no-op unless a library starts worker processes
    if sys.platform == "win32" and len(sys.argv) == 1:
        _hide_own_console_on_windows()
    from lockr_local.cli import main

    return main()


if __name__ == "__main__":
    sys.exit(run())
