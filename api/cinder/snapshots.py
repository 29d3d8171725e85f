"""Cinder snapshots: list, detail, show, create, update, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import Body, FastAPI, Query, Request, Response

from api.cinder import listing, views
from api.cinder.common import SNAPSHOT_CREATE_KEYS, SNAPSHOT_UPDATE_KEYS, base_url, body_of, cinder_router, include_both, metadata_labels as _metadata, project_id, with_description
from api.deps import StorageDep
from api.fields import IdPath
from storage.errors import InvalidInput

router = cinder_router()



def _listing(request: Request, st: StorageDep, detail: bool, volume_id: str | None, status: str | None,
             marker: str | None, limit: int | None, name: str | None = None) -> dict:
    rows = [views.snapshot_detail(s, base_url(request), project_id(request)) for s in st.snapshots.list(volume=volume_id)]
    rows = [r for r in rows if listing.matches(r, status=status or None, name=name or None)]
    return listing.listing("snapshots", rows, url=str(request.url), marker=marker, limit=limit, what="snapshot",
                           summary=None if detail else ("id", "name", "volume_id", "status", "size", "links"))


Name = Annotated[str | None, Query(max_length=256)]
Limit = Annotated[int | None, Query(ge=0, le=listing.LIMIT_MAX)]


@router.get("/snapshots")
def list_snapshots(request: Request, st: StorageDep, volume_id: Annotated[str | None, Query(max_length=256)] = None, status: Annotated[str | None, Query(max_length=256)] = None,
                   marker: Annotated[str | None, Query(max_length=256)] = None, limit: Limit = None, name: Name = None) -> dict:
    return _listing(request, st, False, volume_id, status, marker, limit, name)


@router.get("/snapshots/detail")
def list_snapshots_detail(request: Request, st: StorageDep, volume_id: Annotated[str | None, Query(max_length=256)] = None, status: Annotated[str | None, Query(max_length=256)] = None,
                          marker: Annotated[str | None, Query(max_length=256)] = None, limit: Limit = None, name: Name = None) -> dict:
    return _listing(request, st, True, volume_id, status, marker, limit, name)


@router.post("/snapshots", status_code=202)
def create_snapshot(request: Request, st: StorageDep, payload: Annotated[dict, Body()]) -> dict:
    spec = body_of(payload, "snapshot", SNAPSHOT_CREATE_KEYS)
    if not spec.get("volume_id"):
        raise InvalidInput("snapshot needs volume_id; accepted: the id of an existing volume", field="volume_id")
    snap = st.snapshots.create(spec["volume_id"], spec.get("name") or None, labels=_metadata(spec.get("metadata")))
    snap = with_description(st, "snapshot", snap, spec)
    return {"snapshot": views.snapshot_detail(snap, base_url(request), project_id(request))}


@router.get("/snapshots/{snapshot_id}")
def show_snapshot(snapshot_id: IdPath, request: Request, st: StorageDep) -> dict:
    return {"snapshot": views.snapshot_detail(st.snapshots.get(snapshot_id), base_url(request), project_id(request))}


@router.put("/snapshots/{snapshot_id}")
def update_snapshot(snapshot_id: IdPath, request: Request, st: StorageDep, payload: Annotated[dict, Body()]) -> dict:
    spec = body_of(payload, "snapshot", SNAPSHOT_UPDATE_KEYS)
    snap = st.snapshots.update(snapshot_id, name=spec.get("name") or None, labels=_metadata(spec.get("metadata")))
    snap = with_description(st, "snapshot", snap, spec)
    return {"snapshot": views.snapshot_detail(snap, base_url(request), project_id(request))}


@router.delete("/snapshots/{snapshot_id}", status_code=202, response_class=Response)
def delete_snapshot(snapshot_id: IdPath, st: StorageDep) -> Response:
    st.snapshots.delete(snapshot_id)
    return Response(status_code=202)


def register(app: FastAPI) -> None:
    include_both(app, router)
