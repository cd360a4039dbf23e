"""Tornado's private attributes the server relies on: all in server/tornado_internals.py, and still there.

If a Tornado upgrade renames or drops one of them, the first tests here fail with its name, before the
behaviour that needs it (lingering closes, answers after small refused bodies, sendfile downloads,
JSON answers to malformed requests) breaks somewhere less obvious.
"""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path
from typing import Any

import pytest
import requests
import tornado
import tornado.web

from lockr_local.server import tornado_internals
from tests.helpers import create_account, upload

REPO = Path(__file__).resolve().parents[2]
PRIVATE = {*tornado_internals.HANDLER_ATTRIBUTES, *tornado_internals.REQUEST_ATTRIBUTES,
           *tornado_internals.CONNECTION_ATTRIBUTES}


def test_the_tornado_in_use_is_within_the_tested_versions():
    assert (6, 4) <= tornado.version_info[:2] < (7, 0), tornado.version


def test_every_private_attribute_is_where_tornado_internals_expects_it():
    seen: dict[str, Any] = {}

    @tornado.web.stream_request_body
    class Probe(tornado.web.RequestHandler):
        def prepare(self) -> None:
            seen["preparing"] = tornado_internals.preparing(self)
            seen["handler"] = {name: hasattr(self, name) for name in tornado_internals.HANDLER_ATTRIBUTES}
            seen["request"] = {name: hasattr(self.request, name) for name in tornado_internals.REQUEST_ATTRIBUTES}
            seen["connection"] = {name: hasattr(self.request.connection, name)
                                  for name in tornado_internals.CONNECTION_ATTRIBUTES}
            seen["body_unread"] = tornado_internals.body_unread(self.request)

        def data_received(self, chunk: bytes) -> None:
            pass

        def put(self) -> None:
            seen["before_finish"] = (tornado_internals.headers_written(self), tornado_internals.finished(self))
            self.finish("ok")
            seen["after_finish"] = tornado_internals.finished(self)
            seen["counts"] = tornado_internals.counts_sent_body(self.request.connection)

    async def run() -> None:
        from tornado.httpserver import HTTPServer
        from tornado.netutil import bind_sockets

        sockets = bind_sockets(0, "127.0.0.1")
        server = HTTPServer(tornado.web.Application([("/", Probe)]))
        server.add_sockets(sockets)
        port = sockets[0].getsockname()[1]
        answer = await asyncio.get_running_loop().run_in_executor(
            None, lambda: requests.put(f"http://127.0.0.1:{port}/", data=b"x" * 10))
        assert answer.text == "ok"
        server.stop()
        await server.close_all_connections()

    asyncio.run(run())
    assert seen["handler"] == dict.fromkeys(tornado_internals.HANDLER_ATTRIBUTES, True)
    assert seen["request"] == dict.fromkeys(tornado_internals.REQUEST_ATTRIBUTES, True)
    assert seen["connection"] == dict.fromkeys(tornado_internals.CONNECTION_ATTRIBUTES, True)
    assert seen["preparing"] is True and seen["body_unread"] is True
    assert seen["before_finish"] == (False, False) and seen["after_finish"] is True and seen["counts"] is True


def private_tornado_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = [f"{path.relative_to(REPO)}:{node.lineno} {node.attr}" for node in ast.walk(tree)
             if isinstance(node, ast.Attribute) and node.attr in PRIVATE]
    found += [f"{path.relative_to(REPO)}:{node.lineno} assigns stream.{target.attr}" for node in ast.walk(tree)
              if isinstance(node, ast.Assign) for target in node.targets
              if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
              and target.value.id == "stream" and target.attr in ("write", "read_until_regex", "close")]
    return found


def test_no_module_but_tornado_internals_touches_tornado_privates():
    modules = sorted(set((REPO / "server").rglob("*.py")) - {REPO / "server" / "tornado_internals.py"})
    assert [use for path in modules for use in private_tornado_uses(path)] == []


@pytest.mark.parametrize("what", ["sendfile download", "refused small body"])
def test_what_the_internals_serve_still_works(server, what):
    account = create_account(server.url)
    if what == "sendfile download":
        stored = upload(server.url, b"z" * 300_000, "big.bin", account=account).json()
        assert requests.get(stored["downloadUrl"]).content == b"z" * 300_000
    else:
        answer = requests.post(f"{server.url}/api/v1/upload", data=b"y" * 1000,
                               headers={**account.auth, "Content-Type": "application/octet-stream"})
        assert answer.status_code == 400 and answer.json()["error"]["field"] == "x-file-name"
