"""Snapshots: create, list, show, update, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from pydantic import Field

from api.deps import StorageDep, authorize
from api.errors import ERROR_RESPONSES
from api.fields import Body, LabelMap, Name, Ref, RefPath
from api.routes.common import labels_query
from storage.domain import Snapshot

router = APIRouter(prefix="/snapshots", tags=["snapshots"], dependencies=[Depends(authorize)], responses=ERROR_RESPONSES)


class SnapshotCreate(Body):
    volume: Ref = Field(description="Volume name or id")
    name: Name | None = Field(default=None, description="Default: <volume>-<time>")
    labels: LabelMap | None = None


class SnapshotUpdate(Body):
    name: Name | None = None
    labels: LabelMap | None = None


@router.get("", response_model=list[Snapshot])
def list_snapshots(
    st: StorageDep,
    volume: Annotated[str | None, Query(max_length=256, description="Only snapshots of this volume (name or id)")] = None,
    label: Annotated[list[str] | None, Query(description="KEY=VALUE; repeat to require several")] = None,
) -> list[Snapshot]:
    return st.snapshots.list(volume=volume, labels=labels_query(label))


@router.post("", response_model=Snapshot, status_code=201)
def create_snapshot(body: SnapshotCreate, st: StorageDep) -> Snapshot:
    return st.snapshots.create(body.volume, body.name, labels=body.labels)


@router.get("/{ref}", response_model=Snapshot)
def show_snapshot(ref: RefPath, st: StorageDep) -> Snapshot:
    return st.snapshots.get(ref)


@router.patch("/{ref}", response_model=Snapshot)
def update_snapshot(ref: RefPath, body: SnapshotUpdate, st: StorageDep) -> Snapshot:
    return st.snapshots.update(ref, name=body.name, labels=body.labels)


@router.delete("/{ref}", status_code=204, response_class=Response)
def delete_snapshot(ref: RefPath, st: StorageDep) -> Response:
    st.snapshots.delete(ref)
    return Response(status_code=204)
