"""Cinder limits (no quotas on one host: maxima are pool capacity or -1) and volume types (= pools)."""

from __future__ import annotations

from fastapi import FastAPI, Request

from api.cinder import views
from api.cinder.common import base_url, cinder_router, include_both
from api.deps import StorageDep
from storage.errors import NotFound

router = cinder_router()


def _backups(st: StorageDep) -> list:
    try:
        return st.backups.list()
    except ImportError:  # backup engine not part of this build
        return []


@router.get("/limits")
def limits(st: StorageDep) -> dict:
    capacity = sum(p.total_bytes for p in st.pools.list() if p.error is None)
    absolute = views.absolute_limits(st.volumes.list(), st.snapshots.list(), _backups(st), capacity)
    return {"limits": {"rate": [], "absolute": absolute}}


def _type_view(pool, url: str) -> dict:
    return {
        "id": pool.name, "name": pool.name, "description": f"{pool.driver} pool {pool.name}",
        "is_public": True, "extra_specs": {"volume_backend_name": pool.name}, "os-volume-type-access:is_public": True,
        "links": views.self_links(url, "types", pool.name),
    }


@router.get("/types")
def list_types(request: Request, st: StorageDep) -> dict:
    return {"volume_types": [_type_view(p, base_url(request)) for p in st.pools.list()]}


@router.get("/types/default")
def default_type(request: Request, st: StorageDep) -> dict:
    return {"volume_type": _type_view(st.pools.get(st.settings.default_pool), base_url(request))}


@router.get("/types/{type_id}")
def show_type(type_id: str, request: Request, st: StorageDep) -> dict:
    try:
        pool = st.pools.get(type_id)
    except NotFound:
        raise NotFound(f"volume type {type_id!r} not found; volume types are the pools: {', '.join(sorted(st.settings.pools))}") from None
    return {"volume_type": _type_view(pool, base_url(request))}


def register(app: FastAPI) -> None:
    include_both(app, router)
