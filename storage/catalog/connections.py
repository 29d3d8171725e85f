"""Catalog tables of Cinder-style connections and attachments (migration 0010).

``volume_connections``: one row per (volume, initiator) that ``os-initialize_connection`` opened,
with the os-brick connector it came with (no secret is ever in a connector) and what the
connection changed on the export (made the target, added the initiator to its ACL), so that
``os-terminate_connection`` undoes exactly that. ``cinder_attachments``: the attachment
``os-attach`` records (instance, host name, mountpoint, mode); at most one per volume
(multiattach is not offered), which the unique constraint enforces between racing writers.
The volume's own status (attaching, in-use, detaching) moves by compare-and-set on ``volumes``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.catalog.base import Base, new_id, utcnow


class ConnectionRow(Base):
    __tablename__ = "volume_connections"
    __table_args__ = (UniqueConstraint("volume_id", "initiator"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    volume_id: Mapped[str] = mapped_column(ForeignKey("volumes.id", ondelete="CASCADE"), index=True)
    initiator: Mapped[str] = mapped_column(String(255))
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)  # the connector's host
    connector: Mapped[dict] = mapped_column(JSON, default=dict)
    created_export: Mapped[bool] = mapped_column(Boolean, default=False)
    added_initiator: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CinderAttachmentRow(Base):
    __tablename__ = "cinder_attachments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    volume_id: Mapped[str] = mapped_column(ForeignKey("volumes.id", ondelete="CASCADE"), unique=True)
    instance_uuid: Mapped[str | None] = mapped_column(String(36), nullable=True)
    host_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    mountpoint: Mapped[str] = mapped_column(String(255))
    mode: Mapped[str] = mapped_column(String(2))  # rw | ro
    attached_at: Mapped[datetime] = mapped_column(default=utcnow)
