"""packaging/notices.py: the third-party notices shipped with the executable list every bundled library."""

from __future__ import annotations

import importlib.metadata as metadata
import re
import subprocess
import sys
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.helpers import REPO

RULE = "=" * 78


def runtime_requirements() -> list[Requirement]:
    """pyproject.toml's [project] dependencies that apply on this platform."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = [Requirement(line) for line in project["dependencies"]]
    return [r for r in requirements if r.marker is None or r.marker.evaluate({"extra": ""})]


@pytest.fixture(scope="module")
def notices(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str]]:
    """The script run into a temp folder: {canonical name: (header line, section text)}."""
    output = tmp_path_factory.mktemp("notices") / "THIRD-PARTY-NOTICES.txt"
    result = subprocess.run([sys.executable, str(REPO / "packaging" / "notices.py"), "--output", str(output)],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path_factory.getbasetemp())
    assert result.returncode == 0, result.stderr
    sections = output.read_text(encoding="utf-8").split(f"\n{RULE}\n")[1:]
    parsed = {}
    for section in sections:
        header = section.splitlines()[0]
        name = header.rsplit(" ", 1)[0]
        parsed[canonicalize_name(name)] = (header, section)
    return parsed


def test_notices_list_every_runtime_dependency_with_its_version_and_license_text(notices) -> None:
    for requirement in runtime_requirements():
        key = canonicalize_name(requirement.name)
        assert key in notices, f"{requirement.name} is missing from the notices"
        header, section = notices[key]
        assert header.endswith(" " + metadata.version(requirement.name)), header
        license_line = section.splitlines()[1]
        assert license_line.startswith("License: ") and len(license_line) > len("License: "), license_line
        texts = re.split(r"^--- [^\n]+ ---$", section, flags=re.MULTILINE)[1:]
        # A license text, not a one-line pointer (a NOTICE file may be short; the license is not).
        assert any(len(text.strip()) > 300 for text in texts), f"{requirement.name} has no license text"


def test_notices_include_transitive_dependencies_and_python(notices) -> None:
    # requests brings urllib3, idna and certifi; keyring brings jaraco.*: all are in the executable.
    for name in ("urllib3", "idna", "certifi", "charset-normalizer", "jaraco-classes", "python"):
        assert canonicalize_name(name) in notices, name
    assert "PSF" in notices["python"][1].splitlines()[1]
    # What only the tests or the build use is not bundled.
    for name in ("pytest", "playwright", "moto", "pyinstaller", "lockr-local"):
        assert canonicalize_name(name) not in notices, name


def test_notices_list_the_postgresql_and_s3_drivers_the_executable_bundles(notices) -> None:
    """The executable runs a node as is: the `postgres` and `s3` extras are in it, so are their licenses."""
    for name in ("psycopg", "psycopg-binary", "boto3", "botocore", "s3transfer", "jmespath", "python-dateutil",
                 "six"):
        key = canonicalize_name(name)
        assert key in notices, f"{name} is missing from the notices"
        header, section = notices[key]
        assert header.endswith(" " + metadata.version(name)), header
        texts = re.split(r"^--- [^\n]+ ---$", section, flags=re.MULTILINE)[1:]
        assert any(len(text.strip()) > 300 for text in texts), f"{name} has no license text"
    assert "Apache" in notices["botocore"][1].splitlines()[1]
    # libpq and the libraries beside it in psycopg's binary wheel are not Python distributions: listed by file.
    header, section = notices[canonicalize_name("Native libraries in psycopg-binary")]
    assert header.endswith(" " + metadata.version("psycopg-binary")), header
    assert "PostgreSQL" in section.splitlines()[1]
    assert re.search(r"^  libpq[-.]\S*: libpq \(PostgreSQL client library\), PostgreSQL;", section, re.MULTILINE), section
    assert "THE UNIVERSITY OF CALIFORNIA SPECIFICALLY DISCLAIMS ANY WARRANTIES" in section
    assert "(not identified)" not in section, "a library in psycopg's wheel that NATIVE_LIBRARIES does not know"


@pytest.mark.parametrize("name, license_word", [
    ("certifi", "MPL"),
    ("pystray", "LGPL"),
    ("tqdm", "MPL"),
    ("psycopg", "LGPL"),
])
def test_lgpl_and_mpl_libraries_carry_a_note_where_their_source_is(notices, name: str, license_word: str) -> None:
    header, section = notices[canonicalize_name(name)]
    version = metadata.version(name)
    assert license_word in section.splitlines()[1]
    assert f"https://pypi.org/project/{metadata.metadata(name)['Name']}/{version}/#files" in section


def test_every_copyleft_entry_has_the_source_note_and_no_other_does(notices) -> None:
    copyleft = re.compile(r"\b(LGPL|MPL)|Lesser General Public|Mozilla Public", re.IGNORECASE)
    for key, (header, section) in notices.items():
        license_line = section.splitlines()[1]
        noted = "https://pypi.org/project/" in section.split("\n--- ", 1)[0]
        assert noted == bool(copyleft.search(license_line)), (header, license_line)


@pytest.mark.exe
def test_the_built_program_carries_the_notices_inside_and_beside_it(executable) -> None:
    beside = executable.parent / "THIRD-PARTY-NOTICES.txt"
    assert beside.is_file() and "pystray" in beside.read_text(encoding="utf-8")
    if executable.parent.name == "dist":  # one file (Linux): the notices are in its archive too
        from PyInstaller.archive.readers import CArchiveReader
        assert "THIRD-PARTY-NOTICES.txt" in CArchiveReader(str(executable)).toc
