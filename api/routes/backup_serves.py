"""Backups served read-only over NBD by this API host (storage/nbd/managed.py): start one,
list the live ones, stop one. Not a job: the export outlives the request without holding a
job worker slot, until it is stopped or its TTL ends."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ConfigDict, Field, StrictInt

from api.deps import StorageDep, authorize
from api.errors import ERROR_RESPONSES
from api.fields import Body, IdPath, Size
from api.routes.common import caller
from storage.nbd import managed
from storage.nbd.managed import ServedExport

router = APIRouter(prefix="/backups", tags=["backups"], dependencies=[Depends(authorize)], responses=ERROR_RESPONSES)


class ServeRequest(Body):
    model_config = ConfigDict(extra="forbid")
    export_name: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:+@-]*$")] | None = Field(
        default=None, description="NBD export name; default: the backup id")
    host: Annotated[str, Field(min_length=1, max_length=45)] | None = Field(
        default=None, description="Loopback address to listen on (default 127.0.0.1)")
    port: Annotated[StrictInt, Field(ge=1024, le=65535)] | None = Field(default=None, description="TCP port (default 10809)")
    socket: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")] | None = Field(
        default=None, description="Listen on the Unix socket <data_dir>/run/nbd/<socket>.sock instead of TCP")
    cache_size: Size = Field(default="64M", description="Memory for verified chunks (4M to 1G)")
    ttl_seconds: Annotated[StrictInt, Field(ge=managed.TTL_MIN, le=managed.TTL_MAX)] = Field(
        default=managed.TTL_DEFAULT, description="The export is stopped after this long (default 1 h)")


@router.get("/serves", response_model=list[ServedExport])
def list_serves(st: StorageDep) -> list[ServedExport]:
    return st.backups.serves()


@router.post("/{backup_id}/serve", status_code=201, response_model=ServedExport)
def serve_backup(backup_id: IdPath, body: ServeRequest, request: Request, st: StorageDep) -> JSONResponse:
    served = st.backups.serve(backup_id, **body.model_dump(exclude_none=True), created_by=caller(request))
    return JSONResponse(served.model_dump(mode="json"), status_code=201, headers={"Location": f"/backups/serves/{served.id}"})


@router.delete("/serves/{served_id}", status_code=204, response_class=Response)
def stop_serve(served_id: IdPath, st: StorageDep) -> Response:
    st.backups.stop_serve(served_id)
    return Response(status_code=204)
