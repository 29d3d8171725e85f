"""Constraint violations become Conflict in one place (storage/catalog/conflicts.py), on both databases:
the same refusals worded the same whether SQLite or PostgreSQL reported them."""

from __future__ import annotations

import pytest

from storage.catalog import Catalog
from storage.catalog.base import new_id, utcnow
from storage.catalog.policies import PolicyRow
from storage.catalog.volumes import AttachmentRow, SnapshotRow, VolumeRow
from storage.errors import Conflict, InvalidInput

pytestmark = pytest.mark.both_catalogs


def _volume(name: str) -> VolumeRow:
    now = utcnow()
    return VolumeRow(id=new_id(), name=name, size_bytes=1, pool="default", status="available", labels={},
                     created_at=now, updated_at=now)  # fmt: skip


def test_duplicate_names_and_ids_raise_conflict_not_integrity_error(catalog_url: str) -> None:
    catalog = Catalog(catalog_url)
    try:
        first = _volume("twin")
        with catalog.session() as s:
            s.add(first)
        with pytest.raises(Conflict, match="a volume with this name exists already"):
            with catalog.session() as s:
                s.add(_volume("twin"))
        with pytest.raises(Conflict, match="the volume is attached already"):
            with catalog.session() as s:
                s.add(AttachmentRow(volume_id=first.id, device="/dev/loop9", host="h", attached_at=utcnow()))
                s.flush()
                s.add(AttachmentRow(volume_id=first.id, device="/dev/loop8", host="h", attached_at=utcnow()))
        with pytest.raises(Conflict, match="a policy with this name exists already"):
            for _ in range(2):
                with catalog.session() as s:
                    now = utcnow()
                    s.add(PolicyRow(name="nightly", kind="snapshot", schedule="@daily", timezone="UTC", selector={},
                                    retention={}, enabled=True, created_at=now, updated_at=now))  # fmt: skip
        with pytest.raises(Conflict, match="refers to was changed or deleted concurrently"):
            with catalog.session() as s:
                s.add(SnapshotRow(volume_id=new_id(), name="orphan", size_bytes=1, status="available", labels={},
                                  created_at=utcnow(), updated_at=utcnow()))  # fmt: skip
        with catalog.session() as s:  # the session is usable again after each refusal
            assert s.get(VolumeRow, first.id) is not None
    finally:
        catalog.close()


def test_a_value_longer_than_its_column_is_invalid_input(catalog_url: str) -> None:
    """PostgreSQL enforces String(n) (SQLite stores anything): the refusal is typed, not a driver error."""
    catalog = Catalog(catalog_url)
    try:
        row = _volume("long-pool")
        row.pool = "p" * 200  # volumes.pool is String(128)
        if catalog.engine.dialect.name == "sqlite":
            with catalog.session() as s:
                s.add(row)
            return
        with pytest.raises(InvalidInput, match=r"does not fit the catalog \(value too long for type character varying\(128\)\)"):
            with catalog.session() as s:
                s.add(row)
    finally:
        catalog.close()
