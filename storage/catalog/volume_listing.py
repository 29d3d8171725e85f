"""Cheap volume listing: one SELECT joined with attachments, no ORM objects, no N+1 queries,
and no SQLAlchemy import (it runs through ``Catalog.read``: sqlite3 for a CLI listing of a
SQLite catalog, the engine in a server or on PostgreSQL; the same SQL either way).

The rows become plain dicts validated as one list in pydantic-core: about 8 ms for 1,000 volumes,
three times cheaper than ``model_construct`` (a Python loop per row), and still validated. The
change counter ``volume_list_version`` lets a caller keep a derived result (the API's serialised
listing) until any volume or attachment changes, in this or any other process.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from storage.catalog import listing_sql
from storage.domain import Volume, VolumeStatus

if TYPE_CHECKING:
    from storage.catalog.db import Catalog

VOLUMES_COUNTER = "volumes"
_COLUMNS = (
    "v.id", "v.name", "v.size_bytes", "v.pool", "v.status", "v.labels", "v.created_at", "v.updated_at",
    "a.device", "v.source_volume_id", "v.source_snapshot_id", "v.host", "v.description",
    "v.error_reason",
)  # fmt: skip
_FIELDS = (
    "id", "name", "size_bytes", "pool", "status", "labels", "created_at", "updated_at",
    "attached_device", "source_volume_id", "source_snapshot_id", "host", "description",
    "error_reason",
)  # fmt: skip
_adapter: Any = None


def volume_list_sql(*, pool: bool, status: bool) -> str:
    """The listing's SELECT, filtered on ``:pool`` / ``:status`` when asked (pure)."""
    return listing_sql.volume_list_sql(_COLUMNS, pool=pool, status=status)


def utc_datetime(value: datetime | str) -> datetime:
    """A catalog timestamp as an aware UTC datetime: SQLite hands back naive text, PostgreSQL aware values."""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def json_dict(value: dict[str, str] | str | None) -> dict[str, str]:
    """A JSON column: SQLite hands back its text, PostgreSQL the decoded value."""
    if value is None:
        return {}
    return dict(json.loads(value) if isinstance(value, str) else value)


def volume_values(row: tuple[Any, ...]) -> dict[str, Any]:
    values = dict(zip(_FIELDS, row, strict=True))
    values["labels"] = json_dict(values["labels"])
    values["created_at"] = utc_datetime(values["created_at"])
    values["updated_at"] = utc_datetime(values["updated_at"])
    return values


def list_volume_models(catalog: "Catalog", *, pool: str | None = None, status: VolumeStatus | None = None) -> list[Volume]:
    """Volumes ordered by creation time then name, optionally filtered by pool and status."""
    global _adapter
    if _adapter is None:
        from pydantic import TypeAdapter

        _adapter = TypeAdapter(list[Volume])
    params = {"pool": pool, "status": None if status is None else status.value}
    sql = volume_list_sql(pool=pool is not None, status=status is not None)
    rows = catalog.read(sql, {k: v for k, v in params.items() if v is not None})
    return _adapter.validate_python([volume_values(row) for row in rows])  # type: ignore[no-any-return]


def volume_list_version(catalog: "Catalog") -> int | None:
    """The volumes change counter (triggers on SQLite and PostgreSQL, migrations 0006/0007), or None
    where the catalog keeps none (another database)."""
    rows = catalog.read("SELECT value FROM catalog_versions WHERE name = :name", {"name": VOLUMES_COUNTER})
    return int(rows[0][0]) if rows else None
