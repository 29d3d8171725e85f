"""Pruning finished ``host-call`` job rows: one per device call made through a work queue.

Every call an API replica or CLI makes on another process's drivers (create, extend, snapshot,
export...) is a ``host-call`` job row (storage/host/remote.py); its caller reads the answer at
once, so the row is only an audit trail afterwards and the table would grow with every request.
Rows that finished (succeeded, failed, cancelled, interrupted) more than ``[cluster]
host_call_retention`` seconds ago (default one day) are deleted; other kinds (backup, restore,
verify, gc, wipe, policy-run: what users look up with `storagectl job list`) are kept. Each agent
prunes every ``prune_every(retention, heartbeat_interval)`` seconds (two agents pruning at once
delete the same rows: harmless). The decisions are pure, table-tested in tests/test_jobs_prune.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, select

from storage.catalog.api_tables import Job

if TYPE_CHECKING:
    from storage.catalog import Catalog

PRUNED_KINDS = frozenset({"host-call"})
FINISHED_STATES = frozenset({"succeeded", "failed", "cancelled", "interrupted"})
DEFAULT_RETENTION = 86400.0  # seconds: one day
BATCH = 1000  # rows per DELETE, so one prune never holds a long lock on the jobs table
MAX_PRUNE_EVERY = 3600.0


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def prunable(kind: str, state: str, finished_at: datetime | None, now: datetime, retention: float) -> bool:
    """Whether a job row goes: a host call that finished at least ``retention`` seconds before ``now``."""
    if kind not in PRUNED_KINDS or state not in FINISHED_STATES or finished_at is None:
        return False
    return _utc(now) - _utc(finished_at) >= timedelta(seconds=retention)


def prune_every(retention: float, heartbeat_interval: float) -> float:
    """Seconds between two prunes of an agent: a tenth of the retention, at least one heartbeat
    interval (the agent's loop runs no faster), at most an hour."""
    return max(heartbeat_interval, min(MAX_PRUNE_EVERY, retention / 10))


def prune_host_calls(catalog: "Catalog", *, retention: float, now: datetime | None = None, batch: int = BATCH) -> int:
    """Delete the prunable host-call rows; return how many went."""
    now = now or datetime.now(UTC)
    cutoff = _utc(now) - timedelta(seconds=retention)
    total = 0
    while True:
        with catalog.session() as s:
            rows = s.execute(
                select(Job.id, Job.kind, Job.state, Job.finished_at)
                .where(Job.kind.in_(PRUNED_KINDS), Job.state.in_(FINISHED_STATES), Job.finished_at <= cutoff)
                .limit(batch)
            ).all()
            ids = [r.id for r in rows if prunable(r.kind, r.state, r.finished_at, now, retention)]
            if ids:
                s.execute(delete(Job).where(Job.id.in_(ids)))
        total += len(ids)
        if len(rows) < batch or not ids:
            return total
