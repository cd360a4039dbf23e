"""The files a home server is set up from: the example config, the systemd unit, and the CLI's lazy imports."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lockr_local.config import SETTINGS, load_settings
from tests.helpers import REPO

PACKAGING = REPO / "packaging"
TEST_ONLY_SETTINGS = {"crash_point"}
CLIENT_SIDE_PREFIXES = ("sync_", "tray_", "client_")  # read by `lockr-local sync`/`tray`, not by the server


def test_example_config_shows_every_setting_that_matters_for_a_server() -> None:
    text = (PACKAGING / "example-config.toml").read_text()
    mentioned = set(re.findall(r"^#?\s*([a-z_]+)\s*=", text, flags=re.MULTILINE))
    missing = [s.name for s in SETTINGS if s.name not in mentioned and s.name not in TEST_ONLY_SETTINGS
               and not s.name.startswith(CLIENT_SIDE_PREFIXES)]
    assert not missing, f"example-config.toml does not mention {missing}"


def test_example_config_loads_and_is_safe_to_expose_behind_a_proxy(tmp_path: Path) -> None:
    settings = load_settings({"data_dir": str(tmp_path)}, config_file=str(PACKAGING / "example-config.toml"),
                             env={})
    assert settings.host == "127.0.0.1", "behind a proxy the server listens on loopback only"
    assert settings.public_url.startswith("https://")
    assert "127.0.0.1" in settings.trusted_proxies and "::1" in settings.trusted_proxies
    assert not settings.signup and not settings.guest_uploads


def test_every_commented_setting_in_the_example_config_is_valid_toml_when_uncommented(tmp_path: Path) -> None:
    """Someone will remove the '# ' in front of an example line: it must then load as it reads."""
    text = (PACKAGING / "example-config.toml").read_text()
    uncommented = re.sub(r"^# ([a-z_]+ = )", r"\1", text, flags=re.MULTILINE)
    uncommented = uncommented.replace("/mnt/archive/lockr", str(tmp_path / "archive"))
    uncommented = uncommented.replace("/var/lib/lockr-local", str(tmp_path))
    uncommented = uncommented.replace("sqlite:////srv/lockr/lockr.db", f"sqlite:///{tmp_path}/lockr.db")
    config = tmp_path / "config.toml"
    config.write_text(uncommented)
    settings = load_settings(config_file=str(config), env={})
    assert dict(settings.regions) == {"local": f"{tmp_path}/blobs", "archive": f"{tmp_path}/archive"}


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(PACKAGING / "lockr-local.service")
    return parser


def test_systemd_unit_runs_as_a_dedicated_user_with_hardening_and_restarts() -> None:
    service = unit()["Service"]
    assert service["User"] not in ("", "root")
    assert service["StateDirectory"] == "lockr-local"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert "/var/lib/lockr-local" in service["ReadWritePaths"].split()
    assert service["Restart"] == "on-failure"
    assert service["ExecStart"].split()[1:] == ["serve", "--config", "/etc/lockr-local/config.toml"]
    assert "/var/lib/lockr-local" in (PACKAGING / "example-config.toml").read_text(), \
        "the example config's data_dir must be the unit's StateDirectory"


def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify wants ExecStart= to exist; point it at any executable, the rest stays as shipped.
    text = (PACKAGING / "lockr-local.service").read_text().replace("/usr/local/bin/lockr-local", "/bin/true")
    copy = tmp_path / "lockr-local.service"
    copy.write_text(text)
    result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (result.stdout + result.stderr).splitlines() if str(copy) in line]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr


HEAVY_MODULES = ("tornado", "peewee", "playhouse", "requests", "keyring", "watchdog", "pystray", "PIL", "tqdm",
                 "lockr_local.server")


def test_version_imports_none_of_the_heavy_libraries() -> None:
    """`lockr-local --version` (and the tray's first paint) must not pay for the server's or client's imports."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "lockr_local", "--version"],
                            capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    heavy = sorted(name for name in imported if name.split(".")[0] in HEAVY_MODULES or name.startswith(HEAVY_MODULES))
    assert not heavy, f"--version imports {heavy}; import them inside the commands that need them"
