"""Label edits of one volume or snapshot in one catalog transaction (Cinder's ``/metadata`` calls).

``VolumeService.update(labels=...)`` replaces the whole set; an edit that merges or removes keys
must read and write in one transaction, else two clients adding different keys at once lose one.
The row is read ``FOR UPDATE`` (PostgreSQL locks it; SQLite serialises writers) and the new set is
computed by the pure ``edited_labels``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from storage.bounds import check_labels
from storage.catalog.base import utcnow
from storage.catalog.volumes import SnapshotRow, VolumeRow
from storage.errors import NotFound

if TYPE_CHECKING:
    from storage.catalog import Catalog

ROWS = {"volume": VolumeRow, "snapshot": SnapshotRow}


def edited_labels(
    current: Mapping[str, str], *, merge: Mapping[str, str] | None = None, remove: Iterable[str] = (),
    replace: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The labels after an edit: ``replace`` (the whole set) or ``merge`` (added/overwritten keys),
    then ``remove`` (each key must exist: NotFound names it). Bounds are checked on the result."""
    labels = dict(replace if replace is not None else current)
    labels.update(merge or {})
    for key in remove:
        if key not in labels:
            raise NotFound(f"label {key!r} not found; labels: {', '.join(sorted(labels)) or 'none'}", label=key)
        del labels[key]
    return check_labels(labels, field="metadata")


def edit_labels(
    catalog: "Catalog", kind: str, item_id: str, *, merge: Mapping[str, str] | None = None,
    remove: Iterable[str] = (), replace: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Apply ``edited_labels`` to the ``kind`` ("volume" or "snapshot") row ``item_id``; the new labels."""
    row_type = ROWS[kind]
    with catalog.session() as s:
        row = s.get(row_type, item_id, with_for_update=True)
        if row is None:
            raise NotFound(f"{kind} {item_id!r} not found", **{kind: item_id})
        labels = edited_labels(row.labels or {}, merge=merge, remove=remove, replace=replace)
        if labels != (row.labels or {}):
            row.labels = labels
            row.updated_at = utcnow()
    return labels
