"""The web dashboard at ``/ui``: server-rendered pages over the same services and tokens as the API.

``register(app)`` mounts it. ``api.edge`` leaves ``/ui`` paths to it: the dashboard
authenticates the token sealed in its session cookie (``api.ui.session``) before it reads any
body, checks the role, then the form's CSRF token (``api.ui.web``). Pages: ``pages.py``; forms:
``actions.py``; what they show: ``views.py`` and ``policies.py`` (pure shaping of the services'
models); templates and the small script and style sheet (no build step, nothing fetched from
elsewhere) beside them. See docs/ui.md.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse, Response

PREFIX = "/ui"
STATIC = {"ui.css": "text/css; charset=utf-8", "ui.js": "text/javascript; charset=utf-8"}
_STATIC_DIR = Path(__file__).parent / "static"


def is_ui_path(path: str) -> bool:
    """The dashboard's paths, which authenticate by session cookie rather than bearer token."""
    return path == PREFIX or path.startswith(PREFIX + "/")


def register(app: FastAPI) -> None:
    from api.ui import actions, pages
    from api.ui.web import UiState

    app.state.ui = UiState(app.state.storage)
    files = {name: (_STATIC_DIR / name).read_bytes() for name in STATIC}

    def static(name: str) -> Response:
        if name not in files:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(files[name], media_type=STATIC[name], headers={"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"})

    def slash() -> Response:
        return RedirectResponse(PREFIX, status_code=308)

    app.add_api_route(PREFIX + "/static/{name}", static, methods=["GET"], include_in_schema=False)
    app.add_api_route(PREFIX + "/", slash, methods=["GET"], include_in_schema=False)
    app.include_router(pages.router)
    app.include_router(actions.router)
    table = app.state.routes  # Allow on 405 and HEAD as GET know the dashboard's paths too
    table.add(PREFIX + "/static/{name}", {"GET"})
    table.add(PREFIX + "/", {"GET"})
    for router in (pages.router, actions.router):
        table.add_router(router)
