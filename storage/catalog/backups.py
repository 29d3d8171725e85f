"""Catalog table for backups. The repository is the truth; this table is an index of it
(``storagectl backup import`` rebuilds it from the manifests)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.catalog.base import Base


class BackupRow(Base):
    __tablename__ = "backups"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    description: Mapped[str | None] = mapped_column(String(255), nullable=True)  # migration 0014
    repository: Mapped[str] = mapped_column(String(1024), index=True)
    repository_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    volume_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    volume_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    source: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    status: Mapped[str] = mapped_column(String(32))
    encrypted: Mapped[bool] = mapped_column(Boolean, default=False)
    key_file: Mapped[str | None] = mapped_column(String(1024), nullable=True)  # a path, never a key
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    stored_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    read_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    chunk_size: Mapped[int] = mapped_column(Integer, default=0)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    zero_chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    new_chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    dedup_chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    reused_chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    snapshot_id: Mapped[str | None] = mapped_column(String(36), nullable=True)  # kept as the next base
    owner: Mapped[str | None] = mapped_column(String(255), nullable=True)  # host:pid while creating
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime]
    completed_at: Mapped[datetime | None] = mapped_column(nullable=True)
