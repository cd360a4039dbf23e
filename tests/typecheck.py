"""Type-checks the code base with mypy as it is installed: `lockr_local` with `server/`, `sync/` and `tray/`
inside it (`python -m tests.typecheck`, run by `make lint` and tests/test_types.py).

The source tree does not have the installed layout: `[tool.setuptools.package-dir]` maps `server/` to
`lockr_local.server` and so on, and an editable install serves that mapping through an import hook that
mypy does not run. So mypy checks `build/typecheck/`, a tree of symbolic links made from the same
mapping (`lockr_local/` holds links to every entry of the source `lockr_local/`, and `server`, `sync` and
`tray` are links to those folders), remade on every run so new and removed files are seen. Its report
names the files in the source tree. The settings are `[tool.mypy]` in pyproject.toml.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAYOUT = REPO / "build" / "typecheck"
# What is checked: the installed package, whole (CHECKED_PACKAGE covers server, sync and tray).
CHECKED_PACKAGE = "lockr_local"


def package_dirs() -> dict[str, str]:
    """The package -> source folder mapping of pyproject.toml, the one the installs use."""
    with open(REPO / "pyproject.toml", "rb") as file:
        return dict(tomllib.load(file)["tool"]["setuptools"]["package-dir"])


def _link(link: Path, target: Path) -> None:
    """Makes `link` point at `target`, replacing whatever else is there (another run may race us)."""
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return
    if link.is_symlink() or link.is_file():
        link.unlink()
    try:
        link.symlink_to(target, target_is_directory=target.is_dir())
    except FileExistsError:
        pass


def make_layout(root: Path = LAYOUT) -> None:
    """Makes (or brings up to date) the installed layout of the packages under `root`, as links."""
    for package, folder in sorted(package_dirs().items()):
        source = (REPO / folder).resolve()
        place = root.joinpath(*package.split("."))
        if place.resolve() == source:
            continue  # already there through its parent's link (lockr_local.server.handlers)
        if "." in package:
            _link(place, source)
            continue
        place.mkdir(parents=True, exist_ok=True)
        mapped = {name.split(".")[1] for name in package_dirs() if name.count(".") == 1
                  and name.startswith(package + ".")}
        wanted = {entry.name for entry in source.iterdir() if entry.name != "__pycache__"} | mapped
        for entry in place.iterdir():
            if entry.name not in wanted:
                entry.unlink()  # a file removed from the source tree
        for name in wanted - mapped:
            _link(place / name, source / name)


def source_path(reported: str) -> str:
    """`lockr_local/server/app.py` (a path in the layout) -> `server/app.py` (where the file is)."""
    parts = Path(reported).parts
    for package, folder in sorted(package_dirs().items(), key=lambda item: -item[0].count(".")):
        prefix = tuple(package.split("."))
        if parts[:len(prefix)] == prefix:
            return str(Path(folder, *parts[len(prefix):]))
    return reported


def run_mypy() -> tuple[int, str]:
    """mypy's exit status and its report, with the paths of the source tree."""
    make_layout()
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"), "--no-error-summary",
         "--hide-error-context", "-p", CHECKED_PACKAGE],
        cwd=LAYOUT, capture_output=True, text=True,
    )
    lines = []
    for line in (done.stdout + done.stderr).splitlines():
        path, colon, rest = line.partition(":")
        lines.append(source_path(path) + colon + rest if colon and path.endswith(".py") else line)
    return done.returncode, "\n".join(lines)


def main() -> int:
    status, report = run_mypy()
    if report:
        print(report)
    return status


if __name__ == "__main__":
    sys.exit(main())
