"""POST /api/v1/files/:id/link: the owner asks for a signed, expiring download link."""

from __future__ import annotations

from lockr_local.server import links
from lockr_local.server.handlers.base import BaseHandler
from lockr_local.server.handlers.files import checked_file_id


class FileLinkHandler(BaseHandler):
    """{"expiresIn": seconds} -> {"url", "expiresAt"}; the URL works without a token until it expires."""

    async def post(self, file_id: str) -> None:
        principal = await self.require_account()
        lifetime = links.link_lifetime(self.json_body().get("expiresIn"), self.settings_.max_link_lifetime)
        info = await self.call(self.ctx.service.owned_file, principal, checked_file_id(file_id))
        link = links.sign_download(self.ctx.signer, info, lifetime)
        self.write_json(link.to_json(self.base_url()), status=201)
