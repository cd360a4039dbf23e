"""The trash of the caller's account: list, restore, delete one forever, empty (the rules: server/trash.py)."""

from __future__ import annotations

from lockr_local.server import trash
from lockr_local.server.handlers.base import BaseHandler
from lockr_local.server.handlers.files import checked_file_id, page_request
from lockr_local.server.retention import BATCH, delete_bytes
from lockr_local.server.wire import file_json, trash_json


class TrashHandler(BaseHandler):
    """GET /api/v1/trash?limit=&cursor=: one page of the trash, with its totals and the retention;
    DELETE empties it: {"deleted": files, "bytes": bytes freed}."""

    async def get(self) -> None:
        principal = await self.require_account()
        assert principal.account_id is not None
        limit, cursor = page_request(self)
        items, next_cursor = await self.call(trash.list_trash, principal.account_id, limit, cursor)
        count, size = await self.call(trash.trash_bytes, principal.account_id)
        retention = self.settings_.trash_retention
        base = self.base_url()
        self.write_json({"files": [trash_json(item, base, retention) for item in items], "next": next_cursor,
                         "count": count, "bytes": size, "retention": retention})

    async def delete(self) -> None:
        principal = await self.require_account()
        assert principal.account_id is not None
        deleted = freed = 0
        while True:  # a batch of rows per transaction, then their bytes
            removed = await self.call(trash.take_from_trash, principal.account_id)
            await self.run_io(delete_bytes, self.ctx.blobs, removed)
            deleted += len(removed)
            freed += sum(item.size for item in removed)
            if len(removed) < BATCH:
                break
        self.write_json({"deleted": deleted, "bytes": freed})


class TrashFileHandler(BaseHandler):
    """DELETE /api/v1/trash/:id: deletes one trashed file for good (its bytes, its quota)."""

    async def delete(self, file_id: str) -> None:
        principal = await self.require_account()
        place = await self.call(trash.delete_forever, principal, checked_file_id(file_id))
        await self.ctx.files.delete(place)
        self.set_status(204)
        self.finish()


class TrashRestoreHandler(BaseHandler):
    """POST /api/v1/trash/:id/restore: the file comes back with its id, as the file object (its name is
    "NAME (restored).EXT" when a live file or folder took the name meanwhile)."""

    async def post(self, file_id: str) -> None:
        principal = await self.require_account()
        info = await self.call(trash.restore, principal, checked_file_id(file_id))
        self.write_json(file_json(info, self.base_url()))
