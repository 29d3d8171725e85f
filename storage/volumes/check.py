"""Reconcile the catalog against the backends (``storagectl check [--repair]``).

Finds: volumes/snapshots whose backing data is missing, backend items the catalog does not
know (orphans), loop devices of a pool that belong to no attached volume (stale), attachments
the host no longer has, size mismatches, and objects stuck in a transitional status because
the process that ran the operation died between the backend step and the catalog update.
Nothing changes unless ``repair=True``; the decisions are pure functions of what was seen.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field
from sqlalchemy import select

from storage.catalog.volumes import (
    AttachmentRow,
    SnapshotRow,
    VolumeRow,
    delete_snapshot_row,
    delete_volume_row,
    force_snapshot_status,
    force_volume_status,
)
from storage.catalog.base import new_id
from storage.catalog.exports import ExportRow
from storage.domain import (
    TRANSITIONAL_SNAPSHOT_STATUSES,
    TRANSITIONAL_VOLUME_STATUSES,
    SnapshotStatus,
    VolumeStatus,
)
from storage import owners
from storage.errors import StorageError

if TYPE_CHECKING:
    from backends.volume.base import BackendItem, VolumeBackend
    from collections.abc import Callable, Collection

    from storage.catalog import Catalog
    from storage.host.local import LocalHost

V = VolumeStatus
S = SnapshotStatus
DEFAULT_STALE_AFTER = 3600.0


class Finding(BaseModel):
    kind: str
    pool: str
    object_id: str | None = None
    name: str | None = None
    detail: str
    repair: str  # what --repair does (or did)
    repaired: bool = False
    repair_error: str | None = None


class CheckReport(BaseModel):
    repair: bool
    pools_checked: list[str] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)  # pools that could not be checked

    @property
    def clean(self) -> bool:
        return not self.findings and not self.errors


# -- pure decisions -------------------------------------------------------------


def owner_is_dead(owner: str | None, this_host: str, pid_alive: Any, start_of: Any = lambda _pid: None) -> bool:
    """True when ``owner`` ("host:pid[:start]") names a process on this host that no longer runs
    (or whose pid another process has now); no owner at all counts as dead here (check only)."""
    if not owner:
        return True
    return owners.owner_is_dead(owner, this_host, pid_alive, start_of)


def is_stuck(status_transitional: bool, owner: str | None, updated_at: datetime, now: datetime,
             stale_after: float, this_host: str, pid_alive: Any, start_of: Any = lambda _pid: None) -> bool:
    if not status_transitional:
        return False
    if owner_is_dead(owner, this_host, pid_alive, start_of):
        return True
    return now - updated_at > timedelta(seconds=stale_after)


def settle_volume(status: VolumeStatus, has_file: bool, attached: bool) -> tuple[str, VolumeStatus | None]:
    """(action, new status) for a volume stuck in ``status``.

    Actions: "set" (to the new status), "finish_delete", "drop_row".
    """
    rest = V.IN_USE if attached else V.AVAILABLE
    if status is V.DELETING:
        return "finish_delete", None
    if not has_file:
        return ("drop_row", None) if status is V.CREATING else ("set", V.ERROR)
    if status is V.RESTORING_BACKUP:
        return "set", V.ERROR  # partial data
    if status in (V.CREATING, V.REVERTING):
        return "set", V.AVAILABLE  # copies and reverts land by atomic rename: complete or absent
    return "set", rest


def settle_snapshot(status: SnapshotStatus, has_file: bool) -> tuple[str, SnapshotStatus | None]:
    if status is S.DELETING:
        return "finish_delete", None
    if not has_file:
        return ("drop_row", None) if status is S.CREATING else ("set", S.ERROR)
    return "set", S.AVAILABLE


# -- the check --------------------------------------------------------------------


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def volume_in_operation(status: VolumeStatus, owner: str | None) -> bool:
    """Whether a process runs an operation of this status. ``attaching``/``detaching`` without an
    owner are a Cinder client's (os-reserve, os-begin_detaching): it settles them itself
    (os-unreserve, os-roll_detaching, os-detach), so check leaves them alone."""
    if status in (V.ATTACHING, V.DETACHING) and not owner:
        return False
    return status in TRANSITIONAL_VOLUME_STATUSES


def check(
    catalog: "Catalog", host: "LocalHost", pools: "Collection[str]", repair: bool = False, *,
    stale_after: float = DEFAULT_STALE_AFTER, host_name: str | None = None,
) -> CheckReport:
    """Compare the catalog with this host's drivers (``pools``: the configured pool names);
    with repair=True fix what can be fixed safely. ``Storage.check()`` calls this. With
    ``host_name`` only the volumes that host owns are compared (several hosts share one catalog and
    pool names: another host's volume is not "missing" from this host's pool of the same name)."""
    report = CheckReport(repair=repair)
    with catalog.session() as s:
        every = list(s.scalars(select(VolumeRow)).all())
        snaps = list(s.scalars(select(SnapshotRow)).all())
        atts = {a.volume_id: a for a in s.scalars(select(AttachmentRow)).all()}
        # a connection's iSCSI target holds the device without an attachment row (exports.origin)
        held = set(s.scalars(select(ExportRow.volume_id).where(ExportRow.attached_by_export.is_(True))).all())
    vols = [v for v in every if host_name is None or v.host in (None, host_name)]
    others = {v.id for v in every} - {v.id for v in vols}  # another host's: never this pool's orphans
    elsewhere = others | {x.id for x in snaps if x.volume_id in others}
    for pool in sorted(set(pools) | {v.pool for v in vols}):
        try:
            backend = host.volume_backend(pool)
            items = backend.list_items()
        except StorageError as exc:
            report.errors.append(f"pool {pool!r}: {exc.message}")
            continue
        report.pools_checked.append(pool)
        ctx = _PoolCheck(catalog, report, pool, backend, items, stale_after)
        pool_vols = [v for v in vols if v.pool == pool]
        pool_vol_ids = {v.id for v in pool_vols}
        ctx.run([v for v in pool_vols], [x for x in snaps if x.volume_id in pool_vol_ids], atts, held, elsewhere)
    return report


def settle_orphaned(catalog: "Catalog", host: "LocalHost", volume_id: str,
                    is_dead: "Callable[[str | None], bool] | None" = None) -> list[Finding]:  # fmt: skip
    """Settle a volume and its snapshots left in a transitional status by a process of this host
    that is gone (kill -9, a crash), exactly as ``check --repair`` would, and only those: a status
    of a live process, of another host or without an owner is left alone. Called by the next
    command that meets such a status (``storage.volumes.settle``); returns what was settled.
    ``is_dead`` (owner -> gone) replaces the probe of this host's processes: the agent passes the
    owners it found gone, another machine's replicas included (storage.hosts.replicas)."""
    with catalog.session() as s:
        vol = s.get(VolumeRow, volume_id)
        if vol is None:
            return []
        snaps = list(s.scalars(select(SnapshotRow).where(SnapshotRow.volume_id == volume_id)).all())
        att = s.scalars(select(AttachmentRow).where(AttachmentRow.volume_id == volume_id)).first()
        s.expunge_all()
    backend = host.volume_backend(vol.pool)
    report = CheckReport(repair=True, pools_checked=[vol.pool])
    ctx = _PoolCheck(catalog, report, vol.pool, backend, backend.list_items(), float("inf"), dead_owner_only=True,
                     is_dead=is_dead)  # fmt: skip
    for snap in snaps:
        ctx._stuck_snapshot(snap)
    ctx._stuck_volume(vol, att)
    return report.findings


class _PoolCheck:
    def __init__(self, catalog: "Catalog", report: CheckReport, pool: str, backend: "VolumeBackend",
                 items: list["BackendItem"], stale_after: float, *, dead_owner_only: bool = False,
                 is_dead: "Callable[[str | None], bool] | None" = None) -> None:  # fmt: skip
        self.catalog, self.report, self.pool, self.backend = catalog, report, pool, backend
        self.vol_items = {i.id: i for i in items if i.kind == "volume"}
        self.snap_items = {i.id: i for i in items if i.kind == "snapshot"}
        self.stale_after = stale_after
        self.now = datetime.now(UTC)
        self.host = socket.gethostname()
        self.dead_owner_only = dead_owner_only  # settle only statuses whose recorded owner is known dead
        self.is_dead = is_dead or (lambda owner: owners.owner_is_dead(owner, self.host))

    def _stuck(self, transitional: bool, owner: str | None, updated_at: datetime) -> bool:
        if self.dead_owner_only:
            return transitional and self.is_dead(owner)
        return is_stuck(transitional, owner, _aware(updated_at), self.now, self.stale_after, self.host, owners.pid_alive,
                        owners.process_start)

    def _busy(self, transitional: bool, owner: str | None, updated_at: datetime) -> bool:
        return transitional and not self._stuck(transitional, owner, updated_at)

    def add(self, kind: str, detail: str, repair: str, fix: Any, object_id: str | None = None,
            name: str | None = None) -> None:
        finding = Finding(kind=kind, pool=self.pool, object_id=object_id, name=name, detail=detail, repair=repair)
        if self.report.repair and fix is not None:
            try:
                fix()
                finding.repaired = True
            except StorageError as exc:
                finding.repair_error = exc.message
            except OSError as exc:
                finding.repair_error = str(exc)
        self.report.findings.append(finding)

    def run(self, vols: list[VolumeRow], snaps: list[SnapshotRow], atts: dict[str, AttachmentRow],
            held: "Collection[str]" = (), known: "Collection[str]" = ()) -> None:  # fmt: skip
        """``known``: ids of other hosts' volumes and snapshots: data of theirs here is not an orphan."""
        known_vols = {v.id for v in vols} | set(known)
        # stale devices first: an orphan image cannot be removed while a loop device holds it
        active = {v.id for v in vols if v.id in atts or v.id in held or V(v.status) in TRANSITIONAL_VOLUME_STATUSES}
        try:
            stale = self.backend.stale_attachments(active)
        except StorageError as exc:
            self.report.errors.append(f"pool {self.pool!r}: listing attachments failed: {exc.message}")
            stale = []
        for device in stale:
            self.add("stale_device", f"{device} is backed by data of pool {self.pool!r} but belongs to no attached volume",
                     f"detach {device}", lambda device=device: self.backend.remove_stale_attachment(device), name=device)
        busy_vols = {v.id for v in vols if self._busy(volume_in_operation(V(v.status), v.task_owner), v.task_owner, v.updated_at)}
        for snap in snaps:
            self._snapshot(snap, busy=snap.volume_id in busy_vols)
        for vol in vols:
            self._volume(vol, atts.get(vol.id), busy=vol.id in busy_vols)
        known_snaps = {x.id for x in snaps} | set(known)
        for vid, item in self.vol_items.items():
            if vid not in known_vols:
                self.add("orphan_volume", f"backend has volume data {item.path or vid} ({item.size_bytes} bytes) "
                         "that no catalog volume owns", "delete the orphan data",
                         lambda vid=vid: self.backend.delete_volume(vid), object_id=vid)
        for sid, item in self.snap_items.items():
            if sid not in known_snaps:
                self.add("orphan_snapshot", f"backend has snapshot data {item.path or sid} that no catalog snapshot owns",
                         "delete the orphan data",
                         lambda sid=sid, parent=item.parent_id: self.backend.delete_snapshot(parent or "", sid),
                         object_id=sid)

    # -- volumes ---------------------------------------------------------------
    def _stuck_volume(self, vol: VolumeRow, att: AttachmentRow | None) -> bool:
        """Report (and with repair settle) a volume stuck in a transitional status; True when it was."""
        status = V(vol.status)
        if not self._stuck(volume_in_operation(status, vol.task_owner), vol.task_owner, vol.updated_at):
            return False
        has_file = vol.id in self.vol_items
        device = self.backend.attached_device(vol.id) if has_file else None
        action, target = settle_volume(status, has_file, device is not None)
        what = {"finish_delete": "finish the delete", "drop_row": "remove the catalog entry (no data was created)"}
        # the volume's error_reason when it is settled to error (partial or missing data)
        reason = (f"{status.value} did not finish: its process ({vol.task_owner or 'unknown owner'}) is gone; "
                  + ("backing data missing" if not has_file else "its data may be partial"))  # fmt: skip
        self.add("stuck_volume",
                 f"volume {vol.name!r} is {status.value} but its operation ({vol.task_owner or 'unknown owner'}) "
                 f"is no longer running; backing data {'present' if has_file else 'missing'}"
                 + (f", attached at {device}" if device else ""),
                 what.get(action, f"set status {target.value if target else ''}"),
                 lambda: self._settle_volume(vol, action, target, device, reason), object_id=vol.id, name=vol.name)
        return True

    def _volume(self, vol: VolumeRow, att: AttachmentRow | None, busy: bool) -> None:
        if busy or self._stuck_volume(vol, att):
            return
        status = V(vol.status)
        has_file = vol.id in self.vol_items
        device = self.backend.attached_device(vol.id) if has_file else None
        if not has_file and status not in (V.DELETING, V.ERROR_DELETING):
            self.add("missing_data", f"volume {vol.name!r} ({status.value}) has no backing data in pool {self.pool!r}",
                     "set status error" if status is not V.ERROR else "none (delete the volume)",
                     None if status is V.ERROR else (lambda: self._set_volume(
                         vol.id, V.ERROR, error_reason=f"check: no backing data in pool {self.pool!r}")),
                     object_id=vol.id, name=vol.name)
            return
        if has_file and self.vol_items[vol.id].size_bytes != vol.size_bytes:
            real = self.vol_items[vol.id].size_bytes
            self.add("size_mismatch", f"volume {vol.name!r}: catalog says {vol.size_bytes} bytes, backend {real}",
                     f"record {real} bytes", lambda: self._set_volume(vol.id, status, size_bytes=real),
                     object_id=vol.id, name=vol.name)
        if att is not None and device is None:
            self.add("lost_attachment", f"volume {vol.name!r} is recorded attached at {att.device} but is not attached "
                     "on this host (rebooted?)", "forget the attachment and set status available",
                     lambda: self._drop_attachment(vol.id), object_id=vol.id, name=vol.name)
        elif att is not None and device is not None and device != att.device:
            self.add("attachment_moved", f"volume {vol.name!r} is recorded at {att.device} but attached at {device}",
                     f"record {device}", lambda: self._record_attachment(vol.id, device), object_id=vol.id, name=vol.name)

    def _set_volume(self, vid: str, status: VolumeStatus, **values: Any) -> None:
        with self.catalog.session() as s:
            force_volume_status(s, vid, status, **values)

    def _drop_attachment(self, vid: str) -> None:
        with self.catalog.session() as s:
            s.query(AttachmentRow).filter(AttachmentRow.volume_id == vid).delete()
            force_volume_status(s, vid, V.AVAILABLE)

    def _record_attachment(self, vid: str, device: str) -> None:
        with self.catalog.session() as s:
            s.query(AttachmentRow).filter(AttachmentRow.volume_id == vid).delete()
            s.add(AttachmentRow(id=new_id(), volume_id=vid, device=device, host=self.host))
            force_volume_status(s, vid, V.IN_USE)

    def _settle_volume(self, vol: VolumeRow, action: str, target: VolumeStatus | None, device: str | None,
                       reason: str | None = None) -> None:  # fmt: skip
        if action == "finish_delete":
            if device:
                self.backend.detach(vol.id)
            with self.catalog.session() as s:
                snap_ids = list(s.scalars(select(SnapshotRow.id).where(SnapshotRow.volume_id == vol.id)).all())
            for sid in snap_ids:
                self.backend.delete_snapshot(vol.id, sid)
                with self.catalog.session() as s:
                    delete_snapshot_row(s, sid)
            self.backend.delete_volume(vol.id)
            with self.catalog.session() as s:
                delete_volume_row(s, vol.id)
        elif action == "drop_row":
            with self.catalog.session() as s:
                delete_volume_row(s, vol.id)
        else:
            assert target is not None
            values: dict[str, Any] = {}
            if V(vol.status) is V.EXTENDING and vol.id in self.vol_items:
                values["size_bytes"] = self.vol_items[vol.id].size_bytes
            if target is V.IN_USE and device:
                self._record_attachment(vol.id, device)
            else:
                with self.catalog.session() as s:
                    s.query(AttachmentRow).filter(AttachmentRow.volume_id == vol.id).delete()
            self._set_volume(vol.id, target, error_reason=reason, **values)  # kept for error only (reason_values)

    # -- snapshots -------------------------------------------------------------
    def _stuck_snapshot(self, snap: SnapshotRow) -> bool:
        status = S(snap.status)
        if not self._stuck(status in TRANSITIONAL_SNAPSHOT_STATUSES, snap.task_owner, snap.updated_at):
            return False
        has_file = snap.id in self.snap_items
        action, target = settle_snapshot(status, has_file)
        self.add("stuck_snapshot",
                 f"snapshot {snap.name!r} is {status.value} but its operation ({snap.task_owner or 'unknown owner'}) "
                 f"is no longer running; data {'present' if has_file else 'missing'}",
                 {"finish_delete": "finish the delete", "drop_row": "remove the catalog entry"}.get(
                     action, f"set status {target.value if target else ''}"),
                 lambda: self._settle_snapshot(snap, action, target), object_id=snap.id, name=snap.name)
        return True

    def _snapshot(self, snap: SnapshotRow, busy: bool) -> None:
        status = S(snap.status)
        if busy and status in TRANSITIONAL_SNAPSHOT_STATUSES:
            return
        if self._stuck_snapshot(snap):
            return
        has_file = snap.id in self.snap_items
        if not has_file and status not in (S.DELETING, S.ERROR_DELETING, S.ERROR):
            self.add("missing_data", f"snapshot {snap.name!r} ({status.value}) has no backing data in pool {self.pool!r}",
                     "set status error", lambda: self._set_snapshot(snap.id, S.ERROR), object_id=snap.id, name=snap.name)

    def _set_snapshot(self, sid: str, status: SnapshotStatus) -> None:
        with self.catalog.session() as s:
            force_snapshot_status(s, sid, status)

    def _settle_snapshot(self, snap: SnapshotRow, action: str, target: SnapshotStatus | None) -> None:
        if action == "finish_delete":
            self.backend.delete_snapshot(snap.volume_id, snap.id)
        if action in ("finish_delete", "drop_row"):
            with self.catalog.session() as s:
                delete_snapshot_row(s, snap.id)
            return
        assert target is not None
        self._set_snapshot(snap.id, target)
