"""The abstract volume backend: what a pool driver must do.

Identifiers: the core passes the catalog UUIDs of volumes and snapshots (``volume_id``,
``snapshot_id``); a backend derives its own on-disk names from them, so user-chosen names
never reach a path. Sizes are bytes. Methods raise ``storage.errors`` types.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

ProgressCallback = Callable[[int, int], None]  # (bytes_done, bytes_total)


class WipeMode(str, enum.Enum):
    NONE = "none"
    ZERO = "zero"


@dataclass(frozen=True)
class Capabilities:
    thin: bool = False
    snapshots: bool = True
    clone: bool = True
    revert: bool = True
    online_extend: bool = True
    changed_ranges: bool = False  # can report changed ranges between two snapshots
    copy_method: str = "copy"  # "reflink" | "copy" | "cow" ...
    size_granularity: int = 1024 * 1024  # sizes are rounded up to this

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class PoolUsage:
    total_bytes: int
    free_bytes: int
    provisioned_bytes: int  # sum of volume and snapshot virtual sizes
    allocated_bytes: int  # bytes really used by this pool
    overcommit_ratio: float = 1.0
    extra: Mapping[str, Any] = field(default_factory=dict)  # e.g. thin pool data/metadata percent
    # the part of provisioned_bytes the pool's overcommit limit counts, when not all of it
    # (the file pool counts volumes, not snapshots); None = all of provisioned_bytes
    limit_counted_bytes: int | None = None

    @property
    def provisionable_bytes(self) -> int:
        """What new volumes may still provision before the pool refuses (the scheduler's thin capacity)."""
        counted = self.provisioned_bytes if self.limit_counted_bytes is None else self.limit_counted_bytes
        return int(self.total_bytes * self.overcommit_ratio) - counted


@dataclass(frozen=True)
class BackendItem:
    """One volume or snapshot as the backend sees it, for reconciliation."""

    kind: str  # "volume" | "snapshot"
    id: str  # catalog UUID it belongs to
    size_bytes: int
    parent_id: str | None = None  # volume of a snapshot
    path: str | None = None


@dataclass(frozen=True)
class ChangedRanges:
    """Byte ranges that may differ between a base snapshot and a newer one.

    ``ranges`` is sorted, non-overlapping (offset, length); anything outside them is
    identical to the base. ``source`` names the mechanism (``fiemap``, ``thin_delta``).
    """

    ranges: list[tuple[int, int]]
    source: str


class VolumeBackend(ABC):
    """A pool of block volumes. One instance serves one configured pool."""

    driver_name: ClassVar[str]

    def __init__(self, pool_name: str, options: Mapping[str, Any]) -> None:
        self.pool_name = pool_name
        self.options = dict(options)

    # -- pool -------------------------------------------------------------
    @abstractmethod
    def capabilities(self) -> Capabilities: ...

    @abstractmethod
    def usage(self) -> PoolUsage: ...

    def check_host(self) -> None:
        """Raise storage.errors.Unsupported with one clear sentence if this host cannot run the driver."""

    # -- volumes ----------------------------------------------------------
    @abstractmethod
    def create_volume(self, volume_id: str, size_bytes: int) -> None: ...

    @abstractmethod
    def delete_volume(
        self, volume_id: str, wipe: WipeMode = WipeMode.NONE, progress: ProgressCallback | None = None
    ) -> None: ...

    @abstractmethod
    def extend_volume(self, volume_id: str, new_size_bytes: int) -> None:
        """Grow the volume; an attached volume's device must show the new size."""

    @abstractmethod
    def clone_volume(self, source_volume_id: str, new_volume_id: str, size_bytes: int) -> None: ...

    # -- snapshots --------------------------------------------------------
    @abstractmethod
    def create_snapshot(self, volume_id: str, snapshot_id: str) -> None: ...

    @abstractmethod
    def delete_snapshot(self, volume_id: str, snapshot_id: str) -> None: ...

    @abstractmethod
    def clone_snapshot(self, volume_id: str, snapshot_id: str, new_volume_id: str, size_bytes: int) -> None: ...

    @abstractmethod
    def revert_to_snapshot(self, volume_id: str, snapshot_id: str) -> None: ...

    # -- attach -----------------------------------------------------------
    @abstractmethod
    def attach(self, volume_id: str) -> str:
        """Make the volume a local block device; return its path (e.g. /dev/loop3)."""

    @abstractmethod
    def detach(self, volume_id: str) -> None: ...

    @abstractmethod
    def attached_device(self, volume_id: str) -> str | None:
        """The local device path of the volume if it is attached on this host now."""

    # -- reading for backups ----------------------------------------------
    @abstractmethod
    @contextmanager
    def open_snapshot(self, volume_id: str, snapshot_id: str) -> Iterator[str]:
        """Yield a path (file or block device) from which the snapshot can be read."""

    @abstractmethod
    @contextmanager
    def open_volume(self, volume_id: str) -> Iterator[str]:
        """Yield a path (file or block device) from which the volume can be read and written."""

    def changed_ranges(self, volume_id: str, base_snapshot_id: str, snapshot_id: str) -> ChangedRanges | None:
        """Ranges that may differ between two snapshots of a volume; None when unknown."""
        return None

    def is_all_holes(self, volume_id: str) -> bool:
        """True only when the volume provably holds no data (all holes); False when unknown."""
        return False

    # -- reconciliation ---------------------------------------------------
    @abstractmethod
    def list_items(self) -> list[BackendItem]:
        """Every volume and snapshot present in the pool."""

    def stale_attachments(self, known_volume_ids: set[str]) -> list[str]:
        """Local devices that belong to this pool but to no known volume."""
        return []

    def remove_stale_attachment(self, device: str) -> None:  # pragma: no cover - optional
        raise NotImplementedError
