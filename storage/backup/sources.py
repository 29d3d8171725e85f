"""Backup sources: a catalog volume (through a temporary snapshot), a snapshot, or a path.

A detached volume (``available``) on a pool without changed ranges (a file pool on ext4, thick
LVM) is read in place while held ``backing-up`` (attach, export and delete wait; Cinder does the
same): there a snapshot is a full copy (on ext4 a copy_file_range of the whole volume, its fsync
and its unlink: about 60% of an incremental backup's time), and nothing can write a detached
volume. An attached volume is read through a snapshot (crash-consistent).

For a catalog volume on a pool that reports changed ranges (reflinks), the snapshot taken for
the backup is kept afterwards, labelled ``storage.backup/base=<repository id>``, as the base of
the next backup of that volume to that repository: ``svc.snapshots.changed_ranges(base, new)``
then says what to read. On other pools it is deleted right after the backup.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from storage.errors import Conflict, NotFound, StorageError

if TYPE_CHECKING:
    from storage.backup.service import BackupService

BASE_LABEL = "storage.backup/base"
KINDS = ("volume", "snapshot", "path")


@dataclass
class SourceRef:
    kind: str  # volume | snapshot | path
    ref: str  # volume/snapshot id, or a path
    description: str
    volume_id: str | None = None
    volume_name: str | None = None


def resolve(svc: "BackupService", source: str) -> SourceRef:
    """'volume:REF', 'snapshot:REF', 'path:/x', an absolute path, or a volume then snapshot name/id."""
    kind, sep, rest = source.partition(":")
    if sep and kind in KINDS:
        return _resolve_kind(svc, kind, rest)
    if source.startswith("/") or os.path.exists(source):
        return _resolve_kind(svc, "path", source)
    try:
        return _resolve_kind(svc, "volume", source)
    except NotFound:
        pass
    try:
        return _resolve_kind(svc, "snapshot", source)
    except NotFound:
        raise NotFound(
            f"backup source {source!r} is not a volume, a snapshot or a path; accepted: a volume or snapshot name/id, "
            "a block device or image path, or volume:REF / snapshot:REF / path:PATH"
        ) from None


def _resolve_kind(svc: "BackupService", kind: str, ref: str) -> SourceRef:
    if kind == "path":
        path = os.path.abspath(ref)
        if not os.path.exists(path):
            raise NotFound(f"backup source path {path!r} does not exist")
        return SourceRef("path", path, path)
    if kind == "volume":
        vol = svc.volumes.get(ref)
        return SourceRef("volume", vol.id, f"volume {vol.name}", vol.id, vol.name)
    snap = svc.snapshots.get(ref)
    return SourceRef("snapshot", snap.id, f"snapshot {snap.name}", snap.volume_id, snap.volume_name)


@dataclass
class OpenedSource:
    path: str
    snapshot_id: str | None  # the snapshot read (for volumes: the new base)
    temporary_snapshot: bool


@contextmanager
def open_source(svc: "BackupService", src: SourceRef, repository_id: str) -> Iterator[OpenedSource]:
    """Yield a readable path. A volume source gets a new snapshot, deleted again on error."""
    if src.kind == "path":
        yield OpenedSource(src.ref, None, False)
        return
    if src.kind == "snapshot":
        with svc.snapshots.open(src.ref) as path:
            yield OpenedSource(path, src.ref, False)
        return
    held = _hold_detached(svc, src.ref)
    if held is not None:
        with held, svc.host.open_volume(svc.volumes.get(src.ref).pool, src.ref) as path:
            yield OpenedSource(path, None, False)
        return
    snap = svc.snapshots.create(src.ref, labels={BASE_LABEL: repository_id})
    ok = False
    try:
        with svc.snapshots.open(snap.id) as path:
            yield OpenedSource(path, snap.id, True)
        ok = True
    finally:
        if not ok:
            _delete_quietly(svc, snap.id)


def _hold_detached(svc: "BackupService", volume_id: str) -> Any:
    """The entered hold (BACKING_UP) of a detached volume on a pool without changed ranges, else None."""
    from storage.domain import VolumeStatus

    vol = svc.volumes.get(volume_id)
    if vol.status != VolumeStatus.AVAILABLE or svc.host.pool_capabilities(vol.pool)["changed_ranges"]:
        return None
    hold = svc.volumes.hold(vol.id, VolumeStatus.BACKING_UP, allowed_from=frozenset({VolumeStatus.AVAILABLE}))
    try:
        hold.__enter__()
    except Conflict:  # attached meanwhile: read it through a snapshot
        return None
    return _Entered(hold)


class _Entered:
    """A hold entered already; exiting it puts the prior status back."""

    def __init__(self, hold: Any) -> None:
        self.hold = hold

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> Any:
        return self.hold.__exit__(*exc)


def changed_ranges(svc: "BackupService", base_snapshot_id: str, snapshot_id: str) -> Any:
    """The snapshot service's changed ranges, or None when unknown or the base is gone."""
    try:
        return svc.snapshots.changed_ranges(base_snapshot_id, snapshot_id)
    except NotFound:
        return None


def keep_or_drop_base(svc: "BackupService", volume_id: str, repository_id: str, snapshot_id: str) -> str | None:
    """After a backup: keep its snapshot as the next base when the pool reports changed ranges
    (retiring older bases), else delete it (a full copy on a non-reflink pool, useless as a base)."""
    vol = svc.volumes.get(volume_id)
    if svc.host.pool_capabilities(vol.pool)["changed_ranges"]:
        retire_old_bases(svc, volume_id, repository_id, keep=snapshot_id)
        return snapshot_id
    _delete_quietly(svc, snapshot_id)
    retire_old_bases(svc, volume_id, repository_id, keep="")
    return None


def retire_old_bases(svc: "BackupService", volume_id: str, repository_id: str, keep: str) -> None:
    """Delete the earlier base snapshots of a volume for a repository (only the newest is needed)."""
    for snap in svc.snapshots.list(volume=volume_id, labels={BASE_LABEL: repository_id}):
        if snap.id != keep:
            _delete_quietly(svc, snap.id)


def _delete_quietly(svc: "BackupService", snapshot_id: str) -> None:
    try:
        svc.snapshots.delete(snapshot_id)
    except StorageError:
        pass
