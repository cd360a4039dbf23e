"""Passwords are hashed with argon2id at current parameters; older hashes still log in and are upgraded."""

from __future__ import annotations

import base64
import hashlib
import secrets
from pathlib import Path

import pytest
import requests

from lockr_local.config import SettingsError, load_settings
from lockr_local.server.models import Account
from lockr_local.server.security import PasswordCost, hash_password, verify_password
from tests.helpers import ThreadedServer, create_account

PASSWORD = "the real password"


def stored_hash(srv: ThreadedServer, username: str) -> str:
    return str(srv.ctx.db.run_sync(lambda: Account.get(Account.username == username).password_hash))


def set_stored_hash(srv: ThreadedServer, username: str, password_hash: str) -> None:
    srv.ctx.db.run_sync(lambda: Account.update(password_hash=password_hash)
                        .where(Account.username == username).execute())


def scrypt_hash(password: str, n: int = 2**15) -> str:
    """A hash as versions before argon2id stored it: scrypt$N$r$p$salt$digest."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=8, p=1, maxmem=2**28, dklen=32)
    return f"scrypt${n}$8$1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def test_the_default_cost_is_rfc_9106s_second_recommendation(tmp_path: Path) -> None:
    settings = load_settings({"data_dir": str(tmp_path)}, env={})
    cost = PasswordCost.of(settings)
    assert (cost.memory_kib, cost.time_cost, cost.parallelism) == (64 * 1024, 3, 4)
    encoded = hash_password(PASSWORD, cost)
    assert encoded.startswith("$argon2id$v=19$m=65536,t=3,p=4$"), encoded
    assert verify_password(PASSWORD, encoded) and not verify_password("a wrong password", encoded)


@pytest.mark.parametrize("env", [
    {"LOCKR_PASSWORD_KDF_MEMORY": "16MiB"},
    {"LOCKR_PASSWORD_KDF_TIME": "1"},
])
def test_a_cost_below_owasps_minimum_is_refused(tmp_path: Path, env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match="OWASP"):
        load_settings({"data_dir": str(tmp_path)}, env=env)


def test_a_config_file_from_the_scrypt_days_still_loads(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("password_kdf_n = 32768\nport = 9001\n")
    assert load_settings({"data_dir": str(tmp_path)}, config_file=str(config), env={}).port == 9001


def test_new_accounts_get_argon2id_hashes_at_the_configured_cost(server_factory) -> None:
    srv = server_factory(password_kdf_memory="20MiB", password_kdf_time=2)
    create_account(srv.url, "newcomer", password=PASSWORD)
    assert stored_hash(srv, "newcomer").startswith("$argon2id$v=19$m=20480,t=2,p=4$")


def login_status(url: str, how: str) -> int:
    if how == "api":
        return requests.post(f"{url}/api/v1/login", json={"identifier": "veteran", "password": PASSWORD}).status_code
    return requests.get(f"{url}/api/v1/files", auth=("veteran", PASSWORD)).status_code


@pytest.mark.parametrize("how", ["api", "basic"])
@pytest.mark.parametrize("old", [
    pytest.param(lambda: scrypt_hash(PASSWORD), id="scrypt"),
    pytest.param(lambda: hash_password(PASSWORD, PasswordCost(19 * 1024, 2, 1)), id="argon2id-older-cost"),
])
def test_an_older_hash_logs_in_and_is_upgraded_to_the_current_argon2id(server, how, old) -> None:
    create_account(server.url, "veteran", password=PASSWORD)
    current = stored_hash(server, "veteran").rsplit("$", 2)[0]  # the algorithm and its parameters
    old_hash = old()
    set_stored_hash(server, "veteran", old_hash)
    # A wrong password changes nothing.
    assert requests.post(f"{server.url}/api/v1/login", json={"identifier": "veteran", "password": "wrong one"}
                         ).status_code == 401
    assert stored_hash(server, "veteran") == old_hash
    assert login_status(server.url, how) == 200
    upgraded = stored_hash(server, "veteran")
    assert upgraded.startswith(current + "$"), upgraded
    assert verify_password(PASSWORD, upgraded)
    server.ctx.auth.forget_cached_credentials()
    assert login_status(server.url, how) == 200
    assert stored_hash(server, "veteran") == upgraded  # upgraded once, not at every login
