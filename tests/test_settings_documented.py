"""Every declared setting is documented in the README, and resolution follows defaults < file < env < flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockr_local.config import SETTINGS, Settings, SettingsError, load_settings, parse_size

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_each_setting_is_documented_in_readme(setting):
    assert f"| `{setting.name}` |" in README, f"add {setting.name} to the README settings table"


def test_each_setting_is_a_field_of_settings():
    fields = set(Settings.__dataclass_fields__) - {"sources"}
    assert fields == {s.name for s in SETTINGS}


def test_sources_are_layered_defaults_file_env_flags(tmp_path):
    config = tmp_path / "lockr.toml"
    config.write_text('port = 9001\nhost = "0.0.0.0"\nlog_level = "debug"\n')
    settings = load_settings({"port": 9003, "data_dir": str(tmp_path)}, config_file=str(config),
                             env={"LOCKR_PORT": "9002", "LOCKR_LOG_LEVEL": "error"})
    assert settings.port == 9003
    assert settings.log_level == "error"
    assert settings.host == "0.0.0.0"
    assert settings.page_size == 100
    assert settings.sources["port"] == "flag"


@pytest.mark.parametrize("env,fragment", [
    ({"LOCKR_PORT": "eighty"}, "port"),
    ({"LOCKR_DEFAULT_QUOTA": "lots"}, "default_quota"),
    ({"LOCKR_REGIONS": "noequals"}, "regions"),
    ({"LOCKR_PUBLIC_URL": "files.example.org"}, "public_url"),
    ({"LOCKR_CORS_ORIGINS": "app.example"}, "cors_origins"),
    ({"LOCKR_CORS_ORIGINS": "https://app.example/path"}, "cors_origins"),
])
def test_bad_setting_values_name_the_setting(tmp_path, env, fragment):
    with pytest.raises(SettingsError, match=fragment):
        load_settings({"data_dir": str(tmp_path)}, env=env)


@pytest.mark.parametrize("text,expected", [("1024", 1024), ("5GB", 5 * 10**9), ("5 GiB", 5 * 2**30),
                                           ("1.5MB", 1_500_000)])
def test_sizes_parse_in_decimal_and_binary_units(text, expected):
    assert parse_size(text) == expected
