"""Mounting forgetfs and cutting its power: `PowerCutMount(state, mountpoint)` from tests and the harness.

Each mount runs the daemon (tests/powercut/forgetfs.py) as its own process. `cut(mode, seed)` is the
power cut: whatever still has the store open must be dead first (the harness SIGKILLs the server); the
daemon is unmounted, works out what the disk holds after the cut, and a new daemon mounts that image, as
a machine reboots. `unmount()` is a clean shutdown: everything written becomes durable.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.helpers import REPO, wait_for


def fuse_missing() -> str:
    """Why FUSE cannot run here ('' when it can): the reason a test skips."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is absent (no FUSE in this kernel or container)"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is not installed (Debian package fuse3)"
    try:
        importlib.import_module("mfusepy")  # loads libfuse3
    except (ImportError, OSError) as exc:
        return f"mfusepy or libfuse3 cannot be loaded: {exc}"
    return ""


def _terminate_with_parent() -> None:
    """In the daemon before it starts: SIGTERM (which unmounts) when the test process dies, so a killed
    test run leaves no mount behind (Linux prctl PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)


class PowerCutMount:
    """One forgetfs store (`state`, a real folder) mounted at `mountpoint`, with power cuts on demand."""

    def __init__(self, state: Path, mountpoint: Path) -> None:
        self.state = state
        self.mountpoint = mountpoint
        self.log_path = state.parent / f"{state.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.cuts: dict[str, int] = {}

    def __enter__(self) -> "PowerCutMount":
        return self.mount()

    def __exit__(self, *exc: Any) -> None:
        self.unmount()

    def mount(self) -> "PowerCutMount":
        self.state.mkdir(parents=True, exist_ok=True)
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "tests.powercut.forgetfs", str(self.state),
                                          str(self.mountpoint)], stdout=log, stderr=log, cwd=REPO,
                                         preexec_fn=_terminate_with_parent)
        try:
            wait_for(lambda: self.proc.poll() is not None or os.path.ismount(self.mountpoint), timeout=30,
                     message=f"forgetfs to mount {self.mountpoint}")
        except AssertionError:
            self._stop_daemon()
            raise
        if not os.path.ismount(self.mountpoint):
            raise AssertionError(f"forgetfs exited with {self.proc.returncode} before mounting; {self.log()}")
        return self

    def cut(self, mode: str = "drop", seed: int | None = None) -> dict[str, Any]:
        """Cuts the power, then boots again; returns the daemon's report of what was lost."""
        (self.state / "cut.json").write_text(json.dumps({"mode": mode, "seed": seed}))
        report = self._unmount()
        self.cuts[mode] = self.cuts.get(mode, 0) + 1
        self.mount()
        return report

    def unmount(self) -> dict[str, Any]:
        """A clean shutdown; safe to call when not mounted."""
        (self.state / "cut.json").unlink(missing_ok=True)
        if self.proc is None:
            return {}
        return self._unmount()

    def _unmount(self) -> dict[str, Any]:
        assert self.proc is not None, "not mounted"
        # A killed process's descriptors are released asynchronously: busy for a moment is normal.
        deadline = time.monotonic() + 5
        while os.path.ismount(self.mountpoint):
            done = subprocess.run(["fusermount3", "-u", str(self.mountpoint)], capture_output=True)
            if done.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if os.path.ismount(self.mountpoint):
            # Still busy (a test left a file open): detach it and stop the daemon, which still saves its state.
            subprocess.run(["fusermount3", "-u", "-z", str(self.mountpoint)], capture_output=True)
            self.proc.send_signal(signal.SIGTERM)
        self._stop_daemon()
        if self.proc.returncode != 0:
            raise AssertionError(f"forgetfs exited with {self.proc.returncode}; {self.log()}")
        self.proc = None
        report_path = self.state / "report.json"
        return json.loads(report_path.read_text()) if report_path.exists() else {}

    def _stop_daemon(self) -> None:
        assert self.proc is not None
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            subprocess.run(["fusermount3", "-u", "-z", str(self.mountpoint)], capture_output=True)

    def log(self) -> str:
        """The daemon's log (its errors, and tracebacks of failed operations)."""
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""
