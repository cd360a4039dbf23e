"""A real X desktop for tray tests: Xvfb on a free display, Debian's `trayer` as the tray host, and the
tools to look at it (xwininfo for the window tree, ImageMagick `import` for screenshots)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from typing import Any
from pathlib import Path

from PIL import Image

from tests.helpers import wait_for

ICON_CLASS = "lockr-localSystemTrayIcon"
TOOLS = ("Xvfb", "trayer", "xwininfo", "import")


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


@dataclass(frozen=True)
class TrayWindow:
    """The icon's X window: its id, title (pystray's tooltip) and absolute geometry."""

    id: str
    title: str
    x: int
    y: int
    width: int
    height: int


# The gtk backend's windows carry the WM_CLASS lockr-local/Lockr-local; the status icon's name is the tooltip.
GTK_LINE = re.compile(r'^\s*(0x[0-9a-f]+) "([^"]*)": \("lockr-local" "Lockr-local"\)\s+(\d+)x(\d+)[+-]-?\d+[+-]-?\d+'
                      r'\s+\+(-?\d+)\+(-?\d+)', re.M)
_TREE_LINE = re.compile(r'^\s*(0x[0-9a-f]+) "(.*)": \("' + ICON_CLASS + r'" "[^"]*"\)\s+(\d+)x(\d+)[+-]-?\d+[+-]-?\d+'
                        r'\s+\+(-?\d+)\+(-?\d+)', re.M)


class Desktop:
    """Xvfb + trayer; `stop()` ends both (the processes this object started, by their own handles)."""

    def __init__(self, folder: Path, with_tray: bool = True) -> None:
        self.folder = folder
        read_end, write_end = os.pipe()
        # -displayfd: Xvfb picks a free display number itself and writes it to the pipe once ready.
        self.xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write_end), "-screen", "0", "480x320x24",
                                      "-nolisten", "tcp"], pass_fds=(write_end,), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            number = pipe.readline().strip()
        if not number:
            self.xvfb.kill()
            raise AssertionError("Xvfb did not report a display number")
        self.display = f":{number}"
        self.env = {**os.environ, "DISPLAY": self.display}
        self.trayer_log = folder / "trayer.log"
        self.trayer_restarts = 0
        self.trayer: subprocess.Popen[bytes] | None = None
        if with_tray:
            self.start_tray()

    def start_tray(self) -> None:
        """Starts trayer and waits for its panel (at most three tries)."""
        self.trayer = self._start_trayer()
        # trayer (GTK 2) now and then dies at start-up on a loaded machine before its panel maps; a person
        # would start it again, and so does the test, keeping what it printed for the failure message.
        for attempt in range(3):
            try:
                wait_for(lambda: self.tray_ready() or self.trayer.poll() is not None, timeout=20,
                         message="trayer's panel on the display")
            except AssertionError:
                self.trayer.kill()
                self.trayer.wait()
            if self.trayer.poll() is None and self.tray_ready():
                return
            self.trayer = self._start_trayer()
            self.trayer_restarts += 1
        self.stop()
        raise AssertionError(f"trayer's panel never appeared on {self.display}: {self.trayer_log.read_text()}")

    def tray_ready(self) -> bool:
        """trayer's panel is mapped and it owns the system tray selection, so an icon started now docks at
        once (pystray's xorg backend asks at start; a later tray is found only by the app's re-dock)."""
        if '"panel"' not in self.tree():
            return False
        from Xlib import display as xdisplay

        connection = xdisplay.Display(self.display)
        try:
            owner = connection.get_selection_owner(connection.intern_atom("_NET_SYSTEM_TRAY_S0"))
            return bool(getattr(owner, "id", owner))
        finally:
            connection.close()

    def _start_trayer(self) -> subprocess.Popen[bytes]:
        with self.trayer_log.open("ab") as log:
            return subprocess.Popen(["trayer", "--edge", "top", "--align", "right", "--widthtype", "pixel",
                                     "--width", "160", "--heighttype", "pixel", "--height", "32",
                                     "--transparent", "false", "--tint", "0x202020", "--SetDockType", "true"],
                                    env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def revive_tray(self) -> bool:
        """Starts trayer again if it died (it does, now and then, on a loaded machine); True if it had."""
        if self.trayer is None or self.trayer.poll() is None:
            return False
        self.trayer = self._start_trayer()
        self.trayer_restarts += 1
        return True

    def describe(self) -> str:
        """What a failure message needs: the icon as the X server sees it and trayer's own words."""
        window = self.icon_window()
        if self.trayer is None:
            state = "not started"
        else:
            state = "running" if self.trayer.poll() is None else f"exited with {self.trayer.returncode}"
        return (f"icon window: {window}; trayer {state}, restarted {self.trayer_restarts} times; "
                f"trayer said: {self.trayer_log.read_text()[-2000:]!r}")

    def wait_for_docked_icon(self, title_part: str = "", timeout: float = 30.0) -> TrayWindow:
        """The icon's window once docked (trayer gave it a real size and place) with `title_part` in its
        title; a trayer that died meanwhile is started again (the icon docks in the new panel)."""
        def docked() -> TrayWindow | None:
            self.revive_tray()
            window = self.icon_window()
            if window is None or title_part not in window.title or window.width <= 1 or window.x < 0:
                return None
            return window

        try:
            return wait_for(docked, timeout=timeout, interval=0.05, message=f"a docked icon titled {title_part!r}")
        except AssertionError as error:
            raise AssertionError(f"{error}; {self.describe()}") from None

    def tree(self) -> str:
        return subprocess.run(["xwininfo", "-root", "-tree"], env=self.env, capture_output=True, text=True,
                              timeout=10).stdout

    def icon_window(self) -> TrayWindow | None:
        match = _TREE_LINE.search(self.tree())
        if not match:
            return None
        wid, title, width, height, x, y = match.groups()
        return TrayWindow(wid, title, int(x), int(y), int(width), int(height))

    def parents(self, window_id: str) -> list[str]:
        """The names of the window's ancestors, nearest first (trayer's is "panel")."""
        names = []
        current = window_id
        for _ in range(10):
            info = subprocess.run(["xwininfo", "-children", "-id", current], env=self.env, capture_output=True,
                                  text=True, timeout=10).stdout
            match = re.search(r'Parent window id: (0x[0-9a-f]+)\s*(?:"([^"]*)")?', info)
            if not match or match.group(1) == "0x0" or "(the root window)" in info.split("Parent window id:")[1].splitlines()[0]:
                break
            current = match.group(1)
            names.append(match.group(2) or "")
        return names

    def screenshot(self, path: Path) -> Image.Image:
        subprocess.run(["import", "-window", "root", str(path)], env=self.env, check=True, timeout=30,
                       capture_output=True)
        return Image.open(path).convert("RGB")

    def icon_pixels(self, shot: Image.Image, window: TrayWindow) -> Image.Image:
        return shot.crop((window.x, window.y, window.x + window.width, window.y + window.height))

    def stop(self) -> None:
        for process in (self.trayer, self.xvfb):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def end_session(proc: subprocess.Popen[Any]) -> None:
    """Ends a process started with start_new_session=True and everything in its session (dbus-run-session
    and the app under it): SIGTERM as a desktop logout would, SIGKILL after 20 s."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def mean_colour(image: Image.Image) -> tuple[float, float, float]:
    """The average colour of the icon's opaque-looking pixels (brighter than trayer's dark tint)."""
    data = image.convert("RGB").tobytes()
    pixels = [p for p in zip(data[0::3], data[1::3], data[2::3]) if max(p) > 80]
    if not pixels:
        return (0.0, 0.0, 0.0)
    count = len(pixels)
    return (sum(p[0] for p in pixels) / count, sum(p[1] for p in pixels) / count, sum(p[2] for p in pixels) / count)


def dominant(image: Image.Image) -> str:
    red, green, blue = mean_colour(image)
    if max(red, green, blue) - min(red, green, blue) < 25:
        return "grey"
    return ("red", "green", "blue")[[red, green, blue].index(max(red, green, blue))]


def gtk_windows(desktop: Desktop) -> list[TrayWindow]:
    """The gtk backend's windows on the display (its status icon and, while open, its menu)."""
    return [TrayWindow(m.group(1), m.group(2), int(m.group(5)), int(m.group(6)), int(m.group(3)), int(m.group(4)))
            for m in GTK_LINE.finditer(desktop.tree())]
