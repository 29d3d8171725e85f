"""Cinder views of our models (pure functions): Cinder field names, sizes in GiB, Cinder statuses."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from storage.domain import Snapshot, Volume

GiB = 1024**3
AVAILABILITY_ZONE = "nova"
# our transitional statuses that Cinder does not have -> what a Cinder user expects to see
_VOLUME_STATUS = {"snapshotting": "available", "cloning": "available"}
_SNAPSHOT_STATUS = {"cloning": "available", "backing-up": "backing-up"}
_BACKUP_STATUS = {"interrupted": "error", "damaged": "error", "lost": "error"}


def gib(size_bytes: int) -> int:
    """Bytes -> whole GiB, rounded up (Cinder sizes are integer GiB)."""
    return max(1, -(-int(size_bytes) // GiB)) if size_bytes else 0


def timestamp(value: datetime | None) -> str | None:
    """Cinder's timestamp form: naive UTC with microseconds."""
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") if value else None


def self_links(base_url: str, collection: str, item_id: str) -> list[dict[str, str]]:
    return [
        {"rel": "self", "href": f"{base_url}/{collection}/{item_id}"},
        {"rel": "bookmark", "href": f"{base_url}/{collection}/{item_id}"},
    ]


def volume_status(vol: Volume, attached: bool = False) -> str:
    status = vol.status.value
    if status in _VOLUME_STATUS:
        return "in-use" if vol.attached_device or attached else _VOLUME_STATUS[status]
    return status


def volume_summary(vol: Volume, base_url: str) -> dict[str, Any]:
    return {"id": vol.id, "name": vol.name, "links": self_links(base_url, "volumes", vol.id)}


def volume_detail(vol: Volume, base_url: str, project_id: str | None, cinder_attachments: Any = ()) -> dict[str, Any]:
    """``cinder_attachments``: what os-attach recorded (storage.exports.connections.CinderAttachment)."""
    attachments = []
    if vol.attached_device:
        attachments.append({
            "id": vol.id, "attachment_id": vol.id, "volume_id": vol.id, "server_id": None,
            "host_name": None, "device": vol.attached_device, "attached_at": timestamp(vol.updated_at),
        })
    for att in cinder_attachments:
        attachments.append({
            "id": vol.id, "attachment_id": att.id, "volume_id": vol.id, "server_id": att.instance_uuid,
            "host_name": att.host_name, "device": att.mountpoint, "attached_at": timestamp(att.attached_at),
        })  # fmt: skip
    return {
        **volume_summary(vol, base_url),
        "status": volume_status(vol, bool(cinder_attachments)),
        "size": gib(vol.size_bytes),
        "availability_zone": AVAILABILITY_ZONE,
        "created_at": timestamp(vol.created_at),
        "updated_at": timestamp(vol.updated_at),
        "attachments": attachments,
        "description": vol.description,
        "volume_type": vol.pool,
        "snapshot_id": vol.source_snapshot_id,
        "source_volid": vol.source_volume_id,
        "metadata": dict(vol.labels),
        "user_id": None,
        "bootable": "false",
        "encrypted": False,
        "multiattach": False,
        "replication_status": None,
        "consistencygroup_id": None,
        "group_id": None,
        "migration_status": None,
        "os-vol-host-attr:host": f"{vol.host or 'localhost'}@{vol.pool}#{vol.pool}",
        "os-vol-tenant-attr:tenant_id": project_id,
        "os-vol-mig-status-attr:migstat": None,
        "os-vol-mig-status-attr:name_id": None,
        # later microversions' fields (3.48 shared_targets/service_uuid, 3.61 cluster_name,
        # 3.63 volume_type_id, 3.65 consumes_quota): volume types are the pools, named by their id
        "volume_type_id": vol.pool,
        "shared_targets": False,
        "service_uuid": None,
        "cluster_name": None,
        "provider_id": None,
        "consumes_quota": True,
    }


def snapshot_detail(snap: Snapshot, base_url: str, project_id: str | None) -> dict[str, Any]:
    return {
        "id": snap.id,
        "name": snap.name,
        "description": snap.description,
        "volume_id": snap.volume_id,
        "status": _SNAPSHOT_STATUS.get(snap.status.value, snap.status.value),
        "size": gib(snap.size_bytes),
        "created_at": timestamp(snap.created_at),
        "updated_at": timestamp(snap.updated_at),
        "metadata": dict(snap.labels),
        "progress": "100%" if snap.status.value == "available" else "0%",
        "os-extended-snapshot-attributes:project_id": project_id,
        "os-extended-snapshot-attributes:progress": "100%" if snap.status.value == "available" else "0%",
        "group_snapshot_id": None,  # 3.14
        "user_id": None,  # 3.41
        "consumes_quota": True,  # 3.65
        "links": self_links(base_url, "snapshots", snap.id),
    }


def backup_detail(backup: Any, base_url: str, container: str | None = None) -> dict[str, Any]:
    """A storage.backup.models.Backup as Cinder shows a backup."""
    return {
        "id": backup.id,
        "name": backup.name,
        "description": backup.description,
        "volume_id": backup.volume_id,
        "snapshot_id": None,
        "status": _BACKUP_STATUS.get(backup.status, backup.status),
        "size": gib(backup.size_bytes),
        "object_count": backup.chunk_count,
        "container": container or backup.repository,
        "availability_zone": AVAILABILITY_ZONE,
        "created_at": timestamp(backup.created_at),
        "updated_at": timestamp(backup.completed_at or backup.created_at),
        "data_timestamp": timestamp(backup.created_at),
        "fail_reason": backup.error,
        "is_incremental": False,  # every backup is logically full (no parent chains)
        "has_dependent_backups": False,
        "metadata": dict(backup.labels),
        "links": self_links(base_url, "backups", backup.id),
    }


def generated_name(kind: str) -> str:
    """Cinder allows unnamed volumes and snapshots; ours need a name."""
    return f"{kind}-{secrets.token_hex(4)}"


def absolute_limits(volumes: list[Volume], snapshots: list[Snapshot], backups: list[Any], capacity_bytes: int) -> dict[str, int]:
    """Cinder's absolute limits: no quotas here, so the maxima are pool capacity or -1 (unlimited)."""
    return {
        "maxTotalVolumes": -1,
        "maxTotalSnapshots": -1,
        "maxTotalBackups": -1,
        "maxTotalVolumeGigabytes": capacity_bytes // GiB if capacity_bytes else -1,
        "maxTotalBackupGigabytes": -1,
        "totalVolumesUsed": len(volumes),
        "totalSnapshotsUsed": len(snapshots),
        "totalBackupsUsed": len(backups),
        "totalGigabytesUsed": sum(gib(v.size_bytes) for v in volumes) + sum(gib(s.size_bytes) for s in snapshots),
        "totalBackupGigabytesUsed": sum(gib(b.size_bytes) for b in backups),
    }
