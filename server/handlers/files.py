"""File management: list, register a download id, set or clear a key, delete."""

from __future__ import annotations

from lockr_local.errors import BadRequest, NotFound
from lockr_local.names import is_file_id, validate_key_hash
from lockr_local.server.handlers.base import BaseHandler
from lockr_local.server.numbers import parse_count
from lockr_local.server.security import sha256_text
from lockr_local.server.wire import file_json


def checked_file_id(file_id: str) -> str:
    if not is_file_id(file_id):
        raise NotFound(f"No file has id {file_id!r}.")
    return file_id


def page_request(handler: BaseHandler) -> tuple[int, str | None]:
    """?limit=&cursor= of a paged listing (files, trash): the page size, checked, and the cursor."""
    limit = parse_count(handler.get_query_argument("limit", str(handler.settings_.page_size)))
    if limit is None:
        raise BadRequest("limit must be a whole number.", field="limit")
    if not 1 <= limit <= handler.settings_.max_page_size:
        raise BadRequest(f"limit must be between 1 and {handler.settings_.max_page_size}.", field="limit")
    return limit, handler.get_query_argument("cursor", None) or None


class FilesHandler(BaseHandler):
    """GET /api/v1/files?limit=&cursor=: one page of the caller's files."""

    async def get(self) -> None:
        principal = await self.require_account()
        limit, cursor = page_request(self)
        files, next_cursor = await self.call(self.ctx.service.list_files, principal.account_id, limit, cursor)
        base = self.base_url()
        self.write_json({"files": [file_json(f, base) for f in files], "next": next_cursor})


MAX_CLAIM_TOKEN = 256


class RegisterHandler(BaseHandler):
    """POST /api/v1/files/register {"id", "claimToken"}: attaches a guest upload to the caller's account.
    The claimToken is what the upload's answer gave the uploader; the id alone is in every share link."""

    async def post(self) -> None:
        principal = await self.require_account()
        body = self.json_body()
        file_id = body.get("id")
        if not isinstance(file_id, str) or not is_file_id(file_id):
            raise BadRequest('Send {"id": "<32-character download id>", "claimToken": "..."}.', field="id")
        claim_token = body.get("claimToken")
        if claim_token is not None and (not isinstance(claim_token, str) or len(claim_token) > MAX_CLAIM_TOKEN
                                        or not claim_token.isascii()):
            raise BadRequest('"claimToken" must be the text the upload\'s answer gave.', field="claimToken")
        info = await self.call(self.ctx.service.register_file, principal, file_id, claim_token or None)
        self.write_json(file_json(info, self.base_url()))


class FileKeyHandler(BaseHandler):
    """POST /api/v1/files/:id/key {"key": "phrase"} or {"keyHash": "<sha256 hex>"} sets, {"key": null} or {}
    clears. The hash form lets a client (the web pages) keep the phrase to itself."""

    async def post(self, file_id: str) -> None:
        principal = await self.require_account()
        body = self.json_body()
        key = body.get("key")
        if "keyHash" in body and body["keyHash"] is not None:
            key_hash: str | None = validate_key_hash(body["keyHash"])
        elif key is None or key == "":
            key_hash = None
        elif isinstance(key, str):
            key_hash = sha256_text(key)
        else:
            raise BadRequest('"key" must be a string phrase or null.', field="key")
        info = await self.call(self.ctx.service.set_key, principal, checked_file_id(file_id), key_hash)
        self.write_json(file_json(info, self.base_url()))


class FileHandler(BaseHandler):
    """GET /api/v1/files/:id shows one of the caller's files; DELETE moves it to the trash (with
    trash_retention 0: removes it and its bytes)."""

    async def get(self, file_id: str) -> None:
        principal = await self.require_account()
        info = await self.call(self.ctx.service.owned_file, principal, checked_file_id(file_id))
        self.write_json(file_json(info, self.base_url()))

    async def delete(self, file_id: str) -> None:
        principal = await self.require_account()
        stored = await self.call(self.ctx.service.delete_file, principal, checked_file_id(file_id))
        if stored is not None:  # None: the file went to the trash with its bytes (trash.py)
            await self.ctx.files.delete(stored)
        self.set_status(204)
        self.finish()
