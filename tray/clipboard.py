"""Copying a share link to the clipboard without a GUI toolkit in the tray process.

The platform's own tool when there is one (wl-copy on Wayland, xclip or xsel on X11, pbcopy on macOS,
clip on Windows). Otherwise a short-lived helper process (`python -m lockr_local.tray.clipboard TEXT`)
owns the X11 CLIPBOARD through Tk and stays alive until another program takes the clipboard or ten
minutes pass: on X11 the clipboard is served by its owner, so the owner must outlive the copy, and
a separate process keeps Tk off the tray's threads.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time

HOLD_SECONDS = 600.0


def copy_commands() -> list[list[str]]:
    """The external tools to try, best first, for the current session."""
    commands: list[list[str]] = []
    if sys.platform == "darwin":
        commands.append(["pbcopy"])
    elif sys.platform == "win32":
        commands.append(["clip"])
    else:
        if os.environ.get("WAYLAND_DISPLAY"):
            commands.append(["wl-copy"])
        if os.environ.get("DISPLAY"):
            commands.append(["xclip", "-selection", "clipboard"])
            commands.append(["xsel", "--clipboard", "--input"])
    return [c for c in commands if shutil.which(c[0])]


def copy_text(text: str) -> str:
    """Puts `text` on the clipboard; returns the tool used. Raises RuntimeError when nothing can."""
    for command in copy_commands():
        try:
            subprocess.run(command, input=text.encode(), check=True, timeout=5,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return command[0]
        except (OSError, subprocess.SubprocessError):
            continue
    if os.environ.get("DISPLAY") and _tk_available():
        helper = [sys.executable, "-m", "lockr_local.tray.clipboard", text]
        if getattr(sys, "frozen", False):
            helper = [sys.executable, "tray", "--hold-clipboard", text]
        process = subprocess.Popen(helper, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        # The helper prints one line once it owns the clipboard, so a paste right after works.
        ready = process.stdout.readline() if process.stdout else b""
        if ready.strip() == b"owned":
            return "tk"
    raise RuntimeError("no clipboard tool: install xclip (X11) or wl-clipboard (Wayland)")


def _tk_available() -> bool:
    # Both halves: Debian ships the tkinter package and its C extension (python3-tk) separately.
    return importlib.util.find_spec("tkinter") is not None and importlib.util.find_spec("_tkinter") is not None


def hold_clipboard(text: str, seconds: float = HOLD_SECONDS) -> int:
    """The helper process: own CLIPBOARD with `text` until someone else takes it or time runs out."""
    import tkinter

    root = tkinter.Tk()
    root.withdraw()
    lost: list[bool] = []
    # Serve the selection ourselves (rather than clipboard_append) so Tk tells us when we lose it.
    root.selection_handle(lambda offset, length: text[int(offset):int(offset) + int(length)], selection="CLIPBOARD")
    root.selection_own(selection="CLIPBOARD", command=lambda: lost.append(True))
    root.update()
    print("owned", flush=True)
    deadline = time.monotonic() + seconds
    while not lost and time.monotonic() < deadline:
        root.update()
        time.sleep(0.05)
    root.destroy()
    return 0


if __name__ == "__main__":
    raise SystemExit(hold_clipboard(sys.argv[1]))
