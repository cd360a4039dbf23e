"""Secrets and their hashes: password KDF (scrypt), API tokens, ids, key hashes and link signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from lockr_local.server.durable import fsync_directory

_SCRYPT_R = 8
_SCRYPT_P = 1
TOKEN_PREFIX = "lkr_"


def new_id() -> str:
    """A 128-bit random id as 32 hex characters: file ids, session ids, download capabilities."""
    return secrets.token_hex(16)


def hash_password(password: str, n: int = 2**15) -> str:
    """scrypt (memory-hard: 128 * r * n bytes, 32 MiB at n=2**15) with a random salt, self-describing."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=_SCRYPT_R, p=_SCRYPT_P,
                            maxmem=256 * 1024 * 1024, dklen=32)
    return "scrypt${}${}${}${}${}".format(n, _SCRYPT_R, _SCRYPT_P, base64.b64encode(salt).decode(),
                                         base64.b64encode(digest).decode())


def verify_password(password: str, encoded: str) -> bool:
    """Constant-time check of a password against `hash_password`'s output."""
    try:
        scheme, n, r, p, salt_b64, digest_b64 = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest_b64)
        actual = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt_b64), n=int(n), r=int(r),
                                p=int(p), maxmem=256 * 1024 * 1024, dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


# A real hash of a password no one has, verified when the account is unknown so that login takes
# the same time whether or not the identifier exists.
_DUMMY_HASHES: dict[int, str] = {}


def dummy_password_hash(n: int) -> str:
    if n not in _DUMMY_HASHES:
        _DUMMY_HASHES[n] = hash_password(secrets.token_urlsafe(16), n)
    return _DUMMY_HASHES[n]


def new_token() -> str:
    """An API token: a recognisable prefix and 256 random bits."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """Tokens are stored only as their SHA-256 (they are random, so no KDF is needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


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


def load_or_create_secret(configured: str, data_dir: Path) -> bytes:
    """The configured secret, else one generated once into data_dir/secret.key (mode 0600)."""
    if configured:
        return configured.encode("utf-8")
    path = data_dir / "secret.key"
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
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
