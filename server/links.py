"""Signed download links: the rules for making and checking them, with no Tornado in sight.

A signed link is the file's download path plus `?expires=UNIX&sig=HMAC`. The HMAC (the server
secret, via `Signer`) covers the method, the canonical path `/api/v1/download/REGION/ID`, the expiry
and the file's `key_version`; not the Host header, so a link survives a reverse proxy, and not the
cosmetic file name after the id. Setting or clearing a key bumps `key_version`, which kills every
link signed before; a changed byte of the path, expiry or signature fails the HMAC; a link whose file
was deleted has nothing left to check. Each is a 403 `link_invalid`, with a sentence saying which.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from urllib.parse import urlencode

from lockr_local.errors import BadRequest, LinkInvalid
from lockr_local.server.security import Signer
from lockr_local.server.service import FileInfo
from lockr_local.server.wire import iso8601

# HEAD is answered like GET (same headers, no body), so a link signed for GET allows both.
SIGNED_METHOD = "GET"
DEFAULT_LIFETIME = 24 * 3600


@dataclass(frozen=True)
class SignedLink:
    """A link as handed out: the path with its query, and when it stops working."""

    path: str
    expires_at: int

    def to_json(self, base_url: str) -> dict[str, object]:
        return {"url": base_url + self.path, "expiresAt": iso8601(self.expires_at), "expires": self.expires_at}


def link_lifetime(requested: object, max_lifetime: int) -> int:
    """The lifetime asked for in `expiresIn`, checked against the `max_link_lifetime` setting."""
    if requested is None:
        return min(DEFAULT_LIFETIME, max_lifetime)
    if isinstance(requested, bool) or not isinstance(requested, int):
        raise BadRequest('"expiresIn" must be a whole number of seconds, like {"expiresIn": 3600}.',
                         field="expiresIn")
    if not 1 <= requested <= max_lifetime:
        raise BadRequest(f'"expiresIn" must be between 1 and {max_lifetime} seconds (this server\'s '
                         "max_link_lifetime).", field="expiresIn", max=max_lifetime)
    return requested


def canonical_path(info: FileInfo) -> str:
    return f"/api/v1/download/{info.region}/{info.id}"


def _message(method: str, info: FileInfo, expires_at: int) -> str:
    return "\n".join((method, canonical_path(info), str(expires_at), str(info.key_version)))


def sign_download(signer: Signer, info: FileInfo, lifetime: int, now: float | None = None) -> SignedLink:
    """A link to `info` that works without credentials until now + lifetime."""
    expires_at = math.ceil((time.time() if now is None else now) + lifetime)
    query = urlencode({"expires": expires_at, "sig": signer.sign(_message(SIGNED_METHOD, info, expires_at))})
    return SignedLink(f"{info.download_path()}?{query}", expires_at)


def check_download(signer: Signer, info: FileInfo, expires: str | None, signature: str | None,
                   now: float | None = None) -> None:
    """Raises LinkInvalid unless (expires, sig) is a live signature for this file and its current key."""
    # isascii: str.isdigit() also accepts '²' and other digits int() refuses (a 500, not a 403).
    if not expires or not signature or not (expires.isascii() and expires.isdigit()) or len(expires) > 12:
        raise LinkInvalid("This link is incomplete or was altered; ask its owner for a new one.")
    expires_at = int(expires)
    if not signer.verify(_message(SIGNED_METHOD, info, expires_at), signature):
        raise LinkInvalid("This link is not valid: it was altered, or the file's key changed since it "
                          "was made; ask its owner for a new one.")
    if (time.time() if now is None else now) > expires_at:
        raise LinkInvalid(f"This link expired at {iso8601(expires_at)}; ask its owner for a new one.")


def link_to_missing_file() -> LinkInvalid:
    """A signed link whose file is gone (deleted, or never there): 403 like any other dead link, so its
    holder learns the link no longer works. Without the file there is no key version to check the
    signature against, and the answer is the same whether the id ever existed, so it tells nothing."""
    return LinkInvalid("This link no longer works: the file it points to was deleted. Ask its owner for a "
                       "new one.")
