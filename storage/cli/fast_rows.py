"""`volume list` and `backup list` from the catalog's raw rows, as the full CLI prints them.

The full path validates each row into a pydantic model (storage.catalog.volume_listing,
storage.backup.listing) and prints the model. Here each row is checked against the model's
field types and turned into the dict ``model_dump(mode="json")`` gives, in field order; a row
the model might coerce or refuse (a type it does not hold, an unknown volume status, a
timestamp with a non-UTC offset) answers None and the full CLI runs. The statuses, field names
and SQL are copies of the models' and listings' (tests/test_cli_fast_parts.py keeps them equal).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from storage.catalog import listing_sql

VOLUME_STATUSES = ("creating", "available", "attaching", "in-use", "detaching", "extending", "deleting", "reverting",
                   "snapshotting", "cloning", "backing-up", "restoring-backup", "error", "error_deleting")  # fmt: skip
VOLUME_FIELDS = ("id", "name", "size_bytes", "pool", "status", "labels", "created_at", "updated_at", "attached_device",
                 "source_volume_id", "source_snapshot_id", "host", "host_state", "description", "error_reason")  # fmt: skip
VOLUME_SQL_FIELDS = tuple(f for f in VOLUME_FIELDS if f != "host_state")  # host_state: filled by `show` only
BACKUP_FIELDS = ("id", "name", "description", "volume_id", "volume_name", "source", "repository", "repository_id",
                 "status", "encrypted", "size_bytes", "stored_bytes", "read_bytes", "chunk_size", "chunk_count",
                 "zero_chunk_count", "new_chunk_count", "dedup_chunk_count", "reused_chunk_count", "snapshot_id",
                 "created_at", "completed_at", "labels", "error")  # fmt: skip
BACKUP_INTS = frozenset({"size_bytes", "stored_bytes", "read_bytes", "chunk_size", "chunk_count", "zero_chunk_count",
                         "new_chunk_count", "dedup_chunk_count", "reused_chunk_count"})  # fmt: skip
BACKUP_REQUIRED = frozenset({"id", "repository", "status"})
VOLUME_REQUIRED = frozenset({"id", "name", "pool"})
VOLUME_TRANSITIONAL = ("attaching", "backing-up", "cloning", "creating", "deleting", "detaching", "extending",
                       "restoring-backup", "reverting", "snapshotting")  # fmt: skip
SNAPSHOT_TRANSITIONAL = ("backing-up", "cloning", "creating", "deleting")
VOLUME_COLUMNS = ("Name", "ID", "Size", "Pool", "Status", "Device", "Labels")
BACKUP_COLUMNS = ("ID", "Name", "Volume", "Status", "Size", "Stored", "Chunks (new/dedup/zero)", "Created")
_ZERO = timedelta(0)


class Unsure(Exception):
    """A value the model might treat otherwise: the full CLI must answer."""


def transitional_owners_sql() -> tuple[str, dict[str, str]]:
    """storage.volumes.listing.transitional_owners_sql, without importing the domain models."""
    return listing_sql.transitional_owners_sql(VOLUME_TRANSITIONAL, SNAPSHOT_TRANSITIONAL)


def volume_list_sql(*, pool: bool, status: bool) -> str:
    """storage.catalog.volume_listing.volume_list_sql."""
    columns = ["a.device" if f == "attached_device" else f"v.{f}" for f in VOLUME_SQL_FIELDS]
    return listing_sql.volume_list_sql(columns, pool=pool, status=status)


def backup_list_sql(*, status: bool) -> str:
    """storage.backup.listing.backup_list_sql without a repository filter."""
    return f"SELECT {', '.join(BACKUP_FIELDS)} FROM backups" + (" WHERE status = :status" if status else "") + " ORDER BY created_at"


def format_size(n: int) -> str:
    """storage.units.format_size of an int (a copy: storage.units imports decimal, ~10 ms)."""
    value = float(n)
    for suffix in ("", "K", "M", "G", "T", "P", "E"):
        if abs(value) < 1024.0 or suffix == "E":
            if suffix == "":
                return f"{int(value)}"
            return f"{value:.1f}{suffix}" if value < 10 else f"{value:.0f}{suffix}"
        value /= 1024.0
    return str(n)  # pragma: no cover


def when(value: Any) -> datetime:
    """A catalog timestamp as storage.catalog.volume_listing.utc_datetime gives it, UTC only."""
    if not isinstance(value, str):
        raise Unsure(value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Unsure(value) from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    if parsed.utcoffset() != _ZERO:
        raise Unsure(value)
    return parsed


def json_time(value: datetime | None) -> str | None:
    """A UTC datetime as pydantic writes it in JSON: ISO 8601, microseconds only when set, 'Z'."""
    return None if value is None else value.replace(tzinfo=None).isoformat() + "Z"


def labels(value: Any) -> dict[str, str]:
    """A JSON labels column as dict[str, str] (storage.catalog.volume_listing.json_dict)."""
    if value is None:
        return {}
    try:
        data = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        raise Unsure(value) from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise Unsure(value)
    return data


def _text(values: dict[str, Any], required: frozenset[str], skip: tuple[str, ...]) -> None:
    for key, value in values.items():
        if key in skip:
            continue
        if not (isinstance(value, str) or (value is None and key not in required)):
            raise Unsure(key)


def volume(row: tuple[Any, ...]) -> dict[str, Any]:
    """One row of volume_list_sql as Volume.model_dump(mode="json") gives it, with ``_created`` kept."""
    values = dict(zip(VOLUME_SQL_FIELDS, row, strict=True))
    values["host_state"] = None
    size = values["size_bytes"]
    if type(size) is not int or values["status"] not in VOLUME_STATUSES:
        raise Unsure(values["id"])
    _text(values, VOLUME_REQUIRED, ("size_bytes", "labels", "created_at", "updated_at"))
    out = {k: values[k] for k in VOLUME_FIELDS}
    out["labels"] = labels(values["labels"])
    out["created_at"] = json_time(when(values["created_at"]))
    out["updated_at"] = json_time(when(values["updated_at"]))
    return out


def backup(row: tuple[Any, ...]) -> tuple[dict[str, Any], datetime | None]:
    """One row of backup_list_sql as Backup.model_dump(mode="json") gives it, and its created_at."""
    values = dict(zip(BACKUP_FIELDS, row, strict=True))
    for key in BACKUP_INTS:
        if type(values[key]) is not int:
            raise Unsure(key)
    _text(values, BACKUP_REQUIRED, (*BACKUP_INTS, "encrypted", "labels", "created_at", "completed_at"))
    created = None if values["created_at"] is None else when(values["created_at"])
    completed = None if values["completed_at"] is None else when(values["completed_at"])
    values["encrypted"] = bool(values["encrypted"])
    values["labels"] = labels(values["labels"])
    values["created_at"], values["completed_at"] = json_time(created), json_time(completed)
    return values, created
