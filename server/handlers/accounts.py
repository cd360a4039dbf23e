"""Account creation, login and the health check."""

from __future__ import annotations

from lockr_local import __version__
from lockr_local.errors import BadRequest, SignupDisabled
from lockr_local.server.handlers.base import BaseHandler
from lockr_local.server.space import region_free_bytes
from lockr_local.server.service import validate_email, validate_password, validate_username


class AccountHandler(BaseHandler):
    """POST /api/v1/account: creates an account and answers with its first API token."""

    async def post(self) -> None:
        if not self.settings_.signup:
            raise SignupDisabled()
        body = self.json_body()
        username = validate_username(body.get("username"))
        email = validate_email(body.get("email"))
        password = validate_password(body.get("password"))
        # After the checks that cost nothing, before the password hash and the database.
        self.ctx.auth.limit_signup(self.client_address)
        password_hash = await self.ctx.auth.hash_password(password)
        account, token = await self.call(self.ctx.service.create_account, username, email, password_hash)
        self.write_json({"token": token, "username": account.username, "email": account.email,
                         "quota": account.quota}, status=201)

    async def get(self) -> None:
        principal = await self.require_account()
        assert principal.account_id is not None
        account = await self.call(self.ctx.service.account, principal.account_id)
        self.write_json({"username": account.username, "email": account.email, "quota": account.quota,
                         "used": account.used_bytes, "reserved": account.reserved_bytes,
                         "defaultRegion": account.default_region or self.settings_.default_region,
                         "regions": self.ctx.blobs.regions()})


class LoginHandler(BaseHandler):
    """POST /api/v1/login: exchanges username-or-email + password for a new API token."""

    async def post(self) -> None:
        body = self.json_body()
        identifier, password = body.get("identifier"), body.get("password")
        if not isinstance(identifier, str) or not identifier.strip() or not isinstance(password, str):
            raise BadRequest('Send {"identifier": "username or email", "password": "..."}.')
        account = await self.ctx.auth.verify_credentials(identifier, password, self.client_address)
        label = str(body.get("tokenName") or "login")
        token = await self.call(self.ctx.service.create_token, account.id, label)
        self.write_json({"token": token, "username": account.username})


class HealthHandler(BaseHandler):
    """GET /healthz: 200 when the database answers and every region has `min_free_space` free; 503 with
    status "low_space" (naming the regions) when one has less, for supervisors and monitoring."""

    async def get(self) -> None:
        await self.call(self.ctx.db.peewee.execute_sql, "SELECT 1")
        free = await self.run_io(region_free_bytes, self.ctx.blobs)
        minimum = self.settings_.min_free_space
        low = sorted(region for region, left in free.items() if left is not None and left < minimum)
        body = {"status": "low_space" if low else "ok", "version": __version__,
                "regions": {region: {"freeBytes": left, "lowSpace": region in low} for region, left in free.items()}}
        if low:
            body["message"] = (f"Region {', '.join(low)} has less than {minimum} bytes free (min_free_space); "
                               "uploads there will fail once it is full. Free space or add a disk.")
        self.write_json(body, status=503 if low else 200)

    async def head(self) -> None:
        # Supervisors and load balancers often probe with HEAD: the same check, and Tornado drops the body.
        await self.get()
