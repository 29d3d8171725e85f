"""Edits of one volume's or snapshot's labels and description, each in one catalog transaction
(Cinder's ``/metadata`` calls and ``description``).

``VolumeService.update(labels=...)`` replaces the whole set; an edit that merges or removes keys
must read and write in one transaction, else two clients adding different keys at once lose one.
The transaction starts with a write to the row (its ``updated_at``): PostgreSQL locks the row and
SQLite takes its write lock before the labels are read (SQLite's driver begins a transaction only at
the first write, so a plain read-then-write loses updates: tests/test_label_edits.py caught it).
The new set is computed by the pure ``edited_labels``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import update

from storage.bounds import DESCRIPTION_MAX, check_labels
from storage.catalog.base import utcnow
from storage.catalog.volumes import SnapshotRow, VolumeRow
from storage.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

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
        row = _locked(s, row_type, kind, item_id)
        labels = edited_labels(row.labels or {}, merge=merge, remove=remove, replace=replace)
        if labels != (row.labels or {}):
            row.labels = labels
    return labels


def _locked(s: "Session", row_type: type, kind: str, item_id: str) -> Any:
    """The row, after a first write to it (``updated_at``) that holds it until the transaction ends."""
    touched = s.execute(update(row_type).where(row_type.id == item_id).values(updated_at=utcnow())).rowcount
    row = s.get(row_type, item_id, populate_existing=True) if touched else None
    if row is None:
        raise NotFound(f"{kind} {item_id!r} not found", **{kind: item_id})
    return row


def check_description(value: object) -> str | None:
    """A description: a string of at most DESCRIPTION_MAX characters; empty means none (None)."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > DESCRIPTION_MAX:
        raise InvalidInput(
            f"description is not accepted; accepted: a string of at most {DESCRIPTION_MAX} characters", field="description"
        )
    return value or None


def set_description(catalog: "Catalog", kind: str, item_id: str, description: object) -> str | None:
    """Set (or with None / "" clear) the description of the ``kind`` row ``item_id``; the stored value."""
    text = check_description(description)
    with catalog.session() as s:
        _locked(s, ROWS[kind], kind, item_id).description = text
    return text
