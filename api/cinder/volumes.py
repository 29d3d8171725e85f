"""Cinder volumes: list, detail, show, create, update, delete, and actions
(``os-extend``, ``revert``, ``os-reset_status`` for admins, ``os-force_delete``, and the
connection and attach actions of api.cinder.connections)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, FastAPI, Query, Request, Response

from api.cinder import connections, listing, views
from api.cinder.common import (
    SCHEDULER_HINTS, VOLUME_CREATE_KEYS, VOLUME_UPDATE_KEYS, base_url, body_of, cinder_router, include_both,
    metadata_labels as _metadata, project_id, with_description,
)
from api.deps import StorageDep
from api.fields import IdPath
from storage.bounds import SIZE_MAX, check_int
from storage.errors import InvalidInput
from storage.scheduler import validate_hints

router = cinder_router()
GiB = views.GiB


def _size_gib(value: Any, field: str) -> int:
    """A whole number of GiB (an int or ASCII digits), 1 .. bounds.SIZE_MAX / GiB."""
    return check_int(value, field=field, lo=1, hi=SIZE_MAX // GiB, what="a whole number of GiB")



def _listing(request: Request, st: StorageDep, detail: bool, status: str | None, name: str | None,
             marker: str | None, limit: int | None, metadata: str | None = None) -> dict[str, Any]:
    vols = request.app.state.coalescer.get(("cinder-volumes",), st.volumes.list)
    url, pid = base_url(request), project_id(request)
    wanted = listing.metadata_filter(metadata)
    attached = st.connections.attachments() if detail else {}
    rows = [r for r in (views.volume_detail(v, url, pid, attached.get(v.id, ())) for v in vols) if listing.matches(r, status=status or None, name=name or None, metadata=wanted)]
    return listing.listing("volumes", rows, url=str(request.url), marker=marker, limit=limit, what="volume",
                           summary=None if detail else ("id", "name", "links"))


Metadata = Annotated[str | None, Query(max_length=listing.METADATA_FILTER_MAX)]
Limit = Annotated[int | None, Query(ge=0, le=listing.LIMIT_MAX)]


@router.get("/volumes")
def list_volumes(request: Request, st: StorageDep, status: Annotated[str | None, Query(max_length=256)] = None, name: Annotated[str | None, Query(max_length=256)] = None,
                 marker: Annotated[str | None, Query(max_length=256)] = None, limit: Limit = None, metadata: Metadata = None) -> dict:
    return _listing(request, st, False, status, name, marker, limit, metadata)


@router.get("/volumes/detail")
def list_volumes_detail(request: Request, st: StorageDep, status: Annotated[str | None, Query(max_length=256)] = None, name: Annotated[str | None, Query(max_length=256)] = None,
                        marker: Annotated[str | None, Query(max_length=256)] = None, limit: Limit = None, metadata: Metadata = None) -> dict:
    return _listing(request, st, True, status, name, marker, limit, metadata)


@router.post("/volumes", status_code=202)
def create_volume(request: Request, st: StorageDep, payload: Annotated[dict, Body()]) -> dict:
    spec = body_of(payload, "volume", VOLUME_CREATE_KEYS, top=frozenset({SCHEDULER_HINTS}))
    size = spec.get("size")
    copy_of = spec.get("snapshot_id") or spec.get("source_volid")
    if spec.get("imageRef") or spec.get("backup_id"):
        raise InvalidInput("creating a volume from an image or a backup is not supported here; restore a backup with POST /backups/{id}/restore", field="volume")
    vol = st.volumes.create(
        spec.get("name") or views.generated_name("volume"),
        _size_gib(size, "size") * GiB if (size is not None or not copy_of) else None,
        pool=spec.get("volume_type") or None,
        labels=_metadata(spec.get("metadata")),
        source_volume=spec.get("source_volid"),
        source_snapshot=spec.get("snapshot_id"),
        # copies stay in their source's pool: the zone is a hint for new volumes only
        hints=None if copy_of else validate_hints(availability_zone=spec.get("availability_zone") or None),
    )
    vol = with_description(st, "volume", vol, spec)
    return {"volume": views.volume_detail(vol, base_url(request), project_id(request))}


@router.get("/volumes/{volume_id}")
def show_volume(volume_id: IdPath, request: Request, st: StorageDep) -> dict:
    vol = st.volumes.get(volume_id)
    attached = st.connections.attachments([vol.id]).get(vol.id, ())
    return {"volume": views.volume_detail(vol, base_url(request), project_id(request), attached)}


@router.put("/volumes/{volume_id}")
def update_volume(volume_id: IdPath, request: Request, st: StorageDep, payload: Annotated[dict, Body()]) -> dict:
    spec = body_of(payload, "volume", VOLUME_UPDATE_KEYS)
    vol = st.volumes.update(volume_id, name=spec.get("name") or None, labels=_metadata(spec.get("metadata")))
    vol = with_description(st, "volume", vol, spec)
    return {"volume": views.volume_detail(vol, base_url(request), project_id(request))}


@router.delete("/volumes/{volume_id}", status_code=202, response_class=Response)
def delete_volume(volume_id: IdPath, st: StorageDep, cascade: bool = False, force: bool = False) -> Response:
    # force (3.23, openstack volume delete --force): also from error or stuck states, as os-force_delete
    st.volumes.delete(volume_id, cascade=cascade, force=force)
    return Response(status_code=202)


# the arguments cinderclient sends with each action (see api.cinder.common for the body keys)
ACTION_KEYS: dict[str, frozenset[str]] = {
    "os-extend": frozenset({"new_size"}),
    "revert": frozenset({"snapshot_id"}),
    "os-reset_status": frozenset({"status", "attach_status", "migration_status"}),
    "os-force_delete": frozenset(),
    **connections.CONNECTION_ACTIONS,
}
ACTIONS = tuple(ACTION_KEYS)


@router.post("/volumes/{volume_id}/action", status_code=202, response_class=Response)
def volume_action(volume_id: IdPath, request: Request, st: StorageDep, payload: Annotated[dict, Body()]) -> Response:
    action = next((key for key in ACTIONS if isinstance(payload, dict) and key in payload), None)
    if action is None:
        keys = sorted(payload) if isinstance(payload, dict) else []
        raise InvalidInput(f"volume action {keys} is not supported; accepted: {', '.join(ACTIONS)}", field="action")
    if len(payload) > 1:
        raise InvalidInput(f"one action per request; got {sorted(payload)[:10]}", field="action")
    args = payload[action] if isinstance(payload[action], dict) else {}
    extra = sorted(str(k) for k in set(args) - ACTION_KEYS[action])
    if extra:
        raise InvalidInput(
            f"unknown keys {extra[:10]} in {action!r}; accepted: {', '.join(sorted(ACTION_KEYS[action])) or 'none'}",
            field=extra[0],
        )
    if action in connections.CONNECTION_ACTIONS:
        return connections.run(st, volume_id, action, payload[action], args) or Response(status_code=202)
    if action == "os-extend":
        st.volumes.extend(volume_id, _size_gib(args.get("new_size"), "new_size") * GiB)
    elif action == "revert":
        snapshot = args.get("snapshot_id")
        if not snapshot:
            raise InvalidInput("revert needs snapshot_id; accepted: the id of this volume's snapshot", field="snapshot_id")
        st.volumes.revert(volume_id, snapshot)
    elif action == "os-reset_status":
        request.state.principal.require("admin")
        if not args.get("status"):
            raise InvalidInput("os-reset_status needs status; accepted: a volume status such as available or error", field="status")
        st.volumes.reset_status(volume_id, args["status"])
    elif action == "os-force_delete":
        st.volumes.delete(volume_id, force=True, cascade=True)
    return Response(status_code=202)


def register(app: FastAPI) -> None:
    include_both(app, router)
