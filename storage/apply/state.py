"""Read the current state a plan starts from, through the services (the only I/O of planning)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from storage.apply.plan import POLICY_FIELDS, CurrentState, ExportState, VolumeState
from storage.errors import StorageError

if TYPE_CHECKING:
    from storage.exports.service import ExportService
    from storage.host.api import HostApi
    from storage.policy.service import PolicyService
    from storage.volumes.service import VolumeService
    from storage.volumes.snapshots import SnapshotService


def _all_holes(host: "HostApi", pool: str, volume_id: str) -> bool:
    try:
        return host.volume_is_all_holes(pool, volume_id)
    except StorageError:
        return False  # cannot tell: treat it as holding data


def read_state(
    *,
    host_name: str,
    host: "HostApi",
    volumes: "VolumeService",
    snapshots: "SnapshotService",
    policies: "PolicyService",
    exports: "ExportService",
    declared_volumes: frozenset[str],
    prune: bool,
) -> CurrentState:
    """Volumes, policies and exports as they are. Whether a volume is all holes is asked only of
    undeclared volumes a prune could delete (it reads the pool)."""
    vols = volumes.list()
    snap_counts: dict[str, int] = {}
    for snap in snapshots.list():
        snap_counts[snap.volume_id] = snap_counts.get(snap.volume_id, 0) + 1
    granularity: dict[str, int] = {}
    for pool in sorted({v.pool for v in vols}):
        try:
            granularity[pool] = int(host.pool_capabilities(pool)["size_granularity"])
        except StorageError:
            granularity[pool] = 1
    volume_states = {
        v.name: VolumeState(
            name=v.name, size_bytes=v.size_bytes, pool=v.pool, labels=dict(v.labels),
            attached=v.attached_device is not None, snapshots=snap_counts.get(v.id, 0),
            all_holes=prune and v.name not in declared_volumes and _all_holes(host, v.pool, v.id),
        )  # fmt: skip
        for v in vols
    }
    policy_states = {p.name: p.model_dump(include=set(POLICY_FIELDS)) for p in policies.list()}
    export_states = {
        e.volume_name: ExportState(
            volume=e.volume_name, chap=e.auth_method == "CHAP", initiators=tuple(e.initiators),
            attached_by_export=e.attached_by_export,
        )  # fmt: skip
        for e in exports.list()
    }
    return CurrentState(
        host=host_name, granularity=granularity, volumes=volume_states, policies=policy_states, exports=export_states
    )
