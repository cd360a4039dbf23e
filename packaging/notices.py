"""Writes THIRD-PARTY-NOTICES.txt: the licenses of everything the executable bundles.

Run it with the Python that builds the executable (packaging/build.sh does): it walks the installed
distributions lockr-local requires (base dependencies and the `postgres` and `s3` extras, which the
executable bundles so that it runs a node as is; markers evaluated for this platform, so each release
leg lists what it really bundles), then the native libraries psycopg's binary wheel carries (libpq and
its own dependencies), the Python runtime and PyInstaller's bootloader.
Each entry has the name, version, license and the full text of the distribution's license files.
LGPL and MPL libraries also say where their source is, as those licenses ask of a binary distribution.

    python packaging/notices.py [--output PATH]   (default: build/exe/THIRD-PARTY-NOTICES.txt)
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import re
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT_DISTRIBUTION = "lockr-local"
# The root's extras the executable carries (packaging/lockr-local.spec requires their drivers): PostgreSQL
# and bucket regions. `test`, `package` and `bench` are not in it.
BUNDLED_EXTRAS = ("postgres", "s3")
DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "build" / "exe" / "THIRD-PARTY-NOTICES.txt"
# License files by name, wherever they sit in the distribution (dist-info, dist-info/licenses, a package).
LICENSE_NAME = re.compile(r"^(LICEN[CS]E|COPYING|NOTICE|AUTHORS)", re.IGNORECASE)
# Weak-copyleft licenses whose terms reach a binary that bundles the library: say where the source is.
COPYLEFT = re.compile(r"\b(LGPL|MPL)|Lesser General Public|Library General Public|Mozilla Public", re.IGNORECASE)
RULE = "=" * 78


@dataclass
class Notice:
    """One bundled component: what it is, under which license, and the license texts it ships."""

    name: str
    version: str
    license: str
    texts: list[tuple[str, str]] = field(default_factory=list)  # (file name, text)
    note: str = ""

    @property
    def copyleft(self) -> bool:
        return bool(COPYLEFT.search(self.license))


def runtime_distributions(root: str = ROOT_DISTRIBUTION,
                          root_extras: tuple[str, ...] = BUNDLED_EXTRAS) -> list[metadata.Distribution]:
    """Every installed distribution `root` needs at run time, transitively, without `root` itself.

    Base requirements count, and those of the root's `root_extras` (other extras such as `test` or
    `package` are not in the executable); environment markers are evaluated for this interpreter and
    platform. A requirement that applies here but is not installed is an error: the executable would be
    missing it too.
    """
    seen: dict[str, metadata.Distribution] = {}
    pending = [(root, metadata.distribution(root))]
    while pending:
        parent, dist = pending.pop()
        extras = ("", *root_extras) if parent == root else ("",)
        for line in dist.requires or ():
            requirement = Requirement(line)
            if requirement.marker is not None and not any(requirement.marker.evaluate({"extra": extra})
                                                          for extra in extras):
                continue
            key = canonicalize_name(requirement.name)
            if key in seen or key == canonicalize_name(root):
                continue
            try:
                found = metadata.distribution(requirement.name)
            except metadata.PackageNotFoundError:
                raise SystemExit(f"notices.py: {parent} requires {requirement}, which is not installed") from None
            seen[key] = found
            pending.append((requirement.name, found))
            # The extras a requirement asks for (requests[socks]) bring their own dependencies.
            for extra in requirement.extras:
                for extra_line in found.requires or ():
                    extra_requirement = Requirement(extra_line)
                    if extra_requirement.marker is not None and extra_requirement.marker.evaluate({"extra": extra}) \
                            and not extra_requirement.marker.evaluate({"extra": ""}):
                        try:
                            extra_dist = metadata.distribution(extra_requirement.name)
                        except metadata.PackageNotFoundError:
                            raise SystemExit(f"notices.py: {requirement} requires {extra_requirement}, "
                                             "which is not installed") from None
                        if canonicalize_name(extra_requirement.name) not in seen:
                            seen[canonicalize_name(extra_requirement.name)] = extra_dist
                            pending.append((extra_requirement.name, extra_dist))
    return sorted(seen.values(), key=lambda d: canonicalize_name(d.metadata["Name"]))


def license_of(dist: metadata.Distribution) -> str:
    """The SPDX expression if declared, else the free-text License field, else the license classifiers."""
    meta = dist.metadata
    expression = (meta.get("License-Expression") or "").strip()
    if expression:
        return expression
    text = (meta.get("License") or "").strip()
    if text and text.upper() != "UNKNOWN":
        # Some projects paste the whole license into this field: its first line names it well enough.
        first = text.splitlines()[0].strip()
        return first if len(text) < 200 else f"{first} (full text below)"
    return classifiers_license(dist) or "not declared (see the texts below)"


def license_texts(dist: metadata.Distribution) -> list[tuple[str, str]]:
    """The distribution's license files: those under a licenses/ folder or named LICENSE*, COPYING*, NOTICE*."""
    texts = []
    for path in dist.files or ():
        parts = path.parts
        in_licenses = any(part.lower() in ("licenses", "license_files") for part in parts[:-1])
        if not (in_licenses or LICENSE_NAME.match(path.name)) or path.suffix in (".py", ".pyc", ".pyi"):
            continue
        located = Path(str(dist.locate_file(path)))
        if located.is_file():
            texts.append((str(path), located.read_text(encoding="utf-8", errors="replace").strip()))
    return texts


def source_note(name: str, version: str) -> str:
    return (f"This library is distributed under a license that asks for its source to be available. "
            f"The source of the exact version bundled is published on PyPI:\n"
            f"  https://pypi.org/project/{name}/{version}/#files (the source distribution, .tar.gz)\n"
            f"  https://files.pythonhosted.org/packages/source/{name[0]}/{name}/ (the same files)\n"
            f"It is bundled unmodified, as Python modules you may replace: build the executable yourself "
            f"with a modified copy installed (`make exe`, see packaging/README.md in lockr-local's source).")


def dist_notice(dist: metadata.Distribution) -> Notice:
    name, version = dist.metadata["Name"], dist.version
    notice = Notice(name, version, license_of(dist), license_texts(dist))
    classifiers = classifiers_license(dist)
    # A vague License field ("see LICENSE") can hide an LGPL classifier: name it then.
    if not notice.copyleft and not dist.metadata.get("License-Expression") and COPYLEFT.search(classifiers):
        notice.license += f" ({classifiers})"
    if notice.copyleft:
        notice.note = source_note(name, version)
    return notice


def classifiers_license(dist: metadata.Distribution) -> str:
    return "; ".join(c.split("::")[-1].strip() for c in dist.metadata.get_all("Classifier") or ()
                     if c.startswith("License ::"))


# The shared libraries psycopg-binary's wheel carries beside its extension (psycopg_binary.libs on Linux and
# Windows, psycopg_binary/.dylibs on macOS), which PyInstaller bundles with it: (file name pattern,
# component, license, where its license text and source are).
NATIVE_LIBRARIES = (
    (r"^(lib)?pq\b|^libpq", "libpq (PostgreSQL client library)", "PostgreSQL",
     "https://www.postgresql.org/about/licence/ (text below); source https://www.postgresql.org/ftp/source/"),
    (r"^lib(ssl|crypto)", "OpenSSL", "Apache-2.0",
     "https://www.openssl.org/source/license.html (Apache-2.0 text: see botocore's LICENSE.txt above)"),
    (r"^lib(gssapi_krb5|krb5|krb5support|k5crypto)\b|^libcom_err-\w+\.so\.3", "MIT Kerberos", "MIT (krb5)",
     "https://web.mit.edu/kerberos/krb5-latest/doc/mitK5license.html"),
    (r"^libcom_err", "libcom_err (e2fsprogs)", "MIT",
     "https://github.com/tytso/e2fsprogs/blob/master/lib/et/com_err.c"),
    (r"^lib(ldap|lber)", "OpenLDAP client libraries", "OLDAP-2.8",
     "https://www.openldap.org/software/release/license.html"),
    (r"^libsasl2", "Cyrus SASL", "BSD-Attribution-HPND-disclaimer",
     "https://github.com/cyrusimap/cyrus-sasl/blob/master/COPYING"),
    (r"^libkeyutils", "keyutils", "LGPL-2.1-or-later",
     "https://git.kernel.org/pub/scm/linux/kernel/git/dhowells/keyutils.git (source and LICENCE.LGPL)"),
    (r"^libcrypt\b|^libcrypt-", "libcrypt (GNU C Library)", "LGPL-2.1-or-later",
     "https://www.gnu.org/licenses/old-licenses/lgpl-2.1.html; source https://ftp.gnu.org/gnu/glibc/"),
)
LIBRARY_FILE = re.compile(r"\.(so(\.\d+)*|dylib|dll)$", re.IGNORECASE)
POSTGRESQL_LICENSE = """PostgreSQL Database Management System
(also known as Postgres, formerly known as Postgres95)

Portions Copyright (c) 1996-2025, The PostgreSQL Global Development Group

Portions Copyright (c) 1994, The Regents of the University of California

Permission to use, copy, modify, and distribute this software and its
documentation for any purpose, without fee, and without a written agreement
is hereby granted, provided that the above copyright notice and this
paragraph and the following two paragraphs appear in all copies.

IN NO EVENT SHALL THE UNIVERSITY OF CALIFORNIA BE LIABLE TO ANY PARTY FOR
DIRECT, INDIRECT, SPECIAL, INCIDENTAL, OR CONSEQUENTIAL DAMAGES, INCLUDING
LOST PROFITS, ARISING OUT OF THE USE OF THIS SOFTWARE AND ITS
DOCUMENTATION, EVEN IF THE UNIVERSITY OF CALIFORNIA HAS BEEN ADVISED OF THE
POSSIBILITY OF SUCH DAMAGE.

THE UNIVERSITY OF CALIFORNIA SPECIFICALLY DISCLAIMS ANY WARRANTIES,
INCLUDING, BUT NOT LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY
AND FITNESS FOR A PARTICULAR PURPOSE.  THE SOFTWARE PROVIDED HEREUNDER IS
ON AN "AS IS" BASIS, AND THE UNIVERSITY OF CALIFORNIA HAS NO OBLIGATIONS TO
PROVIDE MAINTENANCE, SUPPORT, UPDATES, ENHANCEMENTS, OR MODIFICATIONS."""


def native_libraries_notice(distribution: str = "psycopg-binary") -> Notice | None:
    """libpq and the libraries it links, as psycopg's binary wheel ships them (not Python distributions
    of their own, so the walk above does not see them): each file, its component and license."""
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return None
    files = sorted({path.name for path in dist.files or ()
                    if LIBRARY_FILE.search(path.name) and any(part.endswith((".libs", ".dylibs")) for part in path.parts)})
    if not files:
        return None
    rows, found = [], set()
    for name in files:
        component, spdx, where = next(((component, spdx, where) for pattern, component, spdx, where
                                       in NATIVE_LIBRARIES if re.search(pattern, name)),
                                      ("(not identified)", "see psycopg's build", "https://www.psycopg.org/"))
        rows.append(f"  {name}: {component}, {spdx}; {where}")
        found.add(spdx)
    # In the table's order (libpq first), then anything the table does not know.
    licenses = [spdx for _, _, spdx, _ in NATIVE_LIBRARIES if spdx in found]
    licenses += sorted(found - set(licenses))
    notice = Notice(f"Native libraries in {dist.metadata['Name']}", dist.version, ", ".join(dict.fromkeys(licenses)),
                    [("libpq: the PostgreSQL License", POSTGRESQL_LICENSE)])
    notice.note = ("psycopg's binary wheel carries libpq and the libraries libpq links, built by psycopg's wheel "
                   "build from their projects' releases or taken from its build image (the wheel's auditwheel "
                   "SBOM names those); PyInstaller bundles them unmodified:\n" + "\n".join(rows))
    if notice.copyleft:
        notice.note += ("\nThe LGPL ones may be replaced: they are separate shared libraries. The wheel they come "
                        f"from: https://pypi.org/project/{dist.metadata['Name']}/{dist.version}/#files; their "
                        "source is published by their projects at the addresses above.")
    return notice


def python_notice() -> Notice:
    """The Python interpreter and standard library, which the executable carries."""
    version = ".".join(map(str, sys.version_info[:3]))
    candidates = [Path(sysconfig.get_paths()["stdlib"]) / "LICENSE.txt", Path(sys.base_prefix) / "LICENSE.txt"]
    texts = [(f"Python {version} {path.name}", path.read_text(encoding="utf-8", errors="replace").strip())
             for path in candidates if path.is_file()][:1]
    return Notice("Python", version, "PSF-2.0 (Python Software Foundation License Version 2)", texts,
                  "" if texts else "The license text is at https://docs.python.org/3/license.html")


def bootloader_notice() -> Notice | None:
    """PyInstaller's bootloader is compiled into the executable (GPL-2.0-or-later WITH its Bootloader exception)."""
    try:
        dist = metadata.distribution("pyinstaller")
    except metadata.PackageNotFoundError:
        return None
    return Notice(f"PyInstaller bootloader ({dist.metadata['Name']})", dist.version,
                  "GPL-2.0-or-later WITH Bootloader-exception", license_texts(dist),
                  "The bootloader exception allows distributing the bootloader with programs under any license.")


def render(notices: list[Notice]) -> str:
    lines = ["THIRD-PARTY NOTICES for lockr-local",
             "",
             "The lockr-local executable bundles the software listed here. lockr-local itself is under the MIT",
             "license (LICENSE in its source). Each component keeps its own license, reproduced in full below.",
             "",
             "Components:"]
    lines += [f"  {n.name} {n.version}: {n.license}{'  [source: see its entry]' if n.copyleft else ''}"
              for n in notices]
    for notice in notices:
        lines += ["", RULE, f"{notice.name} {notice.version}", f"License: {notice.license}"]
        if notice.note:
            lines += ["", notice.note]
        if not notice.texts:
            lines += ["", "(This distribution ships no license file; its declared license is above.)"]
        for filename, text in notice.texts:
            lines += ["", f"--- {filename} ---", "", text]
    return "\n".join(lines) + "\n"


def collect() -> list[Notice]:
    notices = [dist_notice(dist) for dist in runtime_distributions()]
    libraries = native_libraries_notice()
    if libraries is not None:
        notices.append(libraries)
    notices.append(python_notice())
    bootloader = bootloader_notice()
    if bootloader is not None:
        notices.append(bootloader)
    return notices


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", "-o", type=Path, default=DEFAULT_OUTPUT, help="where to write the notices")
    args = parser.parse_args(argv)
    notices = collect()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(notices), encoding="utf-8")
    print(f"wrote {args.output}: {len(notices)} components, "
          f"{sum(n.copyleft for n in notices)} with a source note (LGPL/MPL)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
