"""GET /metrics: the server's counters in Prometheus text format (setting `metrics`, optional bearer token)."""

from __future__ import annotations

import hmac

import tornado.web

from lockr_local.errors import Unauthorized
from lockr_local.server.auth import bearer_token
from lockr_local.server.handlers.base import BaseHandler
from lockr_local.server.space import region_free_bytes

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class MetricsHandler(BaseHandler):
    """404 while `metrics` is off; 401 without the `metrics_token` when one is set."""

    async def get(self) -> None:
        settings = self.settings_
        if not settings.metrics:
            raise tornado.web.HTTPError(404)
        if settings.metrics_token:
            offered = bearer_token(self.request.headers.get("Authorization")) or ""
            if not hmac.compare_digest(offered.encode(), settings.metrics_token.encode()):
                refused = Unauthorized("/metrics needs 'Authorization: Bearer METRICS_TOKEN' (setting "
                                       "metrics_token).", headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
                self.ctx.auth.refuse_credentials(refused, self.client_address)  # guesses meet the guest limit
                raise refused
        unfinished = await self.call(self.ctx.sessions.store.unfinished_session_ids)
        free = await self.run_io(region_free_bytes, self.ctx.blobs)
        self.set_header("Content-Type", CONTENT_TYPE)
        self.set_header("Cache-Control", "no-store")
        self.finish(self.ctx.metrics.render(len(unfinished), free))
