"""Catalog tables for volumes, snapshots and attachments, and their compare-and-set helpers.

Every status change goes through ``cas_volume_status``/``cas_snapshot_status``: one
``UPDATE ... WHERE id = ? AND status = <observed>`` in its own transaction, allowed only when
the state machine of ``storage.domain`` permits it. The loser of a race gets Conflict.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, String, delete, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from storage import owners
from storage.catalog.base import Base, new_id, utcnow
from storage.domain import (
    Attachment,
    Snapshot,
    SnapshotStatus,
    Volume,
    VolumeStatus,
    can_transition,
)
from storage.errors import Conflict


MAX_REASON = 1000  # characters of volumes.error_reason kept (the start of a longer message)
_ERROR_STATUSES = frozenset({VolumeStatus.ERROR, VolumeStatus.ERROR_DELETING})
_GOOD_STATUSES = frozenset({VolumeStatus.AVAILABLE, VolumeStatus.IN_USE})


def reason_values(target: VolumeStatus, values: dict[str, object]) -> dict[str, object]:
    """Pure: the column values of a move to ``target``: an ``error_reason`` given with a move to an
    error status is kept (bounded to MAX_REASON characters); a move to available/in-use clears it;
    any other move leaves it as it was (a volume in error being deleted keeps why)."""
    out = dict(values)
    reason = out.pop("error_reason", None)
    if target in _ERROR_STATUSES:
        if reason is not None:
            text = " ".join(str(reason).split())
            out["error_reason"] = text[: MAX_REASON - 3] + "..." if len(text) > MAX_REASON else text
    elif target in _GOOD_STATUSES:
        out["error_reason"] = None
    return out


def failure_reason(step: str, exc: BaseException) -> str:
    """Pure but for the mask: ``<step> failed: <message>``: a typed error's message, another
    exception's type and first line (known secrets masked); an interrupt says so."""
    from storage.errors import StorageError
    from storage.logs.redact import mask

    if isinstance(exc, StorageError):
        return f"{step} failed: {exc.message}"
    if not isinstance(exc, Exception):
        return f"{step} interrupted: {type(exc).__name__}"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{step} failed: {type(exc).__name__}" + (f": {mask(first)}" if first else "")


class VolumeRow(Base):
    __tablename__ = "volumes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    pool: Mapped[str] = mapped_column(String(128), index=True)
    status: Mapped[str] = mapped_column(String(32), index=True)
    labels: Mapped[dict] = mapped_column(JSON, default=dict)
    source_volume_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    source_snapshot_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # Who runs the operation of a transitional status: "host:pid" (for stuck detection by check).
    task_owner: Mapped[str | None] = mapped_column(String(300), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The storage host that owns the volume's data (migration 0009; services.name).
    host: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    description: Mapped[str | None] = mapped_column(String(255), nullable=True)  # migration 0011
    # why it is error / error_deleting (migration 0015); cleared when available or in-use again
    error_reason: Mapped[str | None] = mapped_column(String(MAX_REASON), nullable=True)


class SnapshotRow(Base):
    __tablename__ = "snapshots"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    volume_id: Mapped[str] = mapped_column(ForeignKey("volumes.id", ondelete="RESTRICT"), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(32), index=True)
    labels: Mapped[dict] = mapped_column(JSON, default=dict)
    task_owner: Mapped[str | None] = mapped_column(String(300), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    description: Mapped[str | None] = mapped_column(String(255), nullable=True)  # migration 0011


class AttachmentRow(Base):
    __tablename__ = "volume_attachments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    volume_id: Mapped[str] = mapped_column(ForeignKey("volumes.id", ondelete="CASCADE"), unique=True)
    device: Mapped[str] = mapped_column(String(255))
    host: Mapped[str] = mapped_column(String(255))
    attached_at: Mapped[datetime] = mapped_column(default=utcnow)


class CatalogVersionRow(Base):
    """Change counters kept by triggers (migration 0006): ``volumes`` counts every write to volumes/attachments."""

    __tablename__ = "catalog_versions"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


def this_owner() -> str:
    """Identity of the running process (host:pid:start), stored while it holds a transitional status."""
    return owners.this_owner()


# -- conversions -------------------------------------------------------------


def _aware(value: datetime) -> datetime:
    from datetime import UTC

    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def volume_model(row: VolumeRow, attachment: AttachmentRow | None) -> Volume:
    return Volume(
        id=row.id,
        name=row.name,
        size_bytes=row.size_bytes,
        pool=row.pool,
        status=VolumeStatus(row.status),
        labels=dict(row.labels or {}),
        created_at=_aware(row.created_at),
        updated_at=_aware(row.updated_at),
        attached_device=attachment.device if attachment else None,
        source_volume_id=row.source_volume_id,
        source_snapshot_id=row.source_snapshot_id,
        host=row.host,
        description=row.description,
        error_reason=row.error_reason,
    )


def snapshot_model(row: SnapshotRow, volume_name: str) -> Snapshot:
    return Snapshot(
        id=row.id,
        name=row.name,
        volume_id=row.volume_id,
        volume_name=volume_name,
        size_bytes=row.size_bytes,
        status=SnapshotStatus(row.status),
        labels=dict(row.labels or {}),
        created_at=_aware(row.created_at),
        updated_at=_aware(row.updated_at),
        description=row.description,
    )


def attachment_model(row: AttachmentRow) -> Attachment:
    return Attachment(
        id=row.id, volume_id=row.volume_id, device=row.device, host=row.host, attached_at=_aware(row.attached_at)
    )


def load_volume(session: Session, volume_id: str) -> Volume | None:
    row = session.get(VolumeRow, volume_id)
    if row is None:
        return None
    att = session.scalar(select(AttachmentRow).where(AttachmentRow.volume_id == volume_id))
    return volume_model(row, att)


def load_snapshot(session: Session, snapshot_id: str) -> Snapshot | None:
    row = session.get(SnapshotRow, snapshot_id)
    if row is None:
        return None
    vol_name = session.scalar(select(VolumeRow.name).where(VolumeRow.id == row.volume_id)) or ""
    return snapshot_model(row, vol_name)


# -- compare-and-set ---------------------------------------------------------


def cas_volume_status(
    session: Session,
    volume_id: str,
    target: VolumeStatus,
    *,
    allowed_from: frozenset[VolumeStatus] | None = None,
    transitional: bool = True,
    **values: object,
) -> VolumeStatus:
    """Move a volume to ``target`` if its status allows; return the status it had.

    ``allowed_from`` narrows the state machine (e.g. attach only from available). Raises
    Conflict naming the current status when the move is not allowed or another writer won.
    """
    row = session.get(VolumeRow, volume_id, populate_existing=True)
    if row is None:
        raise Conflict(f"volume {volume_id} no longer exists", volume=volume_id)
    current = VolumeStatus(row.status)
    permitted = can_transition(current, target) and (allowed_from is None or current in allowed_from)
    if not permitted:
        raise Conflict(
            f"volume {row.name!r} is {current.value}; cannot move to {target.value}",
            volume=row.name,
            status=current.value,
        )
    result = session.execute(
        update(VolumeRow)
        .where(VolumeRow.id == volume_id, VolumeRow.status == current.value)
        .values(status=target.value, updated_at=utcnow(), task_owner=this_owner() if transitional else None,
                **reason_values(target, values))
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        now = session.scalar(select(VolumeRow.status).where(VolumeRow.id == volume_id))
        raise Conflict(
            f"volume {row.name!r} changed concurrently and is now {now}; cannot move to {target.value}",
            volume=row.name,
            status=now,
        )
    return current


def cas_snapshot_status(
    session: Session,
    snapshot_id: str,
    target: SnapshotStatus,
    *,
    allowed_from: frozenset[SnapshotStatus] | None = None,
    transitional: bool = True,
) -> SnapshotStatus:
    row = session.get(SnapshotRow, snapshot_id, populate_existing=True)
    if row is None:
        raise Conflict(f"snapshot {snapshot_id} no longer exists", snapshot=snapshot_id)
    current = SnapshotStatus(row.status)
    permitted = can_transition(current, target) and (allowed_from is None or current in allowed_from)
    if not permitted:
        raise Conflict(
            f"snapshot {row.name!r} is {current.value}; cannot move to {target.value}",
            snapshot=row.name,
            status=current.value,
        )
    result = session.execute(
        update(SnapshotRow)
        .where(SnapshotRow.id == snapshot_id, SnapshotRow.status == current.value)
        .values(status=target.value, updated_at=utcnow(), task_owner=this_owner() if transitional else None)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        now = session.scalar(select(SnapshotRow.status).where(SnapshotRow.id == snapshot_id))
        raise Conflict(
            f"snapshot {row.name!r} changed concurrently and is now {now}; cannot move to {target.value}",
            snapshot=row.name,
            status=now,
        )
    return current


def force_volume_status(session: Session, volume_id: str, status: VolumeStatus, **values: object) -> None:
    """Set a status without the state machine (admin reset, check --repair, rollbacks)."""
    session.execute(
        update(VolumeRow)
        .where(VolumeRow.id == volume_id)
        .values(status=status.value, updated_at=utcnow(), task_owner=None, **reason_values(status, values))
        .execution_options(synchronize_session=False)
    )


def force_snapshot_status(session: Session, snapshot_id: str, status: SnapshotStatus) -> None:
    session.execute(
        update(SnapshotRow)
        .where(SnapshotRow.id == snapshot_id)
        .values(status=status.value, updated_at=utcnow(), task_owner=None)
        .execution_options(synchronize_session=False)
    )


def delete_volume_row(session: Session, volume_id: str) -> None:
    session.execute(delete(AttachmentRow).where(AttachmentRow.volume_id == volume_id))
    session.execute(delete(VolumeRow).where(VolumeRow.id == volume_id))


def delete_snapshot_row(session: Session, snapshot_id: str) -> None:
    session.execute(delete(SnapshotRow).where(SnapshotRow.id == snapshot_id))
