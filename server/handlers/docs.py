"""GET /api/v1/openapi.json: the API's OpenAPI document, with this server's base URL."""

from __future__ import annotations

from lockr_local.server.handlers.base import BaseHandler
from lockr_local.server.openapi import openapi_document


class OpenApiHandler(BaseHandler):
    def get(self) -> None:
        self.write_json(openapi_document(self.base_url()))
