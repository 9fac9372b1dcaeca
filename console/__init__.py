"""The web console: static pages (plain ES modules, uPlot vendored) served at ``/``, reading the query API.

No build step: the files under ``static/`` are what the browser runs. They are served with ``no-cache`` so a
browser revalidates them (ETag) after an upgrade instead of mixing old and new modules.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC = Path(__file__).resolve().parent / "static"
ASSETS_PATH = "/console"


class _RevalidatedFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = "no-cache"
        return response


def mount_console(app: FastAPI) -> None:
    """``/`` is the console's page, its scripts and styles are under ``/console/``."""

    @app.get("/", include_in_schema=False)
    async def console_index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount(ASSETS_PATH, _RevalidatedFiles(directory=STATIC), name="console")
