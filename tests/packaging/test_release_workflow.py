"""The release workflow and the README's download table agree, and every leg ships the license notices."""

from __future__ import annotations

import fnmatch
import re

import yaml

from tests.helpers import REPO

WORKFLOW = REPO / ".github" / "workflows" / "release.yml"


def build_legs() -> list[dict[str, str]]:
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return workflow["jobs"]["build"]["strategy"]["matrix"]["include"]


def download_rows() -> dict[str, str]:
    """The README's download table: {download name (may hold a *): the whole row}."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Without Python: the ready-made program", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[1].startswith("`lockr-local-"):
            rows[cells[1].strip("`")] = line
    return rows


def row_for(artifact: str, rows: dict[str, str]) -> str | None:
    for name, row in rows.items():
        if fnmatch.fnmatch(artifact, re.sub(r"\.zip$", "", name)):
            return row
    return None


def test_every_release_leg_has_a_readme_download_row_and_every_row_a_leg() -> None:
    legs, rows = build_legs(), download_rows()
    assert rows, "the README's download table was not found"
    for leg in legs:
        assert row_for(leg["artifact"], rows), f"{leg['artifact']} has no row in the README's download table"
    for name in rows:
        assert any(fnmatch.fnmatch(leg["artifact"], re.sub(r"\.zip$", "", name)) for leg in legs), \
            f"the README offers {name}, which no release leg builds"


def test_linux_arm64_leg_builds_on_githubs_arm_runner_for_raspberry_pi() -> None:
    leg = {leg["artifact"]: leg for leg in build_legs()}.get("lockr-local-linux-arm64")
    assert leg is not None, "no linux-arm64 leg in the release workflow"
    assert leg["os"] == "ubuntu-24.04-arm"
    assert leg["exe"] == "dist/lockr-local"  # one file, as on x86_64 Linux
    row = row_for("lockr-local-linux-arm64", download_rows())
    assert row and "Raspberry Pi 4/5" in row and "64-bit" in row and "glibc 2.39+" in row
    assert "chmod +x lockr-local-linux-arm64 && ./lockr-local-linux-arm64" in row


def test_every_leg_uploads_the_third_party_notices_beside_its_download() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    steps = {step.get("name"): step for step in workflow["jobs"]["build"]["steps"]}
    package = steps["Package"]["run"]
    assert 'upload/${{ matrix.artifact }}-THIRD-PARTY-NOTICES.txt' in package
    # build.sh writes the file before PyInstaller runs and the spec bundles it.
    assert "packaging/notices.py --output" in (REPO / "packaging" / "build.sh").read_text(encoding="utf-8")
    assert "datas.append((str(NOTICES)" in (REPO / "packaging" / "lockr-local.spec").read_text(encoding="utf-8")
