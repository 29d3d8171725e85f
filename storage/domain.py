"""Domain models of volumes, snapshots and attachments, and their status state machines.

The transition tables are pure data: the catalog's compare-and-set UPDATE
(``UPDATE ... WHERE id = ? AND status = <observed>``) only runs when
``can_transition(observed, target)`` holds, so two concurrent operations on one volume cannot
both proceed; the loser gets ``storage.errors.Conflict`` naming the current status.
"""

from __future__ import annotations

import enum
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class VolumeStatus(str, enum.Enum):
    CREATING = "creating"
    AVAILABLE = "available"
    ATTACHING = "attaching"
    IN_USE = "in-use"
    DETACHING = "detaching"
    EXTENDING = "extending"
    DELETING = "deleting"
    REVERTING = "reverting"
    SNAPSHOTTING = "snapshotting"  # a snapshot of it is being taken
    CLONING = "cloning"  # it is the source of a clone in progress
    BACKING_UP = "backing-up"
    RESTORING_BACKUP = "restoring-backup"
    ERROR = "error"
    ERROR_DELETING = "error_deleting"


class SnapshotStatus(str, enum.Enum):
    CREATING = "creating"
    AVAILABLE = "available"
    DELETING = "deleting"
    CLONING = "cloning"  # source of a clone or revert in progress
    BACKING_UP = "backing-up"
    ERROR = "error"
    ERROR_DELETING = "error_deleting"


V = VolumeStatus
S = SnapshotStatus

# from-status -> statuses it may move to (admin reset_status bypasses this table).
VOLUME_TRANSITIONS: dict[VolumeStatus, frozenset[VolumeStatus]] = {
    V.CREATING: frozenset({V.AVAILABLE, V.ERROR, V.DELETING}),
    V.AVAILABLE: frozenset(
        {V.ATTACHING, V.EXTENDING, V.DELETING, V.REVERTING, V.SNAPSHOTTING, V.CLONING, V.BACKING_UP,
         V.RESTORING_BACKUP, V.ERROR}
    ),
    V.ATTACHING: frozenset({V.IN_USE, V.AVAILABLE, V.ERROR}),
    V.IN_USE: frozenset({V.DETACHING, V.EXTENDING, V.SNAPSHOTTING, V.CLONING, V.BACKING_UP, V.ERROR}),
    V.DETACHING: frozenset({V.AVAILABLE, V.IN_USE, V.ERROR}),
    V.EXTENDING: frozenset({V.AVAILABLE, V.IN_USE, V.ERROR}),
    V.DELETING: frozenset({V.ERROR_DELETING}),
    V.REVERTING: frozenset({V.AVAILABLE, V.ERROR}),
    V.SNAPSHOTTING: frozenset({V.AVAILABLE, V.IN_USE, V.ERROR}),
    V.CLONING: frozenset({V.AVAILABLE, V.IN_USE, V.ERROR}),
    V.BACKING_UP: frozenset({V.AVAILABLE, V.IN_USE, V.ERROR}),
    V.RESTORING_BACKUP: frozenset({V.AVAILABLE, V.ERROR}),
    V.ERROR: frozenset({V.DELETING, V.AVAILABLE}),
    V.ERROR_DELETING: frozenset({V.DELETING}),
}

SNAPSHOT_TRANSITIONS: dict[SnapshotStatus, frozenset[SnapshotStatus]] = {
    S.CREATING: frozenset({S.AVAILABLE, S.ERROR, S.DELETING}),
    S.AVAILABLE: frozenset({S.DELETING, S.CLONING, S.BACKING_UP, S.ERROR}),
    S.DELETING: frozenset({S.ERROR_DELETING}),
    S.CLONING: frozenset({S.AVAILABLE, S.ERROR}),
    S.BACKING_UP: frozenset({S.AVAILABLE, S.ERROR}),
    S.ERROR: frozenset({S.DELETING, S.AVAILABLE}),
    S.ERROR_DELETING: frozenset({S.DELETING}),
}

# Statuses in which an operation is running; a volume left in one by a crashed process is "stuck".
TRANSITIONAL_VOLUME_STATUSES = frozenset(
    {V.CREATING, V.ATTACHING, V.DETACHING, V.EXTENDING, V.DELETING, V.REVERTING, V.SNAPSHOTTING, V.CLONING,
     V.BACKING_UP, V.RESTORING_BACKUP}
)
TRANSITIONAL_SNAPSHOT_STATUSES = frozenset({S.CREATING, S.DELETING, S.CLONING, S.BACKING_UP})


def can_transition(current: VolumeStatus | SnapshotStatus, target: VolumeStatus | SnapshotStatus) -> bool:
    """True when the state machine lets an object in ``current`` move to ``target``."""
    if isinstance(current, VolumeStatus) and isinstance(target, VolumeStatus):
        return target in VOLUME_TRANSITIONS.get(current, frozenset())
    if isinstance(current, SnapshotStatus) and isinstance(target, SnapshotStatus):
        return target in SNAPSHOT_TRANSITIONS.get(current, frozenset())
    return False


def sources_of(target: VolumeStatus | SnapshotStatus) -> frozenset[str]:
    """Every status value from which ``target`` may be reached (for ``WHERE status IN (...)``)."""
    table = VOLUME_TRANSITIONS if isinstance(target, VolumeStatus) else SNAPSHOT_TRANSITIONS
    return frozenset(src.value for src, targets in table.items() if target in targets)  # type: ignore[attr-defined]


class Attachment(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: str
    volume_id: str
    device: str
    host: str
    attached_at: datetime


class Volume(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: str
    name: str
    size_bytes: int
    pool: str
    status: VolumeStatus
    labels: dict[str, str] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    attached_device: str | None = None
    source_volume_id: str | None = None
    source_snapshot_id: str | None = None
    host: str | None = None  # the storage host that owns it (services table)
    host_state: str | None = None  # up, down, disabled: filled by `show` reads only
    description: str | None = None  # free text (Cinder's description), at most 255 characters
    error_reason: str | None = None  # why it is error / error_deleting (the failing step's message)


class Snapshot(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: str
    name: str
    volume_id: str
    volume_name: str
    size_bytes: int
    status: SnapshotStatus
    labels: dict[str, str] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime | None = None
    description: str | None = None  # free text (Cinder's description), at most 255 characters
