"""Listing backups (``st.backups.list``), apart from BackupService so a listing imports neither
SQLAlchemy nor the backup engine: one SELECT through ``Catalog.read`` (sqlite3 for a CLI
listing of a SQLite catalog, SQLAlchemy otherwise; the same SQL), rows mapped to ``Backup`` by
``backup_model``, which ``records.to_model`` uses for ORM rows too.

Before listing, backups left 'creating' by a process of this host that is gone are marked
'interrupted' (through the ORM; only when there is one, which is rare).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from storage import owners
from storage.backup.models import STATUS_CREATING, Backup
from storage.catalog.volume_listing import json_dict, utc_datetime

if TYPE_CHECKING:
    from storage.catalog import Catalog

# Every Backup field is a column of the backups table, under the same name.
BACKUP_FIELDS = tuple(Backup.model_fields)


def backup_model(values: tuple[Any, ...]) -> Backup:
    """A Backup from the BACKUP_FIELDS values of one row (raw DB-API values or ORM attributes)."""
    data = dict(zip(BACKUP_FIELDS, values, strict=True))
    data["labels"] = json_dict(data["labels"])
    data["encrypted"] = bool(data["encrypted"])
    for key in ("created_at", "completed_at"):
        if data[key] is not None:
            data[key] = utc_datetime(data[key])
    return Backup(**data)


def backup_list_sql(*, repository: bool, status: bool) -> str:
    """The listing's SELECT, filtered on ``:repository`` / ``:status`` when asked (pure)."""
    where = [c for c, on in (("repository = :repository", repository), ("status = :status", status)) if on]
    return (
        f"SELECT {', '.join(BACKUP_FIELDS)} FROM backups"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + " ORDER BY created_at"
    )


class BackupListing:
    """The read side of backups. ``repository_url`` turns a repository given by the caller into
    the catalog's spelling of it (ObjectService.open_url(...).url); only called with a filter."""

    def __init__(self, catalog: "Catalog", repository_url: Callable[[str], str]) -> None:
        self._catalog = catalog
        self._repository_url = repository_url

    def mark_interrupted(self) -> None:
        creating = self._catalog.read("SELECT owner FROM backups WHERE status = :status", {"status": STATUS_CREATING})
        if any(owners.is_dead_here(owner) for (owner,) in creating):
            from storage.backup import records

            with self._catalog.session() as s:
                records.mark_interrupted(s)

    def list(
        self, *, volume: str | None = None, repository: str | None = None, labels: dict[str, str] | None = None,
        status: str | None = None,
    ) -> list[Backup]:
        """Backups, oldest first; volume is a volume name or id; labels must all match."""
        self.mark_interrupted()
        params = {"repository": None if repository is None else self._repository_url(repository), "status": status}
        sql = backup_list_sql(repository=repository is not None, status=status is not None)
        rows = [backup_model(r) for r in self._catalog.read(sql, {k: v for k, v in params.items() if v is not None})]
        if volume is not None:
            rows = [b for b in rows if volume in (b.volume_id, b.volume_name)]
        if labels:
            rows = [b for b in rows if all(b.labels.get(k) == v for k, v in labels.items())]
        return rows
