"""Pools (capacity, capabilities) and the host's block devices (``/host/devices``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from api.deps import StorageDep, authorize
from api.errors import ERROR_RESPONSES
from storage.host import inventory
from storage.host.inventory import HostDevices
from storage.volumes.pools import PoolInfo

router = APIRouter(tags=["pools"], dependencies=[Depends(authorize)], responses=ERROR_RESPONSES)


@router.get("/pools", response_model=list[PoolInfo])
def list_pools(st: StorageDep) -> list[PoolInfo]:
    return st.pools.list()


@router.get("/pools/{name}", response_model=PoolInfo)
def show_pool(name: str, st: StorageDep) -> PoolInfo:
    return st.pools.get(name)


@router.get("/host/devices", response_model=HostDevices)
def host_devices() -> HostDevices:
    """lsblk, losetup and (when LVM tools exist) pvs/vgs reports of this host."""
    return inventory.host_devices()
