"""VolumeService (``st.volumes``): create, attach, extend, clone, revert and delete volumes.

Every operation follows one pattern: a compare-and-set moves the volume into a transitional
status (the loser of a race gets Conflict), the backend does its step, and a second update
records the result. A crash in between leaves the transitional status behind, with the owning
``host:pid``, for ``storage.volumes.check`` to find.

Sizes are rounded up to the pool's granularity (1 MiB for the file backend). Creating a volume
(placement, the row, the backend) lives in storage/volumes/create.py.
"""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from storage.catalog.base import new_id, utcnow
from storage.catalog.volumes import (
    AttachmentRow,
    SnapshotRow,
    VolumeRow,
    cas_volume_status,
    delete_volume_row,
    failure_reason,
    force_volume_status,
    load_volume,
    this_owner,
)
from storage.domain import SnapshotStatus, Volume, VolumeStatus
from storage.errors import Conflict, InvalidInput, NotFound, StorageError
from storage.bounds import check_labels
from storage.names import is_uuid, validate_name
from storage.units import format_size, parse_size, round_up
from storage.volumes.settle import settle_volumes
from storage.volumes.holds import Hold, SnapshotHold, force_to_deleting
from storage.volumes.listing import VolumeListing, labels_match  # noqa: F401 - labels_match: used by snapshots
from storage.logs.context import annotate
from storage.logs.ops import operation

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from collections.abc import Callable

    from storage.catalog import Catalog
    from storage.exports.service import ExportService
    from storage.host.api import HostApi, ProgressCallback
    from storage.scheduler import Hints
    from storage.volumes.create import Placed
    from storage.volumes.placement import Placer
    from storage.hosts.service import HostService
    from storage.volumes.snapshots import SnapshotService

V = VolumeStatus
WIPE_MODES = ("none", "zero")


def validate_labels(labels: dict[str, str] | None) -> dict[str, str]:
    """Labels bounded in number, key and value length (storage.bounds.check_labels)."""
    return check_labels(labels)


class VolumeService:
    def __init__(
        self,
        catalog: "Catalog",
        host: "HostApi",
        *,
        placer: "Placer",
        snapshots: "Callable[[], SnapshotService]",
        exports: "Callable[[], ExportService]",
        host_name: str | None = None,
        hosts: "Callable[[], HostService] | None" = None,
        host_on: "Callable[[str], HostApi] | None" = None,
        settle_host: object | None = None,
    ) -> None:
        """placer chooses the pool of a new empty volume (storage.volumes.placement); snapshots and
        exports are providers: those services need this one, so they are read on first use.

        host_name is this host (it owns the volumes created here); hosts, when given, guards every
        operation on a volume's devices: its host must be up (else HostUnavailable, 503).
        host_on(name): the HostApi of another host (a cluster's placer may choose any host).
        settle_host: the drivers that settle statuses a dead process left (default ``host``; an
        agent's own drivers, whose ``host`` routes calls by volume).
        """
        self._catalog = catalog
        self._host = host
        self._placer = placer
        self._host_name = host_name or socket.gethostname()
        self._hosts = hosts
        self._snapshots = snapshots
        self._exports = exports
        self._host_on = host_on or (lambda _name: host)
        self._settle_host = host if settle_host is None else settle_host

    def _granularity(self, pool: str, on: "HostApi | None" = None) -> int:
        return int((on or self._host).pool_capabilities(pool)["size_granularity"])

    def _on(self, vol: Volume) -> "HostApi":
        """The HostApi of the host that owns ``vol`` (for calls that name its pool, not the volume)."""
        return self._host_on(vol.host) if vol.host else self._host

    def _size(self, size: str | int, pool: str, field: str = "size", on: "HostApi | None" = None) -> int:
        return round_up(parse_size(size, field=field), self._granularity(pool, on))

    # -- reads -------------------------------------------------------------
    def _row_id(self, ref: str) -> str:
        if not isinstance(ref, str) or not ref:
            raise InvalidInput(f"volume reference {ref!r} is not accepted; accepted: a volume name or id")
        with self._catalog.session() as s:
            if is_uuid(ref):
                vid = s.scalar(select(VolumeRow.id).where(VolumeRow.id == ref))
            else:
                vid = s.scalar(select(VolumeRow.id).where(VolumeRow.name == ref))
        if vid is None:
            raise NotFound(f"volume {ref!r} not found (by name or id); see `storagectl volume list`", volume=ref)
        return vid

    # -- the volume's host -------------------------------------------------
    def require_host_up(self, vol: Volume) -> None:
        """Raise HostUnavailable (503, the host named) when the host owning ``vol`` is down."""
        if self._hosts is not None:
            self._hosts().require_up(vol.host)

    def _require_host_of(self, vid: str) -> None:
        if self._hosts is None:
            return
        with self._catalog.session() as s:
            host = s.scalar(select(VolumeRow.host).where(VolumeRow.id == vid))
        self._hosts().require_up(host)

    def show(self, ref: str) -> Volume:
        """``get`` plus the state of the volume's host (up, down, disabled), for reads shown to people."""
        vol = self.get(ref)
        if self._hosts is None:
            return vol
        state = self._hosts().state_of(vol.host)
        return vol.model_copy(update={"host_state": state.value if state else None})

    def get(self, ref: str) -> Volume:
        vid = self._row_id(ref)
        settle_volumes(self._catalog, self._settle_host, [vid])  # a status left by a dead process is settled, not refused
        with self._catalog.session() as s:
            vol = load_volume(s, vid)
        if vol is None:
            raise NotFound(f"volume {ref!r} not found", volume=ref)
        annotate(volume_id=vol.id)  # the operation's log lines name the volume from here on
        return vol

    def _listing(self) -> VolumeListing:
        return VolumeListing(self._catalog, settle=lambda: settle_volumes(self._catalog, self._settle_host))

    def list(
        self, *, pool: str | None = None, status: str | VolumeStatus | None = None, labels: dict[str, str] | None = None
    ) -> list[Volume]:
        """Volumes (statuses a dead process of this host left behind are settled first)."""
        return self._listing().list(pool=pool, status=status, labels=labels)

    def list_version(self) -> int | None:
        """A counter that changes with every write to a volume or attachment, by any process (see VolumeListing)."""
        return self._listing().list_version()

    # -- create / clone ----------------------------------------------------
    def create(
        self,
        name: str,
        size: str | int | None = None,
        *,
        pool: str | None = None,
        labels: dict[str, str] | None = None,
        source_volume: str | None = None,
        source_snapshot: str | None = None,
        hints: "Hints | None" = None,
        restoring: bool = False,
    ) -> Volume:
        """Create a volume, empty or as a copy of another volume or of a snapshot.

        ``size`` may be omitted for copies (the source's size); it is rounded up to the pool's
        granularity and must not be smaller than the source. A new empty volume without ``pool``
        goes where the scheduler places it (``hints``: zone, pool labels, capabilities; see
        storage.volumes.placement); copies stay in their source's pool. ``restoring=True`` (a
        restore into a new volume) creates an empty volume that is ``restoring-backup`` from its
        first row on and stays so (owned by this process) until the caller sets it available.
        """
        return self.create_explained(
            name, size, pool=pool, labels=labels, source_volume=source_volume, source_snapshot=source_snapshot, hints=hints,
            restoring=restoring,
        ).volume

    @operation("volume.create")
    def create_explained(
        self,
        name: str,
        size: str | int | None = None,
        *,
        pool: str | None = None,
        labels: dict[str, str] | None = None,
        source_volume: str | None = None,
        source_snapshot: str | None = None,
        hints: "Hints | None" = None,
        restoring: bool = False,
    ) -> "Placed":
        """``create``, also returning the scheduler's decision (None for copies, which are not scheduled)."""
        from storage.volumes.create import create_explained

        return create_explained(self, name, size, pool=pool, labels=labels, source_volume=source_volume,
                                source_snapshot=source_snapshot, hints=hints, restoring=restoring)  # fmt: skip

    def clone(self, ref: str, new_name: str, *, size: str | int | None = None) -> Volume:
        return self.create(new_name, size, source_volume=ref)

    # -- holding a status for the length of an operation ---------------------
    def hold(
        self, ref: str, status: VolumeStatus | str, *, allowed_from: frozenset[VolumeStatus] | None = None
    ) -> "Hold":
        """Context manager for long operations of other services (backup, restore).

        ``with st.volumes.hold("db1", VolumeStatus.BACKING_UP) as prior:`` moves the volume into
        ``status`` by compare-and-set (Conflict if the state machine or ``allowed_from`` forbids
        it, or another writer won) and puts ``prior`` back on exit, also on error.
        """
        return Hold(self, self.get(ref).id, VolumeStatus(status), allowed_from)

    def _hold_volume(self, vid: str, status: VolumeStatus, allowed_from: frozenset[VolumeStatus] | None = None):
        return Hold(self, vid, status, allowed_from)

    def _hold_snapshot(self, snap_id: str):
        return SnapshotHold(self, snap_id)

    def _set(self, vid: str, status: VolumeStatus, **values: Any) -> Volume:
        with self._catalog.session() as s:
            force_volume_status(s, vid, status, **values)
            vol = load_volume(s, vid)
        assert vol is not None
        return vol

    # -- attach / detach -----------------------------------------------------
    @operation("volume.attach")
    def attach(self, ref: str) -> Volume:
        """Attach on this host (a loop device for the file backend); returns the volume with attached_device."""
        vol = self.get(ref)
        self.require_host_up(vol)
        with self._catalog.session() as s:
            cas_volume_status(s, vol.id, V.ATTACHING, allowed_from=frozenset({V.AVAILABLE}))
        try:
            device = self._host.attach(vol.pool, vol.id)
        except BaseException:
            self._set(vol.id, V.AVAILABLE)
            raise
        with self._catalog.session() as s:
            s.add(AttachmentRow(id=new_id(), volume_id=vol.id, device=device, host=socket.gethostname()))
            force_volume_status(s, vol.id, V.IN_USE)
            out = load_volume(s, vol.id)
        assert out is not None
        return out

    @operation("volume.detach")
    def detach(self, ref: str) -> Volume:
        vol = self.get(ref)
        self.require_host_up(vol)
        with self._catalog.session() as s:
            cas_volume_status(s, vol.id, V.DETACHING, allowed_from=frozenset({V.IN_USE}))
        try:
            self._host.detach(vol.pool, vol.id)
        except BaseException:
            self._set(vol.id, V.IN_USE)
            raise
        with self._catalog.session() as s:
            s.query(AttachmentRow).filter(AttachmentRow.volume_id == vol.id).delete()
            force_volume_status(s, vol.id, V.AVAILABLE)
            out = load_volume(s, vol.id)
        assert out is not None
        return out

    # -- extend / revert -------------------------------------------------------
    @operation("volume.extend")
    def extend(self, ref: str, new_size: str | int) -> Volume:
        vol = self.get(ref)
        self.require_host_up(vol)
        size_bytes = self._size(new_size, vol.pool, field="new size", on=self._on(vol))
        if size_bytes < vol.size_bytes:
            raise InvalidInput(
                f"new size {new_size!r} ({format_size(size_bytes)}) is smaller than the current "
                f"{format_size(vol.size_bytes)}; shrinking is refused, accepted: a larger size"
            )
        if size_bytes == vol.size_bytes:
            raise InvalidInput(
                f"volume {vol.name!r} is already {format_size(vol.size_bytes)}; accepted: a larger size"
            )
        with self._catalog.session() as s:
            prior = cas_volume_status(s, vol.id, V.EXTENDING, allowed_from=frozenset({V.AVAILABLE, V.IN_USE}))
        try:
            self._host.extend_volume(vol.pool, vol.id, size_bytes)
        except BaseException:
            self._set(vol.id, prior)
            raise
        extended = self._set(vol.id, prior, size_bytes=size_bytes)
        try:
            self._exports().on_extend(vol.id)  # an exported volume's LUN shows the new size
        except StorageError as exc:
            log.warning(
                "volume %s grew to %d bytes but its iSCSI export kept the old size (%s); "
                "run `storagectl export reconcile`", vol.name, size_bytes, exc.message,
            )
        return extended

    @operation("volume.revert")
    def revert(self, ref: str, snapshot_ref: str) -> Volume:
        """Put the volume's data back to a snapshot's (the volume must be detached)."""
        vol = self.get(ref)
        snap = self._snapshots().get(snapshot_ref)
        if snap.volume_id != vol.id:
            raise InvalidInput(
                f"snapshot {snap.name!r} belongs to volume {snap.volume_name!r}, not {vol.name!r}; "
                "accepted: a snapshot of this volume"
            )
        self.require_host_up(vol)
        with self._catalog.session() as s:
            cas_volume_status(s, vol.id, V.REVERTING, allowed_from=frozenset({V.AVAILABLE}))
        try:
            with self._hold_snapshot(snap.id):
                self._host.revert_to_snapshot(vol.pool, vol.id, snap.id)
        except BaseException:
            self._set(vol.id, V.AVAILABLE)
            raise
        return self._set(vol.id, V.AVAILABLE, size_bytes=max(vol.size_bytes, snap.size_bytes))

    # -- update / admin --------------------------------------------------------
    @operation("volume.update")
    def update(self, ref: str, *, name: str | None = None, labels: dict[str, str] | None = None) -> Volume:
        vol = self.get(ref)
        values: dict[str, Any] = {}
        if name is not None and name != vol.name:
            validate_name(name, kind="volume")
            values["name"] = name
        if labels is not None:
            values["labels"] = validate_labels(labels)
        if not values:
            return vol
        with self._catalog.session() as s:
            if "name" in values and s.scalar(select(VolumeRow.id).where(VolumeRow.name == name)) is not None:
                raise Conflict(f"a volume named {name!r} exists already; choose another name", volume=name)
            row = s.get(VolumeRow, vol.id)
            if row is None:
                raise NotFound(f"volume {ref!r} not found", volume=ref)
            for key, value in values.items():
                setattr(row, key, value)
            row.updated_at = utcnow()
        return self.get(vol.id)

    def held_here(self, volume_id: str) -> bool:
        """Whether this process holds the volume's transitional status (its recorded owner)."""
        with self._catalog.session() as s:
            return s.scalar(select(VolumeRow.task_owner).where(VolumeRow.id == volume_id)) == this_owner()

    @operation("volume.reset_status")
    def reset_status(self, ref: str, status: str | VolumeStatus, reason: str | None = None) -> Volume:
        """Admin: set the status without the state machine (e.g. after fixing a stuck volume by hand);
        ``reason``: why, kept as ``error_reason`` when the status is error/error_deleting."""
        try:
            target = VolumeStatus(status)
        except ValueError:
            raise InvalidInput(
                f"status {status!r} is not a volume status; accepted: {', '.join(v.value for v in VolumeStatus)}"
            ) from None
        return self._set(self.get(ref).id, target, error_reason=reason)

    # -- delete ----------------------------------------------------------------
    @operation("volume.delete")
    def delete(
        self,
        ref: str,
        *,
        wipe: str = "none",
        force: bool = False,
        cascade: bool = False,
        progress: "ProgressCallback | None" = None,
    ) -> None:
        """Delete a volume. Refused while it has snapshots (unless cascade) or is attached (unless force).

        ``wipe="zero"`` overwrites its data with zeros first, reporting progress(done, total).
        ``force`` also deletes from error and stuck transitional states.
        """
        if wipe not in WIPE_MODES:
            raise InvalidInput(f"wipe mode {wipe!r} is not accepted; accepted: {', '.join(WIPE_MODES)}")
        vol = self.get(ref)
        self.require_host_up(vol)
        with self._catalog.session() as s:
            snaps = s.scalars(select(SnapshotRow).where(SnapshotRow.volume_id == vol.id)).all()
            snap_names = [r.name for r in snaps]
        if snap_names and not cascade:
            raise Conflict(
                f"volume {vol.name!r} has {len(snap_names)} snapshot(s): {', '.join(snap_names[:5])}; "
                "delete them first or use cascade (--cascade)",
                volume=vol.name,
            )
        if vol.attached_device and not force:
            raise Conflict(
                f"volume {vol.name!r} is attached at {vol.attached_device}; detach it first or use force (--force)",
                volume=vol.name,
            )
        busy = [r.name for r in snaps if r.status not in (SnapshotStatus.AVAILABLE.value, SnapshotStatus.ERROR.value,
                                                          SnapshotStatus.ERROR_DELETING.value)]
        if busy and not force:
            raise Conflict(
                f"volume {vol.name!r} has snapshot(s) in use: {', '.join(busy[:5])}; wait for them or use force",
                volume=vol.name,
            )
        allowed = frozenset({V.AVAILABLE, V.ERROR, V.ERROR_DELETING})
        with self._catalog.session() as s:
            if force:
                force_to_deleting(s, vol)
                prior = vol.status
            else:
                prior = cas_volume_status(s, vol.id, V.DELETING, allowed_from=allowed)
        self._on(vol).check_pool(vol.pool)
        data_touched = False
        try:
            # an iSCSI target holds the device open: remove the export first (without force only a
            # connection's target can exist here: it holds the device without making the volume in-use)
            self._exports().on_delete(vol.id)
            if force and self._host.attached_device(vol.pool, vol.id):
                self._host.detach(vol.pool, vol.id)
            for snap_id in (r.id for r in snaps):
                data_touched = True
                self._snapshots()._delete_by_id(snap_id, force=force)
            data_touched = True
            self._host.delete_volume(vol.pool, vol.id, wipe, progress)
        except BaseException as exc:
            # nothing deleted yet: put the volume back; otherwise it is half deleted
            if data_touched:
                self._set(vol.id, V.ERROR_DELETING, error_reason=failure_reason("delete", exc))
            else:
                self._set(vol.id, prior)
            raise
        with self._catalog.session() as s:
            delete_volume_row(s, vol.id)
