"""Settle statuses left behind by a dead process when a command meets them.

A volume or snapshot in a transitional status (``snapshotting``, ``restoring-backup``,
``creating``...) records its owner (``host:pid:start``). When that process is gone, the next
command that reads the volume settles it from what the backend holds, the same decision
``storagectl check --repair`` makes (``storage.volumes.check.settle_orphaned``), so a killed backup or
restore never leaves a volume that refuses the rerun. The test is one catalog query and, per
transitional row, a signal-0 probe of the owner; the backend is asked only for a dead owner.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from sqlalchemy import select

from storage.catalog.volumes import SnapshotRow, VolumeRow
from storage.domain import TRANSITIONAL_SNAPSHOT_STATUSES, TRANSITIONAL_VOLUME_STATUSES
from storage.errors import StorageError
from storage.volumes.listing import orphaned

if TYPE_CHECKING:
    from storage.catalog import Catalog

log = logging.getLogger(__name__)

_VOLUME_TRANSITIONAL = tuple(s.value for s in TRANSITIONAL_VOLUME_STATUSES)
_SNAPSHOT_TRANSITIONAL = tuple(s.value for s in TRANSITIONAL_SNAPSHOT_STATUSES)


def settle_volumes(catalog: "Catalog", host: object, volume_ids: Iterable[str] | None = None) -> int:
    """Settle the given volumes (all when None) and their snapshots where a dead process of this
    host left a transitional status; return how many statuses were settled. host is this host's
    drivers (``LocalHost``); a host API without in-process drivers settles nothing here."""
    ids = None if volume_ids is None else list(volume_ids)
    if ids == [] or not hasattr(host, "volume_backend"):
        return 0
    with catalog.session() as s:
        vq = select(VolumeRow.id, VolumeRow.task_owner).where(VolumeRow.status.in_(_VOLUME_TRANSITIONAL))
        sq = select(SnapshotRow.volume_id, SnapshotRow.task_owner).where(SnapshotRow.status.in_(_SNAPSHOT_TRANSITIONAL))
        if ids is not None:
            vq = vq.where(VolumeRow.id.in_(ids))
            sq = sq.where(SnapshotRow.volume_id.in_(ids))
        rows = [tuple(r) for r in s.execute(vq).all()] + [tuple(r) for r in s.execute(sq).all()]
    return settle_each(catalog, host, sorted(orphaned(rows)))  # type: ignore[arg-type]


def settle_each(catalog: "Catalog", host: object, volume_ids: Iterable[str], *,
                is_dead: "Callable[[str | None], bool] | None" = None, why: str = "left behind by a dead process") -> int:
    """Settle each volume (and its snapshots) with ``settle_orphaned`` on this host's drivers,
    logging what was settled; one volume's failure is logged and the others still settled.
    Returns how many statuses were settled. ``is_dead`` as in ``settle_orphaned``."""
    from storage.volumes.check import settle_orphaned

    settled = 0
    for vid in volume_ids:
        try:
            findings = settle_orphaned(catalog, host, vid, is_dead=is_dead)  # type: ignore[arg-type]
        except StorageError as exc:
            log.warning("settling volume %s %s failed: %s", vid, why, exc.message)
            continue
        except OSError as exc:  # the pool changed under us (another process deleting): next command retries
            log.warning("settling volume %s %s failed: %s", vid, why, exc.strerror or exc)
            continue
        for f in findings:
            if f.repaired:
                settled += 1
                log.warning("settled %s (%s): %s -> %s", f.name or f.object_id, why, f.detail, f.repair)
            elif f.repair_error:
                log.warning("settling %s failed: %s", f.name or f.object_id, f.repair_error)
    return settled
