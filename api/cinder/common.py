"""Plumbing shared by the Cinder routers: both path prefixes, auth + microversion, base URLs."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Request

from api.cinder.microversion import microversion
from api.deps import authorize

PREFIXES = ("/v3", "/v3/{project_id}")  # project-less first: /v3/volumes/detail is not a project


def cinder_router() -> APIRouter:
    return APIRouter(dependencies=[Depends(authorize), Depends(microversion)])


def include_both(app: FastAPI, router: APIRouter) -> None:
    for prefix in PREFIXES:
        app.include_router(router, prefix=prefix, include_in_schema=False)
        app.state.routes.add_router(router, prefix)


def project_id(request: Request) -> str | None:
    return request.path_params.get("project_id")


def base_url(request: Request) -> str:
    root = str(request.base_url).rstrip("/") + "/v3"
    pid = project_id(request)
    return f"{root}/{pid}" if pid else root


def body_of(payload: dict, key: str) -> dict:
    """The ``{"volume": {...}}`` wrapper Cinder requests use; a clear 400 when it is missing."""
    from storage.errors import InvalidInput

    inner = payload.get(key) if isinstance(payload, dict) else None
    if not isinstance(inner, dict):
        raise InvalidInput(f"request body must be an object with a {key!r} object; got keys {sorted(payload) if isinstance(payload, dict) else type(payload).__name__}", field=key)
    return inner


def metadata_labels(value: object) -> dict[str, str] | None:
    """Cinder ``metadata`` -> our labels (validated by the service)."""
    from storage.errors import InvalidInput

    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput(f"metadata must be an object of strings; got {type(value).__name__}", field="metadata")
    return {str(k): str(v) for k, v in value.items()}
