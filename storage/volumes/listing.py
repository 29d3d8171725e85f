"""Listing volumes (``st.volumes.list``), kept apart from VolumeService so a listing imports
neither SQLAlchemy nor the drivers: `storagectl volume list` runs only this module.

Before listing, statuses a dead process of this host left behind are settled (storage.volumes.settle):
the check is one read of the transitional rows' owners here; only when one is dead is ``settle``
called (it needs the drivers and the ORM), which is rare.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from storage import owners
from storage.catalog import listing_sql
from storage.catalog.volume_listing import list_volume_models, volume_list_version
from storage.domain import TRANSITIONAL_SNAPSHOT_STATUSES, TRANSITIONAL_VOLUME_STATUSES, Volume, VolumeStatus
from storage.errors import InvalidInput

if TYPE_CHECKING:
    from storage.catalog import Catalog

_VOLUME_TRANSITIONAL = tuple(sorted(s.value for s in TRANSITIONAL_VOLUME_STATUSES))
_SNAPSHOT_TRANSITIONAL = tuple(sorted(s.value for s in TRANSITIONAL_SNAPSHOT_STATUSES))


def labels_match(have: dict[str, str], want: dict[str, str] | None) -> bool:
    return not want or all(have.get(k) == v for k, v in want.items())


def parse_volume_status(status: str | VolumeStatus) -> VolumeStatus:
    try:
        return VolumeStatus(status)
    except ValueError:
        raise InvalidInput(
            f"status {status!r} is not a volume status; accepted: {', '.join(v.value for v in VolumeStatus)}"
        ) from None


def orphaned(rows: Iterable[tuple[str, str | None]], is_dead: object = owners.is_dead_here) -> set[str]:
    """Pure given is_dead: the volume ids (first of each pair) whose owner (second) is dead."""
    return {vid for vid, owner in rows if owner and is_dead(owner)}  # type: ignore[operator]


def transitional_owners_sql() -> tuple[str, dict[str, str]]:
    """(volume id, owner) of every volume and snapshot in a transitional status: SQL and params."""
    return listing_sql.transitional_owners_sql(_VOLUME_TRANSITIONAL, _SNAPSHOT_TRANSITIONAL)


class VolumeListing:
    """The read side of volumes: list and the change counter. ``settle`` settles what dead
    processes of this host left (storage.volumes.settle.settle_volumes over this host's drivers)."""

    def __init__(self, catalog: "Catalog", *, settle: Callable[[], object] | None = None) -> None:
        self._catalog = catalog
        self._settle = settle

    def settle_if_needed(self) -> None:
        if self._settle is not None and orphaned(self._catalog.read(*transitional_owners_sql())):  # type: ignore[arg-type]
            self._settle()

    def list(
        self, *, pool: str | None = None, status: str | VolumeStatus | None = None, labels: dict[str, str] | None = None
    ) -> list[Volume]:
        wanted = None if status is None else parse_volume_status(status)
        self.settle_if_needed()
        vols = list_volume_models(self._catalog, pool=pool, status=wanted)
        return [v for v in vols if labels_match(v.labels, labels)]

    def list_version(self) -> int | None:
        """A counter that changes with every write to a volume or attachment, by any process.

        Read it *before* ``list()`` and a listing is at least as new as the counter it is kept
        under. None when the catalog keeps no counter (then nothing may be cached).
        """
        return volume_list_version(self._catalog)
