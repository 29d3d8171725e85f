"""Creating a volume (``VolumeService.create``/``create_explained``): placement, then the row, then the backend.

Split from storage/volumes/service.py (no behaviour change): a new empty volume goes where the
scheduler places it (``svc._placer``: this host's pools, or every host's in a cluster, whose
chosen host is recorded on the row so its create goes there); a copy (clone, volume from a
snapshot) stays in its source's pool on its source's host. The row is inserted ``creating`` (or
``restoring-backup`` for a restore's new volume) with this process as its owner and the intent
of a keyed request, then the backend makes it; a failure removes what was made (``undo_create``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from sqlalchemy import select

from storage.catalog import intents
from storage.catalog.base import new_id, utcnow
from storage.catalog.volumes import (
    VolumeRow, cas_volume_status, delete_volume_row, failure_reason, force_volume_status, load_volume, this_owner,
)
from storage.domain import Volume, VolumeStatus
from storage.errors import Conflict, HostUnavailable, InvalidInput, NotFound, StorageError
from storage.names import validate_name
from storage.units import format_size, parse_size

if TYPE_CHECKING:
    from storage.scheduler import Decision, Hints
    from storage.volumes.service import VolumeService

V = VolumeStatus


class Placed(NamedTuple):
    """A new volume and the scheduler's decision that placed it (None for copies)."""

    volume: Volume
    decision: "Decision | None"


def create_explained(
    svc: "VolumeService", name: str, size: str | int | None = None, *, pool: str | None = None,
    labels: dict[str, str] | None = None, source_volume: str | None = None, source_snapshot: str | None = None,
    hints: "Hints | None" = None, restoring: bool = False,
) -> Placed:
    """``VolumeService.create_explained``: the new volume and the scheduler's decision (None for copies)."""
    from storage.volumes.service import validate_labels

    validate_name(name, kind="volume")
    labels = validate_labels(labels)
    made = intents.resume("volume")  # a keyed request whose first attempt died after making it
    if made is not None:
        try:
            return Placed(svc.get(made), None)  # get() settles a status its dead creator left
        except NotFound:
            pass  # gone since (never finished, or deleted): make it
    if source_volume and source_snapshot:
        raise InvalidInput("give source_volume or source_snapshot, not both")
    src_vol: Volume | None = None
    snap_id: str | None = None
    if source_volume:
        src_vol = svc.get(source_volume)
    elif source_snapshot:
        snap = svc._snapshots().get(source_snapshot)
        snap_id = snap.id
        src_vol = svc.get(snap.volume_id)
    clustered = svc._placer.clustered  # any registered host may take it (storage.volumes.placement)
    # the host that takes the new volume: a copy's source host in a cluster, else this host
    # (a new empty volume in a cluster: the scheduler's choice, below)
    owner = (src_vol.host or svc._host_name) if clustered and src_vol is not None else svc._host_name
    if svc._hosts is not None and not (clustered and src_vol is None):  # it must be up and enabled
        svc._hosts().require_accepting(owner)
        if src_vol is not None:
            svc._hosts().require_up(src_vol.host)
    decision = None
    if src_vol is not None:
        if pool is not None and pool != src_vol.pool:
            raise InvalidInput(
                f"pool {pool!r} differs from the source's pool {src_vol.pool!r}; copies stay in the source's pool"
            )
        if hints:
            raise InvalidInput("placement hints apply to new empty volumes; copies stay in the source's pool")
        pool = src_vol.pool
    elif size is None:
        raise InvalidInput("size is required for a new empty volume; accepted: e.g. 512M, 10G, 1T or bytes")
    else:
        if pool is not None and not clustered:
            svc._host.check_pool(pool)
        decision = svc._placer.place(parse_size(size), pool=pool, hints=hints)
        assert decision.chosen is not None
        pool = decision.chosen.pool
        owner = decision.chosen.host if clustered else owner
    on = svc._host_on(owner) if clustered else svc._host
    on.check_pool(pool)
    min_size = 0
    if src_vol is not None:
        min_size = src_vol.size_bytes if snap_id is None else svc._snapshots().get(snap_id).size_bytes
    size_bytes = min_size if size is None else svc._size(size, pool, on=on)
    if size_bytes < min_size:
        raise InvalidInput(
            f"size {format_size(size_bytes)} is smaller than the source ({format_size(min_size)}); "
            "accepted: at least the source's size"
        )
    vid = new_id()
    now = utcnow()
    with svc._catalog.session() as s:
        if s.scalar(select(VolumeRow.id).where(VolumeRow.name == name)) is not None:
            raise Conflict(f"a volume named {name!r} exists already; choose another name", volume=name)
        s.add(
            VolumeRow(
                id=vid, name=name, size_bytes=size_bytes, pool=pool,
                status=(V.RESTORING_BACKUP if restoring and src_vol is None else V.CREATING).value, labels=labels,
                source_volume_id=src_vol.id if src_vol else None, source_snapshot_id=snap_id,
                task_owner=this_owner(), created_at=now, updated_at=now, host=owner,
            )
        )
        intents.record_made(s, "volume", vid)  # with the row: a retry of this keyed request finds it
    try:
        if src_vol is not None and snap_id is None:
            with svc._hold_volume(src_vol.id, V.CLONING):
                svc._host.clone_volume(pool, src_vol.id, vid, size_bytes)
        elif src_vol is not None and snap_id is not None:
            with svc._hold_snapshot(snap_id):
                svc._host.clone_snapshot(pool, src_vol.id, snap_id, vid, size_bytes)
        else:
            svc._host.create_volume(pool, vid, size_bytes)
    except BaseException as exc:
        what = "clone" if src_vol is not None else "create"
        undo_create(svc, pool, vid, reach_host=not isinstance(exc, HostUnavailable), reason=failure_reason(what, exc))
        raise
    with svc._catalog.session() as s:
        if not (restoring and src_vol is None):
            cas_volume_status(s, vid, V.AVAILABLE, transitional=False)
        vol = load_volume(s, vid)
    assert vol is not None
    return Placed(vol, decision)



def undo_create(svc: "VolumeService", pool: str, vid: str, reach_host: bool = True, reason: str | None = None) -> None:
    """A create that failed: the backend's volume removed and the row deleted (``error`` with
    ``reason`` when that fails); ``error`` at once when its host did not answer (``reach_host`` False)."""
    if not reach_host:
        with svc._catalog.session() as s:
            force_volume_status(s, vid, V.ERROR, error_reason=reason)
        return
    try:
        svc._host.delete_volume(pool, vid)
    except StorageError as exc:
        with svc._catalog.session() as s:
            force_volume_status(s, vid, V.ERROR, error_reason=f"{reason}; removing it failed: {exc.message}")
        return
    with svc._catalog.session() as s:
        delete_volume_row(s, vid)

