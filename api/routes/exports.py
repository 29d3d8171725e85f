"""iSCSI exports: export/unexport a volume, its os-brick connection info, list, reconcile.

The CHAP secret is returned only by ``GET /volumes/{ref}/connection-info?show_secret=true``,
which needs the operator role (a reader sees ``auth_password: null``). A secret given on export
travels in the request body, never in a URL.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import Field

from api.deps import StorageDep, authorize
from api.errors import ERROR_RESPONSES
from api.fields import Body, RefPath, ShortList
from storage.auth.service import Principal
from storage.exports.models import Export, ReconcileReport

router = APIRouter(tags=["exports"], dependencies=[Depends(authorize)], responses=ERROR_RESPONSES)


class ExportCreate(Body):
    initiators: ShortList | None = Field(default=None, description="Allowed initiator IQNs (default: any)")
    chap: bool = True
    chap_username: str | None = Field(default=None, min_length=1, max_length=64)
    chap_secret: str | None = Field(default=None, min_length=12, max_length=16, description="12-16 characters; generated when omitted")
    portal: str | None = Field(default=None, min_length=1, max_length=262, description="HOST:PORT to advertise (default: the configured one)")


@router.get("/exports", response_model=list[Export])
def list_exports(st: StorageDep) -> list[Export]:
    return st.exports.list()


@router.post("/volumes/{ref}/export", response_model=Export, status_code=201)
def export_volume(ref: RefPath, body: ExportCreate, st: StorageDep) -> Export:
    return st.exports.export(
        ref, initiators=body.initiators, chap=body.chap, chap_username=body.chap_username,
        chap_secret=body.chap_secret, portal=body.portal,
    )  # fmt: skip


@router.delete("/volumes/{ref}/export", response_model=Export)
def unexport_volume(ref: RefPath, st: StorageDep) -> Export:
    return st.exports.unexport(ref)


@router.get("/volumes/{ref}/connection-info")
def connection_info(
    ref: RefPath,
    st: StorageDep,
    principal: Annotated[Principal, Depends(authorize)],
    show_secret: Annotated[bool, Query(description="Include the CHAP secret (operator role)")] = False,
) -> dict[str, Any]:
    if show_secret:
        principal.require("operator")
    return st.exports.connection_info(ref, include_secret=show_secret)


@router.post("/exports/reconcile", response_model=ReconcileReport)
def reconcile(st: StorageDep, remove_strays: bool = False) -> ReconcileReport:
    return st.exports.reconcile(remove_strays=remove_strays)
