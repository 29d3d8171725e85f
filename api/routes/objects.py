"""Object stores, containers and objects; streaming upload and download.

Uploads are read from the request stream into a spooled temporary file (kept in memory up to
``SPOOL_MEMORY`` bytes, then on disk under the data dir) because stores need a rewindable body
to verify and retry; downloads stream from the store's ``ObjectReader``. Neither holds a whole
object in memory. Each request uses its own store instance (store connections are not
thread-safe). Containers that hold a backup repository (the configured one, those of catalogued
backups and of policies) are listed for every role, but their object bytes and any change to them
are for admins only: backup data is read through the /backups routes (``api.guards``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.deps import PrincipalDep, StorageDep, authorize
from api.errors import ERROR_RESPONSES
from api.guards import check_object_access, repository_containers
from api.fields import Body, MetadataMap
from storage.bounds import NAME_MAX, check_object_metadata
from storage.errors import InvalidInput
from backends.object.base import ContainerInfo, ObjectInfo, ObjectStore, PrefixEntry
from storage.paths import private_dir
from storage.service import Storage

router = APIRouter(prefix="/object-stores", tags=["objects"], dependencies=[Depends(authorize)], responses=ERROR_RESPONSES)
SPOOL_MEMORY = 1024 * 1024
DOWNLOAD_BLOCK = 256 * 1024
META_PREFIX = "x-object-meta-"
CONTENT_TYPE_MAX = 256
ContainerName = Annotated[str, Field(min_length=1, max_length=256)]
StorePath = Annotated[str, Path(min_length=1, max_length=NAME_MAX)]
ContainerPath = Annotated[str, Path(min_length=1, max_length=256)]
ObjectPath = Annotated[str, Path(min_length=1, max_length=1024)]


class StoreOut(BaseModel):
    name: str
    type: str
    options: dict[str, Any]


class ContainerOut(BaseModel):
    name: str
    object_count: int = 0
    bytes_used: int = 0
    metadata: dict[str, str] = Field(default_factory=dict)


class ObjectOut(BaseModel):
    name: str | None = None
    size: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    subdir: str | None = Field(default=None, description="Set for a pseudo-directory of a delimiter listing")


class ContainerCreate(Body):
    metadata: MetadataMap | None = None


def _container(info: ContainerInfo) -> ContainerOut:
    return ContainerOut(name=info.name, object_count=info.object_count, bytes_used=info.bytes_used, metadata=dict(info.metadata))


def _object(info: ObjectInfo | PrefixEntry) -> ObjectOut:
    if isinstance(info, PrefixEntry):
        return ObjectOut(subdir=info.prefix)
    return ObjectOut(name=info.name, size=info.size, etag=info.etag, last_modified=info.last_modified,
                     content_type=info.content_type, metadata=dict(info.metadata))


def _guard(store: str, container: str, st: Storage, role: str, *, reads_data: bool) -> None:
    if role != "admin":
        check_object_access(store, container, reads_data=reads_data, changes=not reads_data, role=role,
                            protected=repository_containers(st.backups.repository_urls(), st.settings))


def guard_read(store: StorePath, container: ContainerPath, st: StorageDep, principal: PrincipalDep) -> None:
    """Object bytes of a backup repository's container: admins only (api.guards.check_object_access)."""
    _guard(store, container, st, principal.role, reads_data=True)


def guard_change(store: StorePath, container: ContainerPath, st: StorageDep, principal: PrincipalDep) -> None:
    """Changes in a backup repository's container: admins only."""
    _guard(store, container, st, principal.role, reads_data=False)


def _open(st: Storage, store: str) -> ObjectStore:
    return st.objects.store(store)


def _object_headers(info: ObjectInfo) -> dict[str, str]:
    headers = {"Content-Length": str(info.size), "Content-Type": info.content_type or "application/octet-stream"}
    if info.etag:
        headers["ETag"] = f'"{info.etag}"'
    if info.last_modified:
        headers["X-Last-Modified"] = info.last_modified
    for key, value in info.metadata.items():
        headers[f"X-Object-Meta-{key}"] = value
    return headers


@router.get("", response_model=list[StoreOut])
def list_stores(st: StorageDep) -> list[StoreOut]:
    return [StoreOut(name=s.name, type=s.type, options=s.options) for s in st.objects.configured()]


@router.get("/{store}/containers", response_model=list[ContainerOut])
def list_containers(store: StorePath, st: StorageDep, prefix: Annotated[str | None, Query(max_length=256)] = None) -> list[ContainerOut]:
    with _closing(_open(st, store)) as s:
        return [_container(c) for c in s.list_containers(prefix=prefix)]


@router.put("/{store}/containers/{container}", response_model=ContainerOut, status_code=201, dependencies=[Depends(guard_change)])
def create_container(store: StorePath, container: ContainerPath, st: StorageDep, body: ContainerCreate | None = None) -> ContainerOut:
    with _closing(_open(st, store)) as s:
        s.create_container(container, metadata=body.metadata if body else None)
        return _container(s.stat_container(container))


@router.get("/{store}/containers/{container}", response_model=ContainerOut)
def stat_container(store: StorePath, container: ContainerPath, st: StorageDep) -> ContainerOut:
    with _closing(_open(st, store)) as s:
        return _container(s.stat_container(container))


@router.delete("/{store}/containers/{container}", status_code=204, response_class=Response, dependencies=[Depends(guard_change)])
def delete_container(store: StorePath, container: ContainerPath, st: StorageDep) -> Response:
    with _closing(_open(st, store)) as s:
        s.delete_container(container)
    return Response(status_code=204)


@router.get("/{store}/containers/{container}/objects", response_model=list[ObjectOut])
def list_objects(
    store: StorePath, container: ContainerPath, st: StorageDep,
    prefix: Annotated[str | None, Query(max_length=1024)] = None,
    delimiter: Annotated[str | None, Query(min_length=1, max_length=1)] = None,
    marker: Annotated[str | None, Query(max_length=1024)] = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> list[ObjectOut]:
    with _closing(_open(st, store)) as s:
        return [_object(o) for o in s.list_objects(container, prefix=prefix, delimiter=delimiter, marker=marker, limit=limit)]


@router.put(
    "/{store}/containers/{container}/objects/{name:path}",
    response_model=ObjectOut,
    status_code=201,
    dependencies=[Depends(guard_change)],
    openapi_extra={"requestBody": {"required": True, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}},
)
async def upload_object(store: StorePath, container: ContainerPath, name: ObjectPath, request: Request, st: StorageDep) -> ObjectOut:
    """Stream the request body into the object (Content-Type and X-Object-Meta-* headers are kept)."""
    metadata = check_object_metadata(  # bounded before a byte of the body is read
        {k[len(META_PREFIX):]: v for k, v in request.headers.items() if k.lower().startswith(META_PREFIX)},
        field="X-Object-Meta-*",
    )
    content_type = request.headers.get("content-type") or None
    if content_type is not None and len(content_type) > CONTENT_TYPE_MAX:
        raise InvalidInput(f"Content-Type is {len(content_type)} characters long; accepted: at most {CONTENT_TYPE_MAX}", field="content-type")
    tmp_dir = private_dir(st.settings.data_dir / "tmp")
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY, dir=tmp_dir)
    try:
        size = 0
        async for block in request.stream():
            if block:
                await run_in_threadpool(spool.write, block)
                size += len(block)
        spool.seek(0)

        def put() -> ObjectInfo:
            with _closing(_open(st, store)) as s:
                return s.put_object(container, name, spool, length=size, content_type=content_type, metadata=metadata or None)

        return _object(await run_in_threadpool(put))
    finally:
        spool.close()


@router.head("/{store}/containers/{container}/objects/{name:path}", response_class=Response)
def head_object(store: StorePath, container: ContainerPath, name: ObjectPath, st: StorageDep) -> Response:
    with _closing(_open(st, store)) as s:
        info = s.head_object(container, name)
    return Response(status_code=200, headers=_object_headers(info))


@router.get(
    "/{store}/containers/{container}/objects/{name:path}",
    response_class=StreamingResponse,
    dependencies=[Depends(guard_read)],
    responses={200: {"description": "The object's bytes, with its own Content-Type", "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}},
)
def download_object(store: StorePath, container: ContainerPath, name: ObjectPath, st: StorageDep) -> StreamingResponse:
    s = _open(st, store)
    try:
        info = s.head_object(container, name)
        reader = s.get_object(container, name)
    except BaseException:
        s.close()
        raise

    def blocks() -> Iterator[bytes]:
        try:
            while block := reader.read(DOWNLOAD_BLOCK):
                yield block
        finally:
            reader.close()
            s.close()

    headers = _object_headers(info)
    return StreamingResponse(blocks(), media_type=headers.pop("Content-Type"), headers=headers)


@router.delete("/{store}/containers/{container}/objects/{name:path}", status_code=204, response_class=Response,
               dependencies=[Depends(guard_change)])
def delete_object(store: StorePath, container: ContainerPath, name: ObjectPath, st: StorageDep) -> Response:
    with _closing(_open(st, store)) as s:
        s.delete_object(container, name)
    return Response(status_code=204)


class _closing:
    """``with _closing(store) as s``: close the store's connection afterwards."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def __enter__(self) -> ObjectStore:
        return self.store

    def __exit__(self, *exc: object) -> None:
        self.store.close()
