"""Storage hosts (the services table): list, show; disable/enable for maintenance (admin)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any


from fastapi import APIRouter, Depends, Path
from pydantic import Field

from api.deps import StorageDep, authorize, require_admin
from api.errors import ERROR_RESPONSES
from api.fields import Body
from storage.hosts.state import HostInfo

router = APIRouter(prefix="/hosts", tags=["hosts"], dependencies=[Depends(authorize)], responses=ERROR_RESPONSES)


HostPath = Annotated[str, Path(min_length=1, max_length=255, description="A host name (services table)")]


class Disable(Body):
    reason: str | None = Field(default=None, max_length=255, description="Why (shown in the host's record)")


@router.get("", response_model=list[HostInfo])
def list_hosts(st: StorageDep) -> list[HostInfo]:
    """Every registered host: up, down (no heartbeat within service_down_time) or disabled."""
    return st.hosts.list()


@router.get("/candidates", response_model=list[dict[str, Any]])
def placement_candidates(st: StorageDep) -> list[dict[str, Any]]:
    """Every host's pools as the scheduler sees them: capacity, zone, labels, up/disabled, error."""
    return [asdict(c) for c in st.hosts.candidates()]


@router.get("/{name}", response_model=HostInfo)
def show_host(name: HostPath, st: StorageDep) -> HostInfo:
    return st.hosts.get(name)


@router.post("/{name}/disable", response_model=HostInfo, dependencies=[Depends(require_admin)])
def disable_host(name: HostPath, st: StorageDep, body: Disable | None = None) -> HostInfo:
    """Maintenance: the host keeps serving its volumes but gets no new ones."""
    return st.hosts.disable(name, body.reason if body else None)


@router.post("/{name}/enable", response_model=HostInfo, dependencies=[Depends(require_admin)])
def enable_host(name: HostPath, st: StorageDep) -> HostInfo:
    return st.hosts.enable(name)
