"""Catalog table of iSCSI exports: one row per exported volume (the source of truth for targets).

CHAP secrets are not stored here; they live in a 0600 file under the data dir
(``storage.exports.secrets``). Deleting a volume row deletes its export row; the target it
leaves behind is reported as a stray by ``st.exports.reconcile()``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.catalog.base import Base, new_id, utcnow


class ExportRow(Base):
    __tablename__ = "exports"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    volume_id: Mapped[str] = mapped_column(ForeignKey("volumes.id", ondelete="CASCADE"), unique=True)
    driver: Mapped[str] = mapped_column(String(32))
    target_iqn: Mapped[str] = mapped_column(String(255), unique=True)
    lun: Mapped[int] = mapped_column(Integer)
    portal: Mapped[str] = mapped_column(String(255))
    device_path: Mapped[str] = mapped_column(String(4096))
    # True when the export attached the volume itself (unexport then detaches it again).
    attached_by_export: Mapped[bool] = mapped_column(Boolean, default=False)
    auth_method: Mapped[str | None] = mapped_column(String(16), nullable=True)  # "CHAP" or None
    chap_username: Mapped[str | None] = mapped_column(String(64), nullable=True)
    initiators: Mapped[list] = mapped_column(JSON, default=list)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    # "export" (volume export: attaching an available volume makes it in-use) or "connection"
    # (os-initialize_connection: the device is held without a status change; migration 0010)
    origin: Mapped[str] = mapped_column(String(16), default="export", server_default="export")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
