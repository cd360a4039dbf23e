"""An account's API tokens and password, as JSON (what the /account page's script calls)."""

from __future__ import annotations

import time

from lockr_local.errors import BadRequest, Forbidden, NotFound, Unauthorized
from lockr_local.server.handlers.base import BaseHandler
from lockr_local.server.service import token_lifetime, validate_password
from lockr_local.server.wire import iso8601, token_json


class TokensHandler(BaseHandler):
    """GET lists the caller's tokens (prefix and name only: tokens are stored as hashes); POST makes one,
    optionally with `expiresIn` seconds after which it answers 401 token_expired."""

    async def get(self) -> None:
        principal = await self.require_account()
        tokens = await self.call(self.ctx.service.list_tokens, principal.account_id)
        self.write_json({"tokens": [token_json(token) for token in tokens]})

    async def post(self) -> None:
        principal = await self.require_account()
        body = self.json_body()
        name = body.get("name") or "api token"
        if not isinstance(name, str) or len(name) > 100:
            raise BadRequest('"name" must be a label of at most 100 characters.', field="name")
        lifetime = token_lifetime(body.get("expiresIn"))
        started = time.time()
        token = await self.call(self.ctx.service.create_token, principal.account_id, name.strip(), lifetime, started)
        expires_at = iso8601(started + lifetime) if lifetime is not None else None
        self.write_json({"token": token, "name": name.strip(), "prefix": token[:10], "expiresAt": expires_at},
                        status=201)


class TokenHandler(BaseHandler):
    """DELETE /api/v1/tokens/:id revokes one of the caller's tokens."""

    async def delete(self, token_id: str) -> None:
        principal = await self.require_account()
        if not (token_id.isascii() and token_id.isdigit()) or len(token_id) > 18:  # SQLite ints are 64-bit
            raise NotFound("No such token.")
        await self.call(self.ctx.service.revoke_token_id, principal.account_id, int(token_id))
        self.set_status(204)
        self.finish()


class PasswordHandler(BaseHandler):
    """POST /api/v1/account/password {"currentPassword", "newPassword"}; existing tokens keep working."""

    async def post(self) -> None:
        principal = await self.require_account()
        body = self.json_body()
        current = body.get("currentPassword")
        if not isinstance(current, str):
            raise BadRequest('Send {"currentPassword": "...", "newPassword": "..."}.', field="currentPassword")
        new = validate_password(body.get("newPassword"))
        assert principal.username is not None
        # The current password is checked like a login (same rate limit), so a stolen token alone
        # cannot lock the owner out.
        try:
            account = await self.ctx.auth.verify_credentials(principal.username, current, self.client_address)
        except Unauthorized as exc:
            raise Forbidden("The current password is not right; the password was not changed.",
                            field="currentPassword") from exc
        password_hash = await self.ctx.auth.hash_password(new)
        await self.call(self.ctx.service.set_password_hash, account.id, password_hash)
        self.ctx.auth.forget_cached_credentials()
        self.set_status(204)
        self.finish()
