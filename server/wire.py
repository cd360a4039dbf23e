"""The wire format: the JSON shapes of files, sessions and tokens, and the date formats headers and bodies use.

The rules layer (service.py, sessions.py) returns plain records; what a client sees of them is built here,
so that the shapes pinned by the contract live in one module beside the handlers that send them.
"""

from __future__ import annotations

import email.utils
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lockr_local.server.models import ApiToken
    from lockr_local.server.service import FileInfo
    from lockr_local.server.sessions import SessionInfo
    from lockr_local.server.trash import TrashedFile


def iso8601(timestamp: float) -> str:
    """'2026-11-27T02:16:27Z': the dates of JSON bodies (and of messages that name a moment)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def http_date(timestamp: float) -> str:
    """RFC 1123, as Last-Modified, getlastmodified and tus Upload-Expires need: 'Fri, 27 Nov 2026 02:16:27 GMT'."""
    return email.utils.formatdate(timestamp, usegmt=True)


def file_json(info: FileInfo, base_url: str) -> dict[str, Any]:
    """A stored file as the API shows it; the claim token only on the answer to a guest's own upload."""
    return {
        "id": info.id,
        "name": info.name,
        "size": info.size,
        "type": info.type,
        "region": info.region,
        "sha256": info.sha256,
        "hasKey": info.has_key,
        "createdAt": iso8601(info.created_at),
        "downloadUrl": base_url + info.download_path(),
        "pageUrl": f"{base_url}/download/{info.id}",
        **({"claimToken": info.claim_token} if info.claim_token else {}),
    }


def trash_json(item: TrashedFile, base_url: str, retention: int) -> dict[str, Any]:
    """A file in the trash: the file object (its links work again once it is restored), when it was deleted
    and when the purge deletes it for good (trash_retention after that)."""
    return {**file_json(item.file, base_url), "deletedAt": iso8601(item.deleted_at),
            "purgeAt": iso8601(item.deleted_at + retention)}


def session_json(session: SessionInfo, base_url: str) -> dict[str, Any]:
    """The body of `POST /api/v1/upload/session`'s 201 (and of tus creation)."""
    body = {"id": session.file_id, "uploadUrl": base_url + session.upload_path(),
            "downloadUrl": base_url + session.download_path(), "expiresAt": iso8601(session.expires_at)}
    if session.claim_token:
        body["claimToken"] = session.claim_token
    return body


def token_json(token: ApiToken, now: float | None = None) -> dict[str, Any]:
    """An API token as its owner sees it: never the token, only its prefix and name. `expiresAt` is null for
    a token that lasts until revoked; `expired` says whether that moment has passed."""
    expires_at = token.expires_at
    return {"id": token.id, "prefix": token.prefix, "name": token.name, "createdAt": iso8601(token.created_at),
            "lastUsedAt": iso8601(token.last_used_at) if token.last_used_at else None, "revoked": token.revoked,
            "expiresAt": iso8601(expires_at) if expires_at is not None else None,
            "expired": expires_at is not None and (time.time() if now is None else now) >= expires_at}
