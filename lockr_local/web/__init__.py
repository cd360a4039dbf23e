"""The look the server's web pages and the desktop app's local pages share: one stylesheet, the page head.

Both the server (`lockr_local.server`) and the tray (`lockr_local.tray`, which must not import the
server) serve these files under ASSETS_PREFIX and render their templates through `SharedLoader`, so
`{% include "shared/head.html" %}` finds the same partial in either. Template namespaces provide
`shared_static_url(name)` (a versioned URL, so browsers may cache the stylesheet for good).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tornado.template
import tornado.web

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
TEMPLATES = HERE / "templates"
ASSETS_PREFIX = "/assets/"
SHARED_TEMPLATE_PREFIX = "shared/"


class SharedAssetHandler(tornado.web.StaticFileHandler):
    """Serves the shared assets; its own class, so the server's metrics name the route apart from /static/."""


def assets_route() -> tuple[str, Any, dict[str, Any]]:
    """The route both applications add for the shared assets."""
    return (ASSETS_PREFIX + "(.*)", SharedAssetHandler, {"path": str(STATIC)})


def shared_static_url(name: str) -> str:
    """`/assets/NAME?v=HASH`: the hash changes with the file, so a cached copy is never stale."""
    return SharedAssetHandler.make_static_url({"static_path": str(STATIC), "static_url_prefix": ASSETS_PREFIX},
                                              name)


class SharedLoader(tornado.template.Loader):
    """A template loader for one application's folder that also finds the shared partials: any name
    under `shared/` is read from this package, everything else from `root_directory`."""

    def _create_template(self, name: str) -> tornado.template.Template:
        if not name.startswith(SHARED_TEMPLATE_PREFIX):
            return super()._create_template(name)
        with (TEMPLATES / name).open("rb") as handle:
            return tornado.template.Template(handle.read(), name=name, loader=self)
