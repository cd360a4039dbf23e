"""Domain errors shared by server and client; each carries its HTTP status and error code."""

from __future__ import annotations

from typing import Any, ClassVar


class LockrError(Exception):
    """Base of every error the lockr API can answer with.

    `status` is the HTTP status, `code` the stable machine-readable code of the JSON error body.
    The message is a sentence a person can act on.
    """

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    default_message: ClassVar[str] = "Something went wrong on the server; the request was not carried out."

    def __init__(self, message: str | None = None, *, headers: dict[str, str] | None = None,
                 **details: Any) -> None:
        self.message = message or self.default_message
        self.headers = dict(headers or {})
        self.details = details
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        """The canonical JSON error body; the only place that shape is built."""
        return error_body(self.code, self.message, **self.details)


def error_body(code: str, message: str, **details: Any) -> dict[str, Any]:
    """`{"error": {"code": ..., "message": ..., **details}}`: the one error shape of the API."""
    error: dict[str, Any] = {"code": code, "message": message}
    error.update(details)
    return {"error": error}


class BadRequest(LockrError):
    status = 400
    code = "bad_request"
    default_message = "The request is malformed."


class InvalidName(BadRequest):
    code = "invalid_name"
    default_message = "That file name is not allowed."


class InvalidContentRange(BadRequest):
    code = "invalid_content_range"
    default_message = "The Content-Range header must look like 'bytes FIRST-LAST/TOTAL' or 'bytes */TOTAL'."


class SizeMismatch(BadRequest):
    code = "size_mismatch"
    default_message = "The upload's total size differs from the size declared when the session was created."


class ChunkTooLarge(BadRequest):
    code = "chunk_too_large"
    default_message = "The chunk reaches past the size declared when the session was created."


class UnknownRegion(BadRequest):
    code = "unknown_region"
    default_message = "That region does not exist."


class Unauthorized(LockrError):
    status = 401
    code = "unauthorized"
    default_message = "Missing or invalid credentials: send 'Authorization: Bearer TOKEN' or Basic auth."


class TokenExpired(Unauthorized):
    """A token past the expiry it was given when created (POST /api/v1/tokens expiresIn, token create --expires)."""

    code = "token_expired"
    default_message = ("That API token has expired; log in again ('lockr-local login') or make a new one on the "
                       "account page.")


class Forbidden(LockrError):
    status = 403
    code = "forbidden"
    default_message = "You are not allowed to do that."


class QuotaExceeded(Forbidden):
    code = "quota_exceeded"
    default_message = "This upload would exceed your storage quota; delete files or ask for a larger quota."


class KeyRequired(Forbidden):
    code = "key_required"
    default_message = "This file is protected by a key: supply ?keyHash= with the SHA-256 of the phrase."


class WrongKey(Forbidden):
    code = "wrong_key"
    default_message = "The keyHash does not match this file's key."


class ClaimRequired(Forbidden):
    code = "claim_required"
    default_message = ("Adding a guest upload to an account needs its claimToken, which only the upload's "
                       "answer gave the uploader; a share link or id alone is not enough.")


class WrongClaim(Forbidden):
    code = "wrong_claim"
    default_message = "That claimToken is not this file's; use the one its upload's answer gave."


class GuestKeyForbidden(Forbidden):
    code = "guest_key_forbidden"
    default_message = "Guests cannot attach download keys; create an account at /account."


class GuestUploadsDisabled(Forbidden):
    code = "guest_uploads_disabled"
    default_message = "This server does not accept uploads from guests; log in first."


class SignupDisabled(Forbidden):
    code = "signup_disabled"
    default_message = "This server does not allow creating accounts; ask its administrator."


class LinkInvalid(Forbidden):
    code = "link_invalid"
    default_message = "This link is invalid or has expired; ask for a new one."


class NotFound(LockrError):
    status = 404
    code = "not_found"
    default_message = "No such file or resource."


class MethodNotAllowed(LockrError):
    status = 405
    code = "method_not_allowed"
    default_message = "That method is not allowed on this resource."


class Conflict(LockrError):
    status = 409
    code = "conflict"
    default_message = "The request conflicts with the current state."


class AlreadyExists(Conflict):
    code = "already_exists"
    default_message = "That name is already taken."


class SessionOffsetMismatch(Conflict):
    code = "offset_mismatch"
    default_message = "The chunk does not start at the stored offset; ask for the status and resume from it."


class SessionBusy(Conflict):
    code = "session_busy"
    default_message = "Another request is writing to this upload session; retry when it finishes."


class IdempotencyKeyInFlight(Conflict):
    code = "idempotency_key_in_flight"
    default_message = ("A request with this Idempotency-Key is still being carried out; retry when it has "
                       "answered.")


class IdempotencyKeySpent(Conflict):
    code = "idempotency_key_spent"
    default_message = ("The file first stored with this Idempotency-Key has since been deleted or replaced; "
                       "send the upload with a new key to store it again.")


class IdempotencyKeyReused(LockrError):
    """The draft's 422: the key was first used for another request (another body, name or endpoint)."""

    status = 422
    code = "idempotency_key_reused"
    default_message = ("This Idempotency-Key was already used for a different upload (another body, name or "
                       "endpoint); use a new key for each upload.")


class Gone(LockrError):
    status = 410
    code = "gone"
    default_message = "This upload session has expired or was cancelled; start a new one."


class TusVersionUnsupported(LockrError):
    status = 412
    code = "unsupported_version"
    default_message = "This server speaks tus 1.0.0; send 'Tus-Resumable: 1.0.0'."


class TusChecksumMismatch(LockrError):
    """tus checksum extension: the chunk's bytes do not match its Upload-Checksum; nothing was stored."""

    status = 460
    code = "checksum_mismatch"
    default_message = "The chunk does not match its Upload-Checksum; it was not stored. Send it again."


class ChecksumMismatch(BadRequest):
    code = "checksum_mismatch"
    default_message = "The uploaded bytes do not match the checksum sent with them; nothing was stored."


class PreconditionFailed(LockrError):
    status = 412
    code = "precondition_failed"
    default_message = "The destination exists and 'Overwrite: F' forbids replacing it."


class LengthRequired(LockrError):
    status = 411
    code = "length_required"
    default_message = "Send a Content-Length header."


class TooLarge(LockrError):
    status = 413
    code = "too_large"
    default_message = "The file is too large for your plan."


class RangeNotSatisfiable(LockrError):
    status = 416
    code = "range_not_satisfiable"
    default_message = "The requested range is outside the file."


class UnsupportedMediaType(LockrError):
    status = 415
    code = "unsupported_media_type"
    default_message = "Send the request body as JSON (Content-Type: application/json)."


class RateLimited(LockrError):
    status = 429
    code = "rate_limited"
    default_message = "Too many requests; slow down and retry after the time in Retry-After."

    def __init__(self, retry_after: float, message: str | None = None) -> None:
        seconds = max(1, int(retry_after + 0.999))
        super().__init__(message, headers={"Retry-After": str(seconds)}, retryAfter=seconds)
        self.retry_after = seconds


class InsufficientStorage(LockrError):
    status = 507
    code = "insufficient_storage"
    default_message = "The server's disk is full; the upload was not stored. Try again later."


class StorageError(LockrError):
    status = 500
    code = "storage_error"
    default_message = "The server could not read or write its storage; nothing was changed."


class IntegrityError(LockrError):
    status = 500
    code = "integrity_error"
    default_message = "The stored file failed its integrity check and was not served."


class ClientError(LockrError):
    """Client side only: trouble no server answered with (no connection, no keyring).

    Status 0 because no HTTP response carries it; `error_class_for` never maps a response to these.
    """

    status = 0
    code = "client_error"


class ConnectionFailed(ClientError):
    code = "connection_failed"
    default_message = "Could not reach the lockr server; check the address and your connection, then retry."


class KeyringUnavailable(ClientError):
    code = "keyring_unavailable"
    default_message = ("No usable OS keyring to keep the token in. Set LOCKR_TOKEN=TOKEN in the environment, "
                       "or log in with --insecure-file-store to keep it in a file only you can read (0600).")


class StoreUnusable(ClientError):
    """A local store this command will not open: made by a newer version, or not there at all."""

    code = "store_unusable"
    default_message = "The store cannot be used by this version of lockr-local."


def all_error_classes() -> list[type[LockrError]]:
    """Every LockrError subclass, for the client's status/code -> class mapping and for tests."""
    found: list[type[LockrError]] = []
    pending: list[type[LockrError]] = [LockrError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def error_class_for(status: int, code: str) -> type[LockrError]:
    """The most specific error class for an HTTP status and error code (the client's inverse map)."""
    by_code = {cls.code: cls for cls in all_error_classes() if cls.status == status}
    if code in by_code:
        return by_code[code]
    by_status = [cls for cls in all_error_classes() if cls.status == status]
    # The least specific class with that status is the one whose parent has another status.
    for cls in by_status:
        if all(getattr(base, "status", None) != status for base in cls.__bases__):
            return cls
    return LockrError
