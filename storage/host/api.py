"""The seam between the control plane and this host's devices: every call that *does* something.

The control plane (``storage.volumes``, ``storage.exports``, ``storage.backup``, the catalog)
decides and records; it touches a host's pools and iSCSI target only through ``HostApi``. This
file is the whole list of such calls, in the spirit of Cinder's ``volume/rpcapi.py``.

Arguments and results are plain data (ids, pool names, sizes, dicts of str/int/list) so that a
remote implementation (an agent per storage host behind a work queue) can carry them. Two calls
are local by nature and say so: ``open_volume``/``open_snapshot`` yield a path readable on this
host (backup reads, restore writes), and ``delete_volume`` takes an optional progress callback.

``LocalHost`` (``storage.host.local``) is the in-process implementation: it calls the drivers
directly. Errors are the drivers' typed ``storage.errors`` exceptions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

ProgressCallback = Callable[[int, int], None]


class HostApi(ABC):
    """What the control plane may ask of the host that owns a pool and the export target."""

    # -- pools -----------------------------------------------------------------------------
    @abstractmethod
    def check_pool(self, pool: str) -> None:
        """Raise NotFound (pool not configured) or the driver's error (bad options); else return."""

    @abstractmethod
    def pool_capabilities(self, pool: str) -> dict[str, Any]:
        """thin, snapshots, clone, revert, online_extend, changed_ranges, copy_method, size_granularity."""

    @abstractmethod
    def pool_usage(self, pool: str) -> dict[str, Any]:
        """total/free/provisioned/allocated/provisionable bytes, overcommit_ratio, extra."""

    # -- volume lifecycle ------------------------------------------------------------------
    @abstractmethod
    def create_volume(self, pool: str, volume_id: str, size_bytes: int) -> None: ...

    @abstractmethod
    def clone_volume(self, pool: str, source_volume_id: str, new_volume_id: str, size_bytes: int) -> None: ...

    @abstractmethod
    def clone_snapshot(self, pool: str, volume_id: str, snapshot_id: str, new_volume_id: str, size_bytes: int) -> None: ...

    @abstractmethod
    def extend_volume(self, pool: str, volume_id: str, size_bytes: int) -> None: ...

    @abstractmethod
    def revert_to_snapshot(self, pool: str, volume_id: str, snapshot_id: str) -> None: ...

    @abstractmethod
    def delete_volume(self, pool: str, volume_id: str, wipe: str = "none", progress: ProgressCallback | None = None) -> None:
        """Remove the volume's data; ``wipe="zero"`` overwrites it first (progress(done, total))."""

    @abstractmethod
    def create_snapshot(self, pool: str, volume_id: str, snapshot_id: str) -> None: ...

    @abstractmethod
    def delete_snapshot(self, pool: str, volume_id: str, snapshot_id: str) -> None: ...

    # -- attach on this host ---------------------------------------------------------------
    @abstractmethod
    def attach(self, pool: str, volume_id: str) -> str:
        """Make the volume a local block device; returns its path."""

    @abstractmethod
    def detach(self, pool: str, volume_id: str) -> None: ...

    @abstractmethod
    def attached_device(self, pool: str, volume_id: str) -> str | None: ...

    # -- local data access (backup reads, restore writes) ----------------------------------
    @abstractmethod
    def open_volume(self, pool: str, volume_id: str) -> AbstractContextManager[str]:
        """A path on this host holding the volume's data, readable and writable while open."""

    @abstractmethod
    def open_snapshot(self, pool: str, volume_id: str, snapshot_id: str) -> AbstractContextManager[str]:
        """A path on this host holding the snapshot's data, readable while open."""

    @abstractmethod
    def changed_ranges(self, pool: str, volume_id: str, base_snapshot_id: str, snapshot_id: str) -> Any:
        """``ChangedRanges`` (a dataclass of (offset, length) pairs) or None when the driver cannot tell."""

    @abstractmethod
    def volume_is_all_holes(self, pool: str, volume_id: str) -> bool:
        """True only when the driver can tell the volume holds no data (every block a hole);
        False when it has data or the driver cannot tell (then callers treat it as data)."""

    # -- iSCSI export target ---------------------------------------------------------------
    @abstractmethod
    def export_driver(self) -> dict[str, Any]:
        """{"driver": name, "default_lun": int} of this host's export target, and "portal": the HOST:PORT it
        advertises when the host knows it (a cluster's control plane hands that out for this host's targets)."""

    @abstractmethod
    def ensure_export_service(self) -> None:
        """Start the target service if it is not running (tgtd; no-op for LIO)."""

    @abstractmethod
    def stop_export_service(self) -> None:
        """Remove every target and stop the target service."""

    @abstractmethod
    def export_target(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Create or update one target.

        spec: {"key", "device_path", "target_iqn", "lun", "chap": {"username", "password"} | None,
        "initiators": [...], "serial"}. Returns the target as ``list_targets`` describes it.
        """

    @abstractmethod
    def unexport_target(self, target_iqn: str) -> None:
        """Remove a target; NotFound when it does not exist."""

    @abstractmethod
    def resize_target(self, target_iqn: str, lun: int) -> int:
        """Make the LUN show its backing device's current size; returns it in bytes."""

    @abstractmethod
    def list_targets(self) -> list[dict[str, Any]]:
        """[{"target_iqn", "luns": {lun: path}, "initiators": [...], "chap_usernames": [...], "sizes": {lun: bytes}}]."""
