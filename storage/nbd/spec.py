"""The file an nbdkit plugin process is configured by (mode 0600), and opening its reader.

It names the repository URL, the backup id, the key *file* (never the key), the config file
(never a store password: the plugin loads the config itself, environment overrides included,
since nbdkit inherits the environment), the Python path of this installation and the cache and
read-ahead sizes. Nothing here is on nbdkit's command line but the file's path.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from storage.errors import InvalidInput

if TYPE_CHECKING:
    from storage.nbd.reader import BackupReader

SPEC_MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class ServeSpec:
    repository: str
    backup_id: str
    export_name: str
    key_file: str | None = None
    config_file: str | None = None
    cache_bytes: int = 64 * 1024 * 1024
    readahead_chunks: int = 16
    fetchers: int = 2
    sys_path: list[str] = field(default_factory=list)
    # a live restore (storage.nbd.live_service): the volume written through, its bitmap, the copy's rate
    volume_path: str | None = None
    bitmap_path: str | None = None
    copy_rate: int = 0

    def write(self, path: Path) -> Path:
        """Write the spec to a new file of mode 0600 (O_EXCL: never through someone else's file)."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(self), f)
        return path

    @classmethod
    def read(cls, path: str | Path) -> "ServeSpec":
        with open(path, "rb") as f:
            raw = f.read(SPEC_MAX_BYTES + 1)
        if len(raw) > SPEC_MAX_BYTES:
            raise InvalidInput(f"serve spec {str(path)!r} is larger than {SPEC_MAX_BYTES} bytes")
        try:
            doc = json.loads(raw)
            return cls(**doc)
        except (ValueError, TypeError) as exc:
            raise InvalidInput(f"serve spec {str(path)!r} is not valid: {exc}") from None


def open_reader(spec: ServeSpec) -> "BackupReader":
    """Open the repository and the manifest the spec names, without the catalog."""
    from storage.backup.repository import Repository
    from storage.config import load_settings
    from storage.nbd.reader import BackupReader
    from storage.objects.service import ObjectService

    settings = load_settings(spec.config_file)
    objects = ObjectService(settings.object_stores, data_dir=settings.data_dir)
    repo = Repository.open(objects.open_url(spec.repository), key_file=spec.key_file)
    repo.index_cache_dir = Path(settings.data_dir) / "cache" / "backup" / repo.id / "index"
    store = repo.clone_store()
    try:
        manifest = repo.read_manifest(store, spec.backup_id)
    finally:
        store.close()
    return BackupReader(repo, manifest, cache_bytes=spec.cache_bytes, fetchers=spec.fetchers)
