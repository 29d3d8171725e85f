"""Catalog table ``services``: one row per storage host, written by its heartbeats.

A host's agent (or, on a single host, the running process) upserts its row: the pools it owns
with their driver, capabilities and capacity, its availability zone, labels and version, and
``last_heartbeat``. ``disabled``/``disabled_reason`` belong to the administrator: a heartbeat
never changes them. Whether a host is up is decided from ``last_heartbeat`` by
``storage.hosts.state.host_state`` (a pure function), never stored.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.catalog.base import Base, utcnow


class ServiceRow(Base):
    __tablename__ = "services"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    # {pool: {"driver", "capabilities": {...}, "total_bytes", "free_bytes", "provisioned_bytes", ...}}
    pools: Mapped[dict] = mapped_column(JSON, default=dict)
    capabilities: Mapped[dict] = mapped_column(JSON, default=dict)  # host-wide: export driver, ...
    availability_zone: Mapped[str] = mapped_column(String(255), default="nova")
    labels: Mapped[dict] = mapped_column(JSON, default=dict)
    version: Mapped[str] = mapped_column(String(64), default="")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_heartbeat: Mapped[datetime | None] = mapped_column(nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled_reason: Mapped[str | None] = mapped_column(String(255), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
