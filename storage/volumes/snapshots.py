"""SnapshotService (``st.snapshots``): point-in-time copies of volumes.

Taking a snapshot holds the volume in ``snapshotting`` (compare-and-set, so it cannot race a
delete, revert or extend) and restores its prior status after.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sqlalchemy import select

from storage.catalog import intents
from storage.catalog.base import new_id, utcnow
from storage.catalog.volumes import (
    SnapshotRow,
    VolumeRow,
    cas_snapshot_status,
    delete_snapshot_row,
    force_snapshot_status,
    load_snapshot,
    snapshot_model,
    this_owner,
)
from storage.domain import Snapshot, SnapshotStatus, VolumeStatus
from storage.errors import Conflict, InvalidInput, NotFound
from storage.names import NAME_MAX, is_uuid, validate_name
from storage.volumes.settle import settle_volumes
from storage.logs.context import annotate
from storage.logs.ops import operation

if TYPE_CHECKING:
    from backends.volume.base import ChangedRanges
    from storage.catalog import Catalog
    from storage.host.api import HostApi
    from storage.volumes.service import VolumeService

S = SnapshotStatus


def auto_snapshot_name(volume_name: str, now_text: str, suffix: str) -> str:
    """'<volume>-<UTC time>-<suffix>', trimmed to the name limit (pure)."""
    tail = f"-{now_text}-{suffix}"
    return volume_name[: NAME_MAX - len(tail)] + tail


class SnapshotService:
    def __init__(self, catalog: "Catalog", host: "HostApi", volumes: "VolumeService") -> None:
        self._catalog = catalog
        self._host = host
        self._volumes = volumes

    def _row_id(self, ref: str) -> str:
        if not isinstance(ref, str) or not ref:
            raise InvalidInput(f"snapshot reference {ref!r} is not accepted; accepted: a snapshot name or id")
        with self._catalog.session() as s:
            column = SnapshotRow.id if is_uuid(ref) else SnapshotRow.name
            sid = s.scalar(select(SnapshotRow.id).where(column == ref))
        if sid is None:
            raise NotFound(f"snapshot {ref!r} not found (by name or id); see `storagectl snapshot list`", snapshot=ref)
        return sid

    def get(self, ref: str) -> Snapshot:
        sid = self._row_id(ref)
        with self._catalog.session() as s:
            vid = s.scalar(select(SnapshotRow.volume_id).where(SnapshotRow.id == sid))
        settle_volumes(self._catalog, self._host, [vid] if vid else [])  # a status left by a dead process is settled
        with self._catalog.session() as s:
            snap = load_snapshot(s, sid)
        if snap is None:
            raise NotFound(f"snapshot {ref!r} not found", snapshot=ref)
        annotate(snapshot_id=snap.id, volume_id=snap.volume_id)  # the operation's log lines name it
        return snap

    def list(self, *, volume: str | None = None, labels: dict[str, str] | None = None) -> list[Snapshot]:
        from storage.volumes.service import labels_match

        vid = self._volumes.get(volume).id if volume else None
        if vid is None:
            settle_volumes(self._catalog, self._host)
        with self._catalog.session() as s:
            q = (
                select(SnapshotRow, VolumeRow.name)
                .join(VolumeRow, VolumeRow.id == SnapshotRow.volume_id)
                .order_by(SnapshotRow.created_at, SnapshotRow.name)
            )
            if vid is not None:
                q = q.where(SnapshotRow.volume_id == vid)
            snaps = [snapshot_model(row, vname) for row, vname in s.execute(q).all()]
        return [x for x in snaps if labels_match(x.labels, labels)]

    @operation("snapshot.create")
    def create(self, volume_ref: str, name: str | None = None, *, labels: dict[str, str] | None = None) -> Snapshot:
        from storage.volumes.service import validate_labels

        made = intents.resume("snapshot")  # a keyed request whose first attempt died after making it
        if made is not None:
            try:
                return self.get(made)  # settles a status its dead creator left
            except NotFound:
                pass  # gone since (never finished, or deleted): make it
        vol = self._volumes.get(volume_ref)
        if name is None:
            name = auto_snapshot_name(vol.name, utcnow().strftime("%Y%m%dT%H%M%SZ"), secrets.token_hex(3))
        validate_name(name, kind="snapshot")
        labels = validate_labels(labels)
        sid = new_id()
        hold = self._volumes._hold_volume(
            vol.id, VolumeStatus.SNAPSHOTTING, frozenset({VolumeStatus.AVAILABLE, VolumeStatus.IN_USE})
        )
        with hold:
            with self._catalog.session() as s:
                if s.scalar(select(SnapshotRow.id).where(SnapshotRow.name == name)) is not None:
                    raise Conflict(f"a snapshot named {name!r} exists already; choose another name", snapshot=name)
                now = utcnow()
                s.add(
                    SnapshotRow(
                        id=sid, name=name, volume_id=vol.id, size_bytes=vol.size_bytes, status=S.CREATING.value,
                        labels=labels, task_owner=this_owner(), created_at=now, updated_at=now,
                    )
                )
                intents.record_made(s, "snapshot", sid)  # with the row: a retry of this keyed request finds it
            try:
                self._host.create_snapshot(vol.pool, vol.id, sid)
            except BaseException:
                self._host.delete_snapshot(vol.pool, vol.id, sid)
                with self._catalog.session() as s:
                    delete_snapshot_row(s, sid)
                raise
            with self._catalog.session() as s:
                cas_snapshot_status(s, sid, S.AVAILABLE, transitional=False)
        return self.get(sid)

    @operation("snapshot.delete")
    def delete(self, ref: str) -> None:
        snap = self.get(ref)
        self._volumes.require_host_up(self._volumes.get(snap.volume_id))
        self._delete_by_id(snap.id)

    def _delete_by_id(self, sid: str, *, force: bool = False) -> None:
        with self._catalog.session() as s:
            if force:
                force_snapshot_status(s, sid, S.DELETING)
            else:
                cas_snapshot_status(s, sid, S.DELETING, allowed_from=frozenset({S.AVAILABLE, S.ERROR, S.ERROR_DELETING}))
            row = s.get(SnapshotRow, sid)
            assert row is not None
            vid = row.volume_id
            pool = s.scalar(select(VolumeRow.pool).where(VolumeRow.id == vid))
        try:
            self._host.delete_snapshot(pool or "", vid, sid)
        except BaseException:
            with self._catalog.session() as s:
                force_snapshot_status(s, sid, S.ERROR_DELETING)
            raise
        with self._catalog.session() as s:
            delete_snapshot_row(s, sid)

    @operation("snapshot.revert")
    def revert(self, ref: str):  # -> Volume
        """Revert the snapshot's volume to it (same as st.volumes.revert(volume, snapshot))."""
        snap = self.get(ref)
        return self._volumes.revert(snap.volume_id, snap.id)

    @operation("snapshot.update")
    def update(self, ref: str, *, name: str | None = None, labels: dict[str, str] | None = None) -> Snapshot:
        from storage.volumes.service import validate_labels

        snap = self.get(ref)
        with self._catalog.session() as s:
            row = s.get(SnapshotRow, snap.id)
            assert row is not None
            if name is not None and name != snap.name:
                validate_name(name, kind="snapshot")
                if s.scalar(select(SnapshotRow.id).where(SnapshotRow.name == name)) is not None:
                    raise Conflict(f"a snapshot named {name!r} exists already; choose another name", snapshot=name)
                row.name = name
            if labels is not None:
                row.labels = validate_labels(labels)
            row.updated_at = utcnow()
        return self.get(snap.id)

    @contextmanager
    def open(self, ref: str) -> Iterator[str]:
        """Yield a readable path (file or block device) holding the snapshot's data."""
        snap = self.get(ref)
        if snap.status not in (S.AVAILABLE, S.BACKING_UP, S.CLONING):
            raise Conflict(f"snapshot {snap.name!r} is {snap.status.value}; it can be read when available", snapshot=snap.name)
        vol = self._volumes.get(snap.volume_id)
        with self._host.open_snapshot(vol.pool, vol.id, snap.id) as path:
            yield path

    def changed_ranges(self, base_snapshot_ref: str, snapshot_ref: str) -> "ChangedRanges | None":
        """Byte ranges of ``snapshot_ref`` that may differ from ``base_snapshot_ref``; None when unknown."""
        base = self.get(base_snapshot_ref)
        new = self.get(snapshot_ref)
        if base.volume_id != new.volume_id:
            raise InvalidInput(
                f"snapshots {base.name!r} and {new.name!r} belong to different volumes; accepted: two snapshots of one volume"
            )
        vol = self._volumes.get(new.volume_id)
        return self._host.changed_ranges(vol.pool, vol.id, base.id, new.id)
