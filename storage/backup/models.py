"""Public models of the backup service (pydantic, JSON-ready for the CLI and the API)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from pydantic import BaseModel, Field

STATUS_CREATING = "creating"
STATUS_AVAILABLE = "available"
STATUS_ERROR = "error"
STATUS_INTERRUPTED = "interrupted"
STATUS_DAMAGED = "damaged"
STATUS_LOST = "lost"  # the catalog knows it; its manifest is gone from the repository (not restorable)
USABLE_STATUSES = (STATUS_AVAILABLE,)


class Backup(BaseModel):
    id: str
    name: str | None = None
    description: str | None = None  # free text, at most 255 characters (catalog only, not in the manifest)
    volume_id: str | None = None
    volume_name: str | None = None
    source: str | None = None
    repository: str
    repository_id: str | None = None
    status: str
    encrypted: bool = False
    size_bytes: int = 0
    stored_bytes: int = 0  # bytes this backup uploaded (new chunks, compressed + encrypted)
    read_bytes: int = 0
    chunk_size: int = 0
    chunk_count: int = 0
    zero_chunk_count: int = 0
    new_chunk_count: int = 0
    dedup_chunk_count: int = 0
    reused_chunk_count: int = 0  # unchanged since the base snapshot, not read
    snapshot_id: str | None = None
    created_at: datetime | None = None
    completed_at: datetime | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    error: str | None = None


class VerifyReport(BaseModel):
    repository: str
    deep: bool
    sample_percent: float
    backups_checked: list[str]
    chunks_checked: int
    bytes_checked: int
    missing_chunks: list[str]
    corrupt_chunks: list[str]
    damaged_backups: list[str]
    lost_backups: list[str] = Field(default_factory=list)  # catalog backups whose manifest is missing
    ok: bool
    seconds: float


class GcReport(BaseModel):
    repository: str
    dry_run: bool
    grace_seconds: int
    manifests: int
    chunks_total: int
    chunks_referenced: int
    chunks_unreferenced: int
    chunks_deleted: int
    chunks_kept_in_grace: int
    bytes_freed: int
    stale_locks_removed: int
    seconds: float
    packs_total: int = 0
    packs_deleted: int = 0  # no live chunk left (or an unindexed pack / an index without its pack)
    packs_repacked: int = 0  # live chunks copied into new packs, the old pack deleted
    bytes_repacked: int = 0  # stored bytes of live chunks copied


class RestoreResult(BaseModel):
    backup_id: str
    target: str
    size_bytes: int
    written_bytes: int
    skipped_zero_bytes: int
    chunks_downloaded: int
    seconds: float
    placement: dict[str, Any] | None = None  # restore to a new volume: the scheduler's decision


@dataclass(frozen=True)
class Progress:
    """A progress report: ``done`` counts bytes read or skipped (or restored) out of ``total``."""

    phase: str
    total: int
    done: int
    read: int = 0
    skipped: int = 0
    deduplicated: int = 0
    uploaded: int = 0
    downloaded: int = 0
    rate: float = 0.0  # bytes of ``done`` per second
    eta_seconds: float | None = None


ProgressCallback = Callable[[Progress], None]
