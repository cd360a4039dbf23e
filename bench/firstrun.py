"""Group `firstrun`: the packaged desktop app's first run, from starting it to a small folder in sync.

The same drive as tests/packaging/test_first_run.py (tests/packaging/first_run.py): `dist/lockr-local`
started with nothing configured under Xvfb with trayer as the tray host, its setup page filled in by
headless Chromium, the clock stopped when every file is listed on the server and the docked icon is
green. Against a `lockr-local serve` of the source tree with the default (memory-hard) password hashing;
a fresh account per run. Skipped with a note when the executable is not built (`make exe`) or Xvfb,
trayer, x11-utils, ImageMagick or Chromium is missing.
"""

from __future__ import annotations

import os
import shutil
import statistics
from pathlib import Path

import requests

from bench.harness import LockrServer, Row, Table

FILES = 20


def unavailable() -> str:
    """Why the group cannot run here ("" when it can)."""
    from tests.packaging.conftest import executable_path
    from tests.tray.desktop import missing_tools
    from tests.web.conftest import CHROMIUM

    if not executable_path().exists():
        return f"{executable_path()} is not built: run `make exe` first"
    missing = missing_tools() + ([] if os.path.exists(CHROMIUM) else [CHROMIUM])
    if missing:
        return f"needs {', '.join(missing)} (apt-get install xvfb trayer x11-utils imagemagick chromium)"
    return ""


def main(work: Path, runs: int, table: Table) -> None:
    reason = unavailable()
    if reason:
        print(f"  (first run of the packaged app skipped: {reason})")
        return
    from tests.packaging.conftest import executable_path, newest_source_mtime
    from tests.packaging.first_run import FirstRun, FirstRunTimes, small_folder
    from tests.tray.desktop import Desktop
    from tests.web.conftest import launched_chromium

    executable = executable_path()
    if executable.stat().st_mtime < newest_source_mtime():
        print(f"  (note: {executable} is older than the sources; `make exe` for a figure of the current code)")
    root = work / "firstrun"
    server = LockrServer(root / "server-data")
    timings: list[FirstRunTimes] = []
    try:
        with launched_chromium() as browser:
            for index in range(runs):
                place = root / f"run-{index}"
                (place / "home").mkdir(parents=True)
                files = small_folder(place / "Lockr", FILES)
                identity = {"username": f"newcomer{index}", "email": f"newcomer{index}@example.com",
                            "password": "first-run-password"}
                signup = requests.post(f"{server.url}/api/v1/account", json=identity, timeout=60)
                signup.raise_for_status()
                desktop = Desktop(place)
                run = FirstRun(executable, place / "home", desktop, browser)
                try:
                    timings.append(run.run(server.url, identity["email"], identity["password"], place / "Lockr",
                                           signup.json()["token"], set(files)))
                    print(f"    run {index + 1}: {timings[-1].describe()}", flush=True)
                finally:
                    code = run.stop()
                    desktop.stop()
                if code != 0:
                    raise RuntimeError(f"the app exited with {code}: {run.log()[-2000:]}")
                shutil.rmtree(place, ignore_errors=True)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    middle = statistics.median(t.in_sync for t in timings)
    typical = min(timings, key=lambda t: abs(t.in_sync - middle))
    table.add(Row(f"first run of the packaged app: start to in sync, {FILES} files", "lockr-local", middle, "s",
                  note=f"median of {len(timings)}; {typical.describe()}"))
