"""Secrets and their hashes: password KDF (argon2id), API tokens, ids, key hashes and link signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import argon2

from lockr_local.config import Settings

from lockr_local.server.durable import fsync_directory

TOKEN_PREFIX = "lkr_"


def new_id() -> str:
    """A 128-bit random id as 32 hex characters: file ids, session ids, download capabilities."""
    return secrets.token_hex(16)


@dataclass(frozen=True)
class PasswordCost:
    """argon2id's cost: memory in KiB, passes over it, lanes. The default is RFC 9106's second
    recommendation (64 MiB, 3 passes, 4 lanes), about 0.1 s on a 2-core machine; settings may lower it
    as far as OWASP's minimum (19 MiB, 2 passes), which config.py enforces."""

    memory_kib: int = 64 * 1024
    time_cost: int = 3
    parallelism: int = 4

    @staticmethod
    def of(settings: Settings) -> "PasswordCost":
        return PasswordCost(settings.password_kdf_memory // 1024, settings.password_kdf_time)

    def hasher(self) -> argon2.PasswordHasher:
        return argon2.PasswordHasher(time_cost=self.time_cost, memory_cost=self.memory_kib,
                                     parallelism=self.parallelism, hash_len=32, salt_len=16, type=argon2.Type.ID)


def hash_password(password: str, cost: PasswordCost = PasswordCost()) -> str:
    """argon2id (memory-hard) with a random salt, in the self-describing PHC form ($argon2id$v=19$m=...)."""
    return cost.hasher().hash(password.encode("utf-8", "surrogatepass"))


def verify_password(password: str, encoded: str) -> bool:
    """Constant-time check of a password against an argon2id hash, or an scrypt one from before."""
    data = password.encode("utf-8", "surrogatepass")
    if encoded.startswith("scrypt$"):
        return _verify_scrypt(data, encoded)
    try:
        return bool(argon2.PasswordHasher().verify(encoded, data))
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False


def check_password(password: str, encoded: str, cost: PasswordCost) -> tuple[bool, str | None]:
    """(right?, the hash to store instead): a right password whose hash is scrypt, or argon2id at another
    cost, is hashed anew at `cost`, so stored hashes follow the settings at each owner's next login."""
    if not verify_password(password, encoded):
        return False, None
    if encoded.startswith("scrypt$") or cost.hasher().check_needs_rehash(encoded):
        return True, hash_password(password, cost)
    return True, None


def _verify_scrypt(data: bytes, encoded: str) -> bool:
    """Hashes of versions before argon2id: scrypt$N$r$p$salt$digest."""
    try:
        _, n, r, p, salt_b64, digest_b64 = encoded.split("$")
        expected = base64.b64decode(digest_b64)
        actual = hashlib.scrypt(data, salt=base64.b64decode(salt_b64), n=int(n), r=int(r), p=int(p),
                                maxmem=256 * 1024 * 1024, dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


# A real hash of a password no one has, verified when the account is unknown so that login takes
# the same time whether or not the identifier exists.
_DUMMY_HASHES: dict[PasswordCost, str] = {}


def dummy_password_hash(cost: PasswordCost) -> str:
    if cost not in _DUMMY_HASHES:
        _DUMMY_HASHES[cost] = hash_password(secrets.token_urlsafe(16), cost)
    return _DUMMY_HASHES[cost]


def new_token() -> str:
    """An API token: a recognisable prefix and 256 random bits."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """Tokens are stored only as their SHA-256 (they are random, so no KDF is needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_claim_token() -> str:
    """The secret that lets a guest uploader attach the upload to an account later: 192 random bits.
    Stored only as `token_hash`; the share link (which carries the file id) is not enough. Hex, not
    base64url: a code that began with '-' would read as an option in `lockr-local register --claim CODE`."""
    return secrets.token_hex(24)


def claim_matches(supplied: str, stored: str | None) -> bool:
    """Constant-time check of a claim token against its stored hash (None: the file has no claim)."""
    if stored is None:
        return False
    return hmac.compare_digest(token_hash(supplied).encode(), stored.encode())


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Signer:
    """HMAC with the server secret: stored key hashes and signed download links."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def protect_key_hash(self, key_hash: str) -> str:
        """What is stored for a keyHash, so that a leaked database does not hand out download keys."""
        return hmac.new(self._secret, b"keyhash:" + key_hash.encode(), hashlib.sha256).hexdigest()

    def key_hash_matches(self, supplied: str, stored: str) -> bool:
        return hmac.compare_digest(self.protect_key_hash(supplied.lower()), stored)

    def address_tag(self, address: str) -> str:
        """What is stored for a client address that logged in: enough to recognise it, not to read it."""
        return hmac.new(self._secret, b"address:" + address.encode("utf-8", "surrogatepass"),
                        hashlib.sha256).hexdigest()

    def sign(self, message: str) -> str:
        mac = hmac.new(self._secret, b"link:" + message.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def verify(self, message: str, signature: str) -> bool:
        # As bytes: compare_digest refuses str with non-ASCII characters (a TypeError, i.e. a 500, for a
        # tampered link carrying one).
        return hmac.compare_digest(self.sign(message).encode(), signature.encode("utf-8", "surrogatepass"))

    def subkey(self, purpose: str) -> str:
        """A secret derived for one purpose (e.g. the web pages' cookie_secret), independent of the others."""
        return hmac.new(self._secret, b"subkey:" + purpose.encode(), hashlib.sha256).hexdigest()


def existing_secret(data_dir: Path) -> bytes | None:
    """data_dir/secret.key's secret if a server made one there; None if not."""
    try:
        return bytes.fromhex((data_dir / "secret.key").read_text().strip())
    except FileNotFoundError:
        return None


def load_or_create_secret(configured: str, data_dir: Path) -> bytes:
    """The configured secret, else one generated once into data_dir/secret.key (mode 0600)."""
    if configured:
        return configured.encode("utf-8")
    path = data_dir / "secret.key"
    found = existing_secret(data_dir)
    if found is not None:
        return found
    secret = secrets.token_bytes(32)
    temp = path.with_suffix(f".{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret.hex())
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(temp, path)  # fails if another process created it first: then theirs wins
    except FileExistsError:
        secret = bytes.fromhex(path.read_text().strip())
    finally:
        os.unlink(temp)
    fsync_directory(data_dir)  # a power cut must not bring a new secret (and invalidate every signed link)
    return secret
