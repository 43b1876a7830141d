"""``andon.web``: the dashboard, a single-page app of static files served next to the API.

The app is plain ES modules, CSS and JSON translation files under ``static/`` (shipped as
package data): there is no Node build step, so ``pip install andon`` is all a plant needs.
``mount`` adds two things to an API app: ``/`` answers ``index.html`` and ``/static/`` serves
the assets. Everything the pages show comes from ``/api/v1`` with the user's token, so the web
package holds no routes of its own beyond the files.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["STATIC_DIR", "mount"]

STATIC_DIR = Path(__file__).parent / "static"
"""The directory of the app's files (``index.html``, ``css/``, ``js/``, ``i18n/``)."""


def mount(app: FastAPI) -> None:
    """Serve the dashboard from ``app``: ``GET /`` gives ``index.html`` and ``/static/...``
    the assets (ETag and Last-Modified from starlette, so browsers revalidate cheaply).
    Call it after the API router is included so ``/api/v1`` keeps its own routes."""
    index = STATIC_DIR / "index.html"
    if not index.is_file():
        raise RuntimeError(f"the web app is missing: {index} not found")

    async def page() -> FileResponse:
        return FileResponse(index, media_type="text/html; charset=utf-8")

    app.add_api_route("/", page, methods=["GET"], include_in_schema=False, name="web.index")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="web.static")
