"""Volumes: create, list, show, update, extend, attach, detach, clone, revert, delete, reset-status."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ConfigDict, Field, StrictBool, TypeAdapter

from api.deps import StorageDep, authorize, require_admin
from api.errors import ERROR_RESPONSES
from api.fields import Body, LabelKey, LabelMap, LabelValue, Name, Ref, RefPath, Size
from api.listing_cache import cache_of, etag_matches
from api.routes.common import labels_query, submit_job
from storage.domain import Volume, VolumeStatus
from storage.jobs.service import JobInfo
from storage.scheduler import validate_hints

router = APIRouter(prefix="/volumes", tags=["volumes"], dependencies=[Depends(authorize)], responses=ERROR_RESPONSES)



class VolumeCreate(Body):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "description": "A new empty volume needs size; a copy (source_volume or source_snapshot, not both) may omit it.",
        "not": {"required": ["source_volume", "source_snapshot"]},
    })
    name: Name
    size: Size | None = None
    pool: Name | None = None
    labels: LabelMap | None = None
    source_volume: Ref | None = Field(default=None, description="Copy this volume (name or id)")
    source_snapshot: Ref | None = Field(default=None, description="Copy this snapshot (name or id)")
    availability_zone: str | None = Field(default=None, max_length=63, description="Place in a pool of this zone")
    pool_labels: dict[LabelKey, LabelValue] | None = Field(default=None, max_length=16, description="Place in a pool with these labels")
    capabilities: dict[LabelKey, StrictBool | LabelValue] | None = Field(
        default=None, max_length=16, description="Required pool capabilities, e.g. {\"thin\": true, \"reflink\": true}"
    )


class VolumeCreated(Volume):
    placement: dict[str, Any] | None = Field(
        default=None, description="With ?explain=true: the scheduler's decision (chosen pool, every candidate's filter or weight)"
    )


class VolumeUpdate(Body):
    name: Name | None = None
    labels: LabelMap | None = None


class Extend(Body):
    size: Size


class Clone(Body):
    name: Name
    size: Size | None = None


class Revert(Body):
    snapshot: Ref = Field(description="Snapshot name or id of this volume")


class ResetStatus(Body):
    status: VolumeStatus


VOLUME_LIST = TypeAdapter(list[Volume])


LIST_RESPONSES: dict[int | str, dict] = {
    304: {"description": "Not modified: the If-None-Match ETag is still the listing's ETag"},
}


@router.get("", response_model=list[Volume], responses=LIST_RESPONSES)
def list_volumes(
    request: Request,
    st: StorageDep,
    pool: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    status: Annotated[VolumeStatus | None, Query()] = None,
    label: Annotated[list[str] | None, Query(description="KEY=VALUE; repeat to require several")] = None,
    if_none_match: Annotated[str | None, Header(description="An ETag from an earlier listing: 304 while unchanged")] = None,
) -> Response:
    labels = labels_query(label)

    def listing() -> bytes:
        # the models are already valid: serialize once in pydantic-core instead of re-validating each
        return VOLUME_LIST.dump_json(st.volumes.list(pool=pool, status=status, labels=labels))

    key = ("volumes", pool, status, tuple(sorted((labels or {}).items())))
    # cached bytes while the catalog's volume counter is unchanged; identical misses computed once
    result = cache_of(request.app.state).get(key, st.volumes.list_version, listing, request.app.state.coalescer.get)
    headers = {"ETag": result.etag, "Cache-Control": "no-cache"}
    if etag_matches(if_none_match, result.etag):
        return Response(status_code=304, headers=headers)
    return Response(result.body, media_type="application/json", headers=headers)


@router.post("", response_model=VolumeCreated, status_code=201)
def create_volume(
    body: VolumeCreate, st: StorageDep,
    explain: Annotated[bool, Query(description="Return the scheduler's decision in `placement`")] = False,
) -> VolumeCreated:  # fmt: skip
    hints = validate_hints(availability_zone=body.availability_zone, labels=body.pool_labels, capabilities=body.capabilities)
    vol, decision = st.volumes.create_explained(
        body.name, body.size, pool=body.pool, labels=body.labels,
        source_volume=body.source_volume, source_snapshot=body.source_snapshot, hints=hints,
    )  # fmt: skip
    return VolumeCreated(**vol.model_dump(), placement=decision.to_dict() if explain and decision else None)


@router.get("/{ref}", response_model=Volume)
def show_volume(ref: RefPath, st: StorageDep) -> Volume:
    return st.volumes.show(ref)


@router.patch("/{ref}", response_model=Volume)
def update_volume(ref: RefPath, body: VolumeUpdate, st: StorageDep) -> Volume:
    return st.volumes.update(ref, name=body.name, labels=body.labels)


@router.delete("/{ref}", status_code=204, response_class=Response, responses={202: {"model": JobInfo}})
def delete_volume(
    ref: RefPath,
    request: Request,
    st: StorageDep,
    wipe: Annotated[Literal["none", "zero"], Query(description="zero: overwrite with zeros first (runs as a job)")] = "none",
    force: bool = False,
    cascade: bool = False,
) -> Response:
    if wipe == "none":
        st.volumes.delete(ref, force=force, cascade=cascade)
        return Response(status_code=204)
    vol = st.volumes.get(ref)
    st.volumes.require_host_up(vol)  # 503 now, naming the host, rather than a failed job later
    job = submit_job(
        request, st, "wipe", target=vol.id, total=vol.size_bytes,
        params={"volume": vol.name, "volume_id": vol.id, "wipe": wipe, "force": force, "cascade": cascade},
    )
    return JSONResponse(job.model_dump(mode="json"), status_code=202)


@router.post("/{ref}/extend", response_model=Volume)
def extend_volume(ref: RefPath, body: Extend, st: StorageDep) -> Volume:
    return st.volumes.extend(ref, body.size)


@router.post("/{ref}/attach", response_model=Volume)
def attach_volume(ref: RefPath, st: StorageDep) -> Volume:
    return st.volumes.attach(ref)


@router.post("/{ref}/detach", response_model=Volume)
def detach_volume(ref: RefPath, st: StorageDep) -> Volume:
    return st.volumes.detach(ref)


@router.post("/{ref}/clone", response_model=Volume, status_code=201)
def clone_volume(ref: RefPath, body: Clone, st: StorageDep) -> Volume:
    return st.volumes.clone(ref, body.name, size=body.size)


@router.post("/{ref}/revert", response_model=Volume)
def revert_volume(ref: RefPath, body: Revert, st: StorageDep) -> Volume:
    return st.volumes.revert(ref, body.snapshot)


@router.post("/{ref}/reset-status", response_model=Volume, dependencies=[Depends(require_admin)])
def reset_volume_status(ref: RefPath, body: ResetStatus, st: StorageDep) -> Volume:
    return st.volumes.reset_status(ref, body.status)
