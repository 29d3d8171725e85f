"""The public entry point: ``storage.open(config) -> Storage``.

``Storage`` owns the settings, the catalog and the drivers, and exposes one service per
area. The CLI and the API call only these services.
"""

from __future__ import annotations

import os
import threading
from functools import cached_property
from typing import TYPE_CHECKING, Any

from storage.catalog import Catalog
from storage.config import Settings, load_settings

if TYPE_CHECKING:
    from storage.auth.service import TokenService
    from storage.backup.service import BackupService
    from storage.exports.service import ExportService
    from storage.jobs.service import JobService
    from storage.objects.service import ObjectService
    from storage.policy.service import PolicyService
    from storage.volumes.pools import PoolService
    from storage.volumes.snapshots import SnapshotService
    from storage.volumes.service import VolumeService


class Storage:
    """One host's storage: volumes, snapshots, pools, objects, backups, policies, exports."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.catalog = Catalog(settings.catalog_url)
        self._lock = threading.RLock()

    # Each property imports its service lazily so importing storage stays cheap.
    @cached_property
    def pools(self) -> "PoolService":
        from storage.volumes.pools import PoolService

        return PoolService(self)

    @cached_property
    def volumes(self) -> "VolumeService":
        from storage.volumes.service import VolumeService

        return VolumeService(self)

    @cached_property
    def snapshots(self) -> "SnapshotService":
        from storage.volumes.snapshots import SnapshotService

        return SnapshotService(self)

    @cached_property
    def objects(self) -> "ObjectService":
        from storage.objects.service import ObjectService

        return ObjectService(self)

    @cached_property
    def backups(self) -> "BackupService":
        from storage.backup.service import BackupService

        return BackupService(self)

    @cached_property
    def policies(self) -> "PolicyService":
        from storage.policy.service import PolicyService

        return PolicyService(self)

    @cached_property
    def exports(self) -> "ExportService":
        from storage.exports.service import ExportService

        return ExportService(self)

    @cached_property
    def tokens(self) -> "TokenService":
        from storage.auth.service import TokenService

        return TokenService(self)

    @cached_property
    def jobs(self) -> "JobService":
        from storage.jobs.service import JobService

        return JobService(self)

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> "Storage":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open(config: str | os.PathLike[str] | Settings | None = None, **overrides: Any) -> Storage:  # noqa: A001
    """Open the storage described by a config file path, a Settings object, or the defaults."""
    settings = config if isinstance(config, Settings) else load_settings(config, **overrides)
    return Storage(settings)
