"""Cinder's ``GET /scheduler-stats/get_pools`` (admin; python-cinderclient ``pools.list(detailed=True)``,
``cinder get-pools --detail``): every host's pools as the scheduler sees them.

A pool is named ``host@pool#pool``, as a volume's ``os-vol-host-attr:host`` names it.
``free_capacity_gb`` is the room the scheduler's ``free`` weigher ranks (provisionable bytes on a
thin pool, free bytes on a thick one, less the volumes made since the host's last heartbeat), so a
client can check where the next volume goes; ``backend_state`` is ``up`` or ``down`` as in Cinder,
and ``disabled`` (not Cinder's) says a host is in maintenance. Pure view: ``pool_view``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query

from api.cinder.common import cinder_router, include_both
from api.deps import StorageDep, require_admin
from storage.scheduler import Candidate
from storage.scheduler.filters import room_bytes

router = cinder_router()
GiB = 1 << 30


def _gb(value: int) -> float:
    return round(value / GiB, 3)


def pool_view(c: Candidate, detail: bool, version: str) -> dict[str, Any]:
    """One pool in Cinder's get_pools shape (``detail``: with its capabilities)."""
    name = f"{c.host}@{c.pool}#{c.pool}"
    if not detail:
        return {"name": name}
    return {
        "name": name,
        "capabilities": {
            "pool_name": c.pool, "volume_backend_name": c.pool, "vendor_name": "storage", "driver_version": version,
            "storage_protocol": "iSCSI", "total_capacity_gb": _gb(c.total_bytes), "free_capacity_gb": _gb(max(room_bytes(c), 0)),
            "provisioned_capacity_gb": _gb(c.provisioned_bytes), "allocated_capacity_gb": _gb(c.provisioned_bytes),
            "max_over_subscription_ratio": str(c.overcommit_ratio), "thin_provisioning_support": c.thin,
            "thick_provisioning_support": not c.thin, "reserved_percentage": 0, "availability_zone": c.availability_zone,
            "backend_state": "up" if c.up and c.error is None else "down", "disabled": c.disabled,
            "disabled_reason": c.disabled_reason, "error": c.error,
        },
    }


@router.get("/scheduler-stats/get_pools", dependencies=[Depends(require_admin)])
def get_pools(st: StorageDep, detail: bool = False, name: Annotated[str | None, Query(max_length=512)] = None) -> dict:
    from storage import __version__

    pools = [pool_view(c, detail, __version__) for c in st.hosts.candidates()]
    return {"pools": [p for p in pools if name is None or p["name"] == name]}


def register(app: FastAPI) -> None:
    include_both(app, router)
