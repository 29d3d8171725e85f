"""Holding a volume or snapshot in a transitional status for the length of an operation.

``Hold`` compare-and-sets a volume into a transitional status (after checking that its host is
up) and puts the prior status back afterwards; ``SnapshotHold`` does the same for a snapshot a
clone or revert reads; ``force_to_deleting`` is delete --force's one-winner move; ``adopt`` hands
a volume's transitional status to the process that does the work (another host's agent).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from storage.catalog.base import utcnow
from storage.catalog.failures import record_when_back
from storage.catalog.volumes import VolumeRow, cas_snapshot_status, cas_volume_status, force_snapshot_status, this_owner
from storage.domain import SnapshotStatus, Volume, VolumeStatus
from storage.errors import Conflict

if TYPE_CHECKING:
    from storage.volumes.service import VolumeService

V = VolumeStatus


def force_to_deleting(session: Any, vol: Volume) -> None:
    """force: any status but deleting may move to deleting (still one winner between racers)."""
    from sqlalchemy import update

    result = session.execute(
        update(VolumeRow)
        .where(VolumeRow.id == vol.id, VolumeRow.status != V.DELETING.value)
        .values(status=V.DELETING.value, updated_at=utcnow(), task_owner=this_owner())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise Conflict(f"volume {vol.name!r} is being deleted already", volume=vol.name, status=V.DELETING.value)


def adopt(session: Any, volume_id: str, status: VolumeStatus) -> bool:
    """Make this process the owner of a volume that another process left in ``status`` for this
    process's work (the Cinder API creates a restore's volume, the owning host's agent fills it), so
    this process settles it (available or error) and a reader does not take the creator's liveness
    for the work's. False when the volume is no longer in ``status`` (deleted or settled)."""
    from sqlalchemy import update

    result = session.execute(
        update(VolumeRow)
        .where(VolumeRow.id == volume_id, VolumeRow.status == status.value)
        .values(task_owner=this_owner(), updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)


class Hold:
    """Context manager: CAS a volume into a transitional status, restore the prior one after."""

    def __init__(self, svc: "VolumeService", vid: str, status: VolumeStatus, allowed_from: frozenset[VolumeStatus] | None):
        self.svc, self.vid, self.status, self.allowed_from = svc, vid, status, allowed_from
        self.prior: VolumeStatus | None = None
        # set by a holder once its failure would leave the data changed (a restore that began
        # writing): an exception then ends in error with this step's reason, not in the prior status
        self.fails_as: str | None = None

    def __enter__(self) -> VolumeStatus:
        self.svc._require_host_of(self.vid)
        with self.svc._catalog.session() as s:
            self.prior = cas_volume_status(s, self.vid, self.status, allowed_from=self.allowed_from)
        return self.prior

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        assert self.prior is not None
        prior = self.prior
        if isinstance(exc, BaseException) and self.fails_as is not None:
            from storage.catalog.volumes import failure_reason

            why = failure_reason(self.fails_as, exc)
            record_when_back(lambda: self.svc._set(self.vid, VolumeStatus.ERROR, error_reason=why))
            return
        record_when_back(lambda: self.svc._set(self.vid, prior))


class SnapshotHold:
    """Context manager: a snapshot in 'cloning' while a clone or revert reads it."""

    def __init__(self, svc: "VolumeService", snap_id: str) -> None:
        self.svc, self.snap_id = svc, snap_id

    def __enter__(self) -> None:
        with self.svc._catalog.session() as s:
            cas_snapshot_status(
                s, self.snap_id, SnapshotStatus.CLONING, allowed_from=frozenset({SnapshotStatus.AVAILABLE})
            )

    def __exit__(self, *exc: object) -> None:
        def put_back() -> None:
            with self.svc._catalog.session() as s:
                force_snapshot_status(s, self.snap_id, SnapshotStatus.AVAILABLE)

        record_when_back(put_back)
