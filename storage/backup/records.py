"""Catalog rows of backups <-> the public Backup model (small helpers over storage.catalog.backups)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage import owners
from storage.backup.format import Manifest
from storage.backup.listing import BACKUP_FIELDS, backup_model
from storage.backup.models import STATUS_AVAILABLE, STATUS_CREATING, STATUS_INTERRUPTED, Backup
from storage.catalog.backups import BackupRow


def this_owner() -> str:
    return owners.this_owner()


def owner_is_gone(owner: str | None) -> bool:
    """True when owner names this host and a process that no longer runs (a killed backup)."""
    return owners.is_dead_here(owner)


def to_model(row: BackupRow) -> Backup:
    return backup_model(tuple(getattr(row, name) for name in BACKUP_FIELDS))


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def new_row(**values: Any) -> BackupRow:
    defaults: dict[str, Any] = dict(
        status=STATUS_CREATING, encrypted=False, size_bytes=0, stored_bytes=0, read_bytes=0, chunk_size=0,
        chunk_count=0, zero_chunk_count=0, new_chunk_count=0, dedup_chunk_count=0, reused_chunk_count=0,
        labels={}, owner=this_owner(), created_at=datetime.now(UTC),
    )
    defaults.update(values)
    return BackupRow(**defaults)


def row_from_manifest(manifest: Manifest, repository: str, encrypted: bool, key_file: str | None) -> BackupRow:
    """A catalog row rebuilt from a manifest (import): what the repository knows of a backup."""
    zero = sum(1 for c in manifest.chunks if c is None)
    return new_row(
        id=manifest.backup_id,
        name=manifest.name,
        repository=repository,
        repository_id=manifest.repository_id,
        volume_id=manifest.volume_id,
        volume_name=manifest.volume_name,
        source=manifest.source,
        status=STATUS_AVAILABLE,
        encrypted=encrypted,
        key_file=key_file,
        size_bytes=manifest.size,
        stored_bytes=0,
        chunk_size=manifest.chunk_size,
        chunk_count=len(manifest.chunks),
        zero_chunk_count=zero,
        labels=dict(manifest.labels),
        owner=None,
        created_at=parse_iso(manifest.created_at),
        completed_at=parse_iso(manifest.completed_at),
    )


def mark_interrupted(session: Session) -> None:
    """Rows left 'creating' by a process of this host that is gone become 'interrupted'."""
    for row in session.scalars(select(BackupRow).where(BackupRow.status == STATUS_CREATING)).all():
        if owner_is_gone(row.owner):
            row.status = STATUS_INTERRUPTED
            row.error = "the backup process ended before the manifest was stored; rerun the backup (uploaded chunks are reused)"
