"""``LocalHost``: ``HostApi`` in process, calling this host's drivers directly.

It owns the driver instances: one volume backend per configured pool (made on first use through
``storage.registry``) and the export backend. ``volume_backend(pool)`` and ``export_backend``
give the drivers themselves to what runs on this host only (``storagectl check``, tests,
benchmarks); the control plane uses the ``HostApi`` calls.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from storage import registry
from storage.errors import NotFound
from storage.host.api import HostApi, ProgressCallback

if TYPE_CHECKING:
    from backends.export.base import ExportBackend, ExportedTarget
    from backends.volume.base import VolumeBackend
    from storage.config import PoolConfig


def target_dict(target: "ExportedTarget") -> dict[str, Any]:
    """An ExportedTarget as plain data (pure)."""
    return {
        "target_iqn": target.target_iqn, "luns": dict(target.luns), "initiators": list(target.initiators),
        "chap_usernames": list(target.chap_usernames), "sizes": dict(target.sizes), "extra": dict(target.extra),
    }  # fmt: skip


class LocalHost(HostApi):
    def __init__(self, pools: Mapping[str, "PoolConfig"], export_driver: Callable[[], tuple[str, dict[str, Any]]],
                 advertise_portal: Callable[[], str] | None = None) -> None:
        """pools: the configured pools; export_driver: () -> (driver name, options), read on first export use;
        advertise_portal: () -> the HOST:PORT this host's targets are reached at (``[export]``)."""
        self._advertise_portal = advertise_portal
        self._pools = pools
        self._export_driver = export_driver
        self._backends: dict[str, "VolumeBackend"] = {}
        self._export: "ExportBackend | None" = None
        self._lock = threading.Lock()

    # -- the drivers (this host only) ----------------------------------------------------------
    def volume_backend(self, pool: str) -> "VolumeBackend":
        with self._lock:
            if pool not in self._backends:
                if pool not in self._pools:
                    raise NotFound(f"pool {pool!r} is not configured; configured pools: {', '.join(sorted(self._pools))}")
                cfg = self._pools[pool]
                cls = registry.load(registry.VOLUME_BACKENDS, cfg.driver)
                self._backends[pool] = cls(pool, cfg.options())
            return self._backends[pool]

    @property
    def export_backend(self) -> "ExportBackend":
        with self._lock:
            if self._export is None:
                driver, options = self._export_driver()
                self._export = registry.load(registry.EXPORT_BACKENDS, driver)(options)
            return self._export

    # -- pools -----------------------------------------------------------------------------
    def check_pool(self, pool: str) -> None:
        self.volume_backend(pool)

    def pool_capabilities(self, pool: str) -> dict[str, Any]:
        return self.volume_backend(pool).capabilities().to_dict()

    def pool_usage(self, pool: str) -> dict[str, Any]:
        usage = self.volume_backend(pool).usage()
        return {**asdict(usage), "extra": dict(usage.extra), "provisionable_bytes": usage.provisionable_bytes}

    # -- volume lifecycle ------------------------------------------------------------------
    def create_volume(self, pool: str, volume_id: str, size_bytes: int) -> None:
        self.volume_backend(pool).create_volume(volume_id, size_bytes)

    def clone_volume(self, pool: str, source_volume_id: str, new_volume_id: str, size_bytes: int) -> None:
        self.volume_backend(pool).clone_volume(source_volume_id, new_volume_id, size_bytes)

    def clone_snapshot(self, pool: str, volume_id: str, snapshot_id: str, new_volume_id: str, size_bytes: int) -> None:
        self.volume_backend(pool).clone_snapshot(volume_id, snapshot_id, new_volume_id, size_bytes)

    def extend_volume(self, pool: str, volume_id: str, size_bytes: int) -> None:
        self.volume_backend(pool).extend_volume(volume_id, size_bytes)

    def revert_to_snapshot(self, pool: str, volume_id: str, snapshot_id: str) -> None:
        self.volume_backend(pool).revert_to_snapshot(volume_id, snapshot_id)

    def delete_volume(self, pool: str, volume_id: str, wipe: str = "none", progress: ProgressCallback | None = None) -> None:
        from backends.volume.base import WipeMode

        self.volume_backend(pool).delete_volume(volume_id, WipeMode(wipe), progress)

    def create_snapshot(self, pool: str, volume_id: str, snapshot_id: str) -> None:
        self.volume_backend(pool).create_snapshot(volume_id, snapshot_id)

    def delete_snapshot(self, pool: str, volume_id: str, snapshot_id: str) -> None:
        self.volume_backend(pool).delete_snapshot(volume_id, snapshot_id)

    # -- attach on this host ---------------------------------------------------------------
    def attach(self, pool: str, volume_id: str) -> str:
        return self.volume_backend(pool).attach(volume_id)

    def detach(self, pool: str, volume_id: str) -> None:
        self.volume_backend(pool).detach(volume_id)

    def attached_device(self, pool: str, volume_id: str) -> str | None:
        return self.volume_backend(pool).attached_device(volume_id)

    # -- local data access -----------------------------------------------------------------
    def open_volume(self, pool: str, volume_id: str) -> AbstractContextManager[str]:
        return self.volume_backend(pool).open_volume(volume_id)

    def open_snapshot(self, pool: str, volume_id: str, snapshot_id: str) -> AbstractContextManager[str]:
        return self.volume_backend(pool).open_snapshot(volume_id, snapshot_id)

    def changed_ranges(self, pool: str, volume_id: str, base_snapshot_id: str, snapshot_id: str) -> Any:
        return self.volume_backend(pool).changed_ranges(volume_id, base_snapshot_id, snapshot_id)

    def volume_is_all_holes(self, pool: str, volume_id: str) -> bool:
        return bool(self.volume_backend(pool).is_all_holes(volume_id))

    # -- iSCSI export target ---------------------------------------------------------------

    def export_driver(self) -> dict[str, Any]:
        backend = self.export_backend
        out: dict[str, Any] = {"driver": backend.driver_name, "default_lun": backend.default_lun}
        if self._advertise_portal is not None:  # the control plane of another host hands this portal out
            out["portal"] = self._advertise_portal()
        return out

    def ensure_export_service(self) -> None:
        self.export_backend.ensure_running()

    def stop_export_service(self) -> None:
        self.export_backend.stop()

    def export_target(self, spec: dict[str, Any]) -> dict[str, Any]:
        from backends.export.base import ChapCredentials, ExportSpec

        chap = spec.get("chap")
        return target_dict(self.export_backend.export(ExportSpec(
            key=spec["key"], device_path=spec["device_path"], target_iqn=spec["target_iqn"], lun=spec["lun"],
            chap=ChapCredentials(chap["username"], chap["password"]) if chap else None,
            initiators=tuple(spec.get("initiators") or ()), serial=spec.get("serial"),
        )))  # fmt: skip

    def unexport_target(self, target_iqn: str) -> None:
        self.export_backend.unexport(target_iqn)

    def resize_target(self, target_iqn: str, lun: int) -> int:
        return self.export_backend.resize(target_iqn, lun)

    def list_targets(self) -> list[dict[str, Any]]:
        return [target_dict(t) for t in self.export_backend.list_exports()]
