"""Pools (capacity, capabilities) and the host's block devices."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from api.deps import StorageDep, authorize
from api.errors import ERROR_RESPONSES
from storage.pools import PoolInfo

router = APIRouter(tags=["pools"], dependencies=[Depends(authorize)], responses=ERROR_RESPONSES)


@router.get("/pools", response_model=list[PoolInfo])
def list_pools(st: StorageDep) -> list[PoolInfo]:
    return st.pools.list()


@router.get("/pools/{name}", response_model=PoolInfo)
def show_pool(name: str, st: StorageDep) -> PoolInfo:
    return st.pools.get(name)
