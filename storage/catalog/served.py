"""Catalog table of NBD exports of backups that a long-running process serves (storage/nbd/managed.py).

``process`` is the nbdkit child as ``host:pid:start`` (storage.owners), ``owner`` the process that
started it (nbdkit runs with --exit-with-parent: it ends with its owner). A row whose process is
gone is reaped by the next listing; ``listen`` (``tcp:ADDR:PORT`` or ``unix:PATH``) is unique per host.
``kind`` (migration 0016): ``serve`` (a read-only export, ``st.backups.serve``) or ``live-restore``
(``backup restore --live``: nbdkit serving ``volume_id`` read-write while the backup is restored
into it; no TTL, its row goes when the restore ends).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.catalog.base import Base, new_id, utcnow


class ServedExportRow(Base):
    __tablename__ = "served_exports"
    __table_args__ = (UniqueConstraint("host_name", "listen"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    backup_id: Mapped[str] = mapped_column(String(36), index=True)
    export_name: Mapped[str] = mapped_column(String(128))
    uri: Mapped[str] = mapped_column(String(512))
    listen: Mapped[str] = mapped_column(String(255))
    host_name: Mapped[str] = mapped_column(String(255))
    process: Mapped[str] = mapped_column(String(255))
    owner: Mapped[str] = mapped_column(String(255))
    cache_bytes: Mapped[int] = mapped_column(BigInteger)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(16), default="serve", server_default="serve")
    volume_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
