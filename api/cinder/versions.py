"""Version discovery: ``GET /`` (300 Multiple Choices, like Cinder) and ``GET /v3/``.

These are public, as in Cinder: python-cinderclient's version negotiation fetches them without
a token. They reveal only the supported API versions.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from api.cinder.microversion import MAX_VERSION, MIN_VERSION, fmt

router = APIRouter()
UPDATED = "2026-11-26T00:00:00Z"


def v3_document(root: str) -> dict:
    return {
        "id": "v3.0",
        "status": "CURRENT",
        "version": fmt(MAX_VERSION),
        "min_version": fmt(MIN_VERSION),
        "updated": UPDATED,
        "links": [{"rel": "self", "href": f"{root}/v3/"}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.volume+json;version=3"}],
    }


@router.get("/")
def versions(request: Request) -> JSONResponse:
    root = str(request.base_url).rstrip("/")
    return JSONResponse({"versions": [v3_document(root)]}, status_code=300)


@router.get("/v3/")
@router.get("/v3")
def version_v3(request: Request) -> JSONResponse:
    root = str(request.base_url).rstrip("/")
    return JSONResponse({"versions": [v3_document(root)]})


def register(app: FastAPI) -> None:
    app.include_router(router, include_in_schema=False)
    app.state.routes.add_router(router)
