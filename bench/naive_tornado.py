"""A naive Tornado file server, the framework's own reference in `make bench`: PUT streams the body into
a file (no hashing, no fsync, no database), GET is Tornado's StaticFileHandler.

What a Python server built on Tornado costs before it does any of lockr-local's work:
`python -m bench.naive_tornado PORT ROOT`.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.web


@tornado.web.stream_request_body
class PutHandler(tornado.web.StaticFileHandler):
    """PUT /NAME writes ROOT/NAME as the body streams in; everything else is StaticFileHandler's."""

    def prepare(self) -> None:
        if self.request.method == "PUT":
            self.request.connection.set_max_body_size(2**62)
            name = self.path_args[0]
            if not name or "/" in name or name.startswith("."):
                raise tornado.web.HTTPError(400)
            self._file: Any = open(Path(self.root) / name, "wb")

    def data_received(self, chunk: bytes) -> None:
        self._file.write(chunk)

    def put(self, name: str) -> None:
        self._file.close()
        self.set_status(201)


async def serve(port: int, root: Path) -> None:
    app = tornado.web.Application([(r"/(.*)", PutHandler, {"path": str(root)})])
    server = tornado.httpserver.HTTPServer(app, chunk_size=1024 * 1024)
    server.listen(port, address="127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), Path(sys.argv[2])))
