"""Plumbing shared by the Cinder routers: both path prefixes, auth + microversion, base URLs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request

from api.cinder.microversion import microversion
from api.deps import authorize
from storage.bounds import URL_MAX

URL_OR_REF_MAX = URL_MAX

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


# What python-cinderclient (9.x, microversions up to 3.71) sends in each request body. Cinder's own
# schemas refuse unknown keys (additionalProperties: false) and so do we; these sets include every
# key cinderclient may send, also those we ignore (description, availability_zone, force, ...), so
# the client keeps working. Top level: only the wrapper key (and scheduler hints on volume create).
VOLUME_CREATE_KEYS = frozenset({
    "size", "consistencygroup_id", "snapshot_id", "name", "description", "volume_type", "availability_zone",
    "metadata", "imageRef", "source_volid", "backup_id", "group_id", "multiattach",
})
VOLUME_UPDATE_KEYS = frozenset({"name", "description", "metadata"})
SNAPSHOT_CREATE_KEYS = frozenset({"volume_id", "force", "name", "description", "metadata"})
SNAPSHOT_UPDATE_KEYS = frozenset({"name", "description", "metadata"})
BACKUP_CREATE_KEYS = frozenset({
    "volume_id", "container", "name", "description", "incremental", "force", "snapshot_id", "metadata",
    "availability_zone",
})
RESTORE_KEYS = frozenset({"volume_id", "name"})
SCHEDULER_HINTS = "OS-SCH-HNT:scheduler_hints"


def body_of(payload: dict, key: str, allowed: frozenset[str] | None = None, *, top: frozenset[str] = frozenset()) -> dict:
    """The ``{"volume": {...}}`` wrapper Cinder requests use; a clear 400 when it is missing, when the
    body has other top-level keys than ``key`` (and ``top``), or when the inner object has keys
    outside ``allowed``. ``description`` is bounded here since no service stores it."""
    from storage.bounds import DESCRIPTION_MAX
    from storage.errors import InvalidInput

    inner = payload.get(key) if isinstance(payload, dict) else None
    if not isinstance(inner, dict):
        got = sorted(payload)[:10] if isinstance(payload, dict) else type(payload).__name__
        raise InvalidInput(f"request body must be an object with a {key!r} object; got keys {got}", field=key)
    extra_top = sorted(set(payload) - {key} - top)
    if extra_top:
        raise InvalidInput(f"unknown keys {extra_top[:10]} in the request body; accepted: {sorted({key} | top)}", field=extra_top[0])
    if allowed is not None:
        extra = sorted(str(k) for k in set(inner) - allowed)
        if extra:
            raise InvalidInput(
                f"unknown keys {extra[:10]} in {key!r}; accepted: {', '.join(sorted(allowed))}", field=extra[0]
            )
    description = inner.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > DESCRIPTION_MAX):
        raise InvalidInput(f"description is not accepted; accepted: a string of at most {DESCRIPTION_MAX} characters", field="description")
    for ref in ("name", "volume_id", "snapshot_id", "source_volid", "volume_type", "container"):
        value = inner.get(ref)
        if value is not None and (not isinstance(value, str) or len(value) > URL_OR_REF_MAX):
            raise InvalidInput(f"{ref} is not accepted; accepted: a string of at most {URL_OR_REF_MAX} characters", field=ref)
    return inner


def with_description(st: Any, kind: str, item: Any, spec: dict) -> Any:
    """``item`` (a volume or snapshot just created or updated) after storing ``spec['description']``
    when the request carried one (``""`` or null clears it); a second short transaction, so a
    failure in between leaves the item without its description, never a half-made item."""
    if "description" not in spec:
        return item
    from storage.volumes.edits import set_description

    set_description(st.catalog, kind, item.id, spec["description"])
    return st.volumes.get(item.id) if kind == "volume" else st.snapshots.get(item.id)


def metadata_labels(value: object) -> dict[str, str] | None:
    """Cinder ``metadata`` -> our labels (validated by the service)."""
    from storage.errors import InvalidInput

    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput(f"metadata must be an object of strings; got {type(value).__name__}", field="metadata")
    if any(not isinstance(v, str) for v in value.values()):
        raise InvalidInput("metadata values must be strings", field="metadata")
    return {str(k): v for k, v in value.items()}
