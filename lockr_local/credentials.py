"""Where the client keeps its endpoint and tokens: settings file, OS keyring, explicit file-store fallback.

Tokens live in the OS keyring (service "lockr-local", username = the endpoint URL). LOCKR_TOKEN
overrides everything stored. Without a usable keyring the client never falls back to plaintext on
its own: it says so and names the two ways out (LOCKR_TOKEN, or `login --insecure-file-store`,
which keeps tokens in a 0600 file and records that choice for the endpoint).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from lockr_local.errors import BadRequest, KeyringUnavailable

SERVICE = "lockr-local"
APP_NAME = "lockr-local"
SETTINGS_FILE = "client.json"
TOKEN_FILE = "tokens.json"


def config_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME))


def state_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_state_dir(APP_NAME))


def normalize_endpoint(url: str) -> str:
    """`http(s)://host[:port][/prefix]` without a trailing slash; a clear error for anything else."""
    text = url.strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadRequest(f"The endpoint must be a URL like http://127.0.0.1:8080, not {url!r}.")
    return text


def write_private_json(path: Path, data: Any) -> None:
    """Atomically writes JSON readable only by the owner (0600 file in a 0700 folder)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}  # a damaged settings file is treated as empty rather than blocking every command
    return data if isinstance(data, dict) else {}


@dataclass
class ClientSettings:
    """The client's own small settings: the saved endpoint and which endpoints opted into the file store."""

    endpoint: str | None = None
    file_store: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path | None = None) -> "ClientSettings":
        data = read_json(path or config_dir() / SETTINGS_FILE)
        stores = data.get("file_store")
        return cls(endpoint=data.get("endpoint") or None,
                   file_store=[str(s) for s in stores] if isinstance(stores, list) else [])

    def save(self, path: Path | None = None) -> None:
        write_private_json(path or config_dir() / SETTINGS_FILE,
                           {"endpoint": self.endpoint, "file_store": sorted(set(self.file_store))})


def keyring_usable() -> bool:
    """False for keyring's fail backend, or a chainer with no backend behind it."""
    import keyring
    from keyring.backends import chainer, fail

    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring):
        return False
    if isinstance(backend, chainer.ChainerBackend) and not backend.backends:
        return False
    return True


class TokenStore:
    """Tokens by endpoint: the OS keyring, or the opt-in 0600 file for endpoints that chose it."""

    def __init__(self, settings: ClientSettings | None = None) -> None:
        self.settings = settings or ClientSettings.load()
        self.token_file = config_dir() / TOKEN_FILE

    def uses_file(self, endpoint: str) -> bool:
        return endpoint in self.settings.file_store

    def get(self, endpoint: str) -> str | None:
        if self.uses_file(endpoint):
            token = read_json(self.token_file).get(endpoint)
            return str(token) if token else None
        if not keyring_usable():
            return None
        import keyring
        from keyring.errors import KeyringError

        try:
            return keyring.get_password(SERVICE, endpoint)
        except KeyringError as exc:
            raise KeyringUnavailable(f"The OS keyring could not be read ({exc}). "
                                     + KeyringUnavailable.default_message) from exc

    def set(self, endpoint: str, token: str, *, insecure_file: bool = False) -> str:
        """Stores the token; answers where it went ("keyring" or the file path)."""
        if insecure_file:
            tokens = read_json(self.token_file)
            tokens[endpoint] = token
            write_private_json(self.token_file, tokens)
            if endpoint not in self.settings.file_store:
                self.settings.file_store.append(endpoint)
                self.settings.save()
            return str(self.token_file)
        if not keyring_usable():
            raise KeyringUnavailable()
        import keyring
        from keyring.errors import KeyringError

        try:
            keyring.set_password(SERVICE, endpoint, token)
        except KeyringError as exc:
            raise KeyringUnavailable(f"The OS keyring refused the token ({exc}). "
                                     + KeyringUnavailable.default_message) from exc
        if endpoint in self.settings.file_store:
            self._forget_file(endpoint)
        return "the OS keyring"

    def delete(self, endpoint: str) -> bool:
        """Forgets the token wherever it is kept; True when there was one."""
        if self.uses_file(endpoint):
            return self._forget_file(endpoint)
        if not keyring_usable():
            return False
        import keyring
        from keyring.errors import KeyringError, PasswordDeleteError

        try:
            keyring.delete_password(SERVICE, endpoint)
        except PasswordDeleteError:
            return False
        except KeyringError as exc:
            raise KeyringUnavailable(f"The OS keyring could not be changed ({exc}).") from exc
        return True

    def _forget_file(self, endpoint: str) -> bool:
        tokens = read_json(self.token_file)
        had = tokens.pop(endpoint, None) is not None
        write_private_json(self.token_file, tokens)
        self.settings.file_store = [e for e in self.settings.file_store if e != endpoint]
        self.settings.save()
        return had


def resolve_endpoint(explicit: str | None, env: Mapping[str, str] | None = None,
                     settings: ClientSettings | None = None) -> str | None:
    """--endpoint, then LOCKR_ENDPOINT, then the saved endpoint."""
    env = os.environ if env is None else env
    for candidate in (explicit, env.get("LOCKR_ENDPOINT")):
        if candidate:
            return normalize_endpoint(candidate)
    saved = (settings or ClientSettings.load()).endpoint
    return normalize_endpoint(saved) if saved else None


def resolve_token(explicit: str | None, endpoint: str, env: Mapping[str, str] | None = None,
                  store: TokenStore | None = None) -> str | None:
    """--token, then LOCKR_TOKEN, then the stored token for the endpoint."""
    env = os.environ if env is None else env
    if explicit:
        return explicit
    if env.get("LOCKR_TOKEN"):
        return env["LOCKR_TOKEN"]
    return (store or TokenStore()).get(endpoint)
