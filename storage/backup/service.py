"""BackupService (``st.backups``): create, list, restore, verify, delete, gc and import backups.

The repository is the truth and the catalog an index of it: a backup becomes ``available``
only after its manifest is stored and read back, and ``import_repository`` rebuilds the
catalog from the manifests alone.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from storage.backup import crypto, planner, records, sources
from storage.backup.cache import ChunkCache
from storage.backup.confirm import ensure_stored
from storage.backup.format import Manifest, iso_now
from storage.backup.listing import BackupListing
from storage.backup.locks import EXCLUSIVE, SHARED, RepositoryLock
from storage.backup.models import (
    STATUS_AVAILABLE,
    STATUS_ERROR,
    Backup,
    GcReport,
    ProgressCallback,
    RestoreResult,
    VerifyReport,
)
from storage.backup.pipeline import BackupCounters, run_backup
from storage.backup.repository import Repository
from storage.backup.source import data_extents, image_size, open_readonly
from storage.catalog.backups import BackupRow
from storage.errors import InvalidInput, NotFound, StorageError
from storage.names import is_uuid, validate_name
from storage.units import parse_size
from storage.logs.context import annotate
from storage.logs.ops import operation

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path as _Path

    from storage.backup.queued import BackupJobs

    from storage.catalog import Catalog
    from storage.config import BackupConfig
    from storage.host.api import HostApi
    from storage.objects.service import ObjectService
    from storage.volumes.service import VolumeService
    from storage.nbd.managed import ServeManager, ServedExport
    from storage.volumes.snapshots import SnapshotService


MAX_STREAM_PACK = 1024**3  # one Swift object (the default segment_size); restores read it in pack_size ranges


class BackupService:
    def __init__(
        self,
        catalog: "Catalog",
        settings: "BackupConfig",
        *,
        data_dir: "_Path",
        objects: "ObjectService",
        volumes: "VolumeService",
        snapshots: "SnapshotService",
        host: "HostApi",
        config_file: str | None = None,
        host_name: str | None = None,
        restore_jobs: "Callable[[], BackupJobs] | None" = None,
        backup_jobs: "Callable[[], BackupJobs] | None" = None,
    ) -> None:
        """restore_jobs: set when restores onto volumes go through a work queue (a cluster, outside the
        agent): the library and the CLI then submit the restore job and follow it, as the API does.
        backup_jobs: set with a work queue: a backup of a volume owned by another host than
        ``host_name`` runs as a job on that host (its reads happen there)."""
        # ops.py and sources.py (this package) use these collaborators through the service
        self.catalog = catalog
        self.settings = settings
        self._data_dir = data_dir
        self.objects = objects
        self.volumes = volumes
        self.snapshots = snapshots
        self.host = host
        self.config_file = config_file  # what an nbdkit plugin process loads (serve)
        self.host_name = host_name or socket.gethostname()
        self._restore_jobs = restore_jobs
        self._backup_jobs = backup_jobs

    # -- helpers -------------------------------------------------------------------------
    @property
    def cache_root(self) -> Path:
        return self._data_dir / "cache" / "backup"

    @property
    def lock_dir(self) -> Path:
        return self._data_dir / "locks"

    def _workers(self) -> int:
        return self.settings.workers or max(1, os.cpu_count() or 1)

    def open_repository(
        self, url: str | None = None, *, key_file: str | None = None, create: bool = False, need_keys: bool = True
    ) -> Repository:
        """Open the repository at url (default: settings.backup.repository).

        An explicit key_file must match an encrypted repository (and creates one); without
        one, settings.backup.key_file or the key file the catalog recorded for the repository
        is used when the repository is encrypted.
        """
        location = self.objects.open_url(url or self.settings.repository or "")
        explicit = key_file is not None
        if not explicit:
            key_file = self.settings.key_file or self._catalog_key_file(location.url)
        repo = Repository.open(
            location,
            key_file=key_file,
            create=create,
            chunk_size=parse_size(self.settings.chunk_size, field="backup.chunk_size"),
            compression=self.settings.compression,
            compression_level=self.settings.compression_level,
            require_encryption=explicit and create,
            need_keys=need_keys,
        )
        repo.pack_size = parse_size(getattr(self.settings, "pack_size", "32M"), field="backup.pack_size")
        if repo.pack_size < repo.config.chunk_size:
            raise InvalidInput(f"backup.pack_size {repo.pack_size} is not accepted; accepted: at least the chunk size ({repo.config.chunk_size})", field="backup.pack_size")
        repo.stream_pack_size = parse_size(getattr(self.settings, "stream_pack_size", "256M"), field="backup.stream_pack_size")
        if not repo.config.chunk_size <= repo.stream_pack_size <= MAX_STREAM_PACK:
            raise InvalidInput(f"backup.stream_pack_size {repo.stream_pack_size} is not accepted; accepted: from the chunk size ({repo.config.chunk_size}) to 1G", field="backup.stream_pack_size")
        repo.upload_md5 = bool(getattr(self.settings, "upload_md5", False))
        repo.index_cache_dir = self.cache_root / repo.id / "index"
        return repo

    def _catalog_key_file(self, url: str) -> str | None:
        """The key file path the catalog recorded for a repository (paths only; never a key)."""
        with self.catalog.session() as s:
            return s.scalars(
                select(BackupRow.key_file).where(BackupRow.repository == url, BackupRow.key_file.is_not(None))
            ).first()

    @operation("backup.key_create")
    def create_key(self, path: str | os.PathLike[str]) -> Path:
        """Write a new random key file (mode 0600) for encrypted repositories."""
        return crypto.create_key_file(path)

    # -- create --------------------------------------------------------------------------
    @operation("backup.create")
    def create(
        self,
        source: str,
        *,
        repository: str | None = None,
        name: str | None = None,
        labels: dict[str, str] | None = None,
        encryption_key_file: str | None = None,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        bandwidth_limit: int | str | None = None,
        backup_id: str | None = None,
        description: str | None = None,
    ) -> Backup:
        """Back up a volume (through a new snapshot), a snapshot or a path; return the available Backup.

        ``backup_id`` (a UUID) lets a caller that runs this in the background (the API's jobs)
        know the new backup's id before it finishes; by default one is generated.
        """
        from storage.volumes.edits import check_description
        from storage.volumes.service import validate_labels

        description = check_description(description)
        if name is not None:
            validate_name(name, kind="backup")
        labels = validate_labels(labels)
        limit = parse_size(bandwidth_limit, field="bandwidth_limit") if bandwidth_limit else None
        src = sources.resolve(self, source)
        if self._backup_jobs is not None and src.kind in ("volume", "snapshot") and src.volume_id:
            owner = self.volumes.get(src.volume_id).host
            if owner and owner != self.host_name:  # its reads happen on the owning host: a job there
                if backup_id is not None and not is_uuid(backup_id):
                    raise InvalidInput(f"backup id {backup_id!r} is not accepted; accepted: a UUID", field="backup_id")
                backup_id = backup_id or str(uuid.uuid4())
                self._backup_jobs().backup(f"{src.kind}:{src.ref}", backup_id=backup_id, name=name, labels=labels,
                                           description=description,
                                           repository=repository, encryption_key_file=encryption_key_file,
                                           bandwidth_limit=bandwidth_limit, progress=progress, cancel=cancel)  # fmt: skip
                return self.get(backup_id)
        repo = self.open_repository(repository, key_file=encryption_key_file, create=True)
        key_file = repo.key_file
        if backup_id is not None and not is_uuid(backup_id):
            raise InvalidInput(f"backup id {backup_id!r} is not accepted; accepted: a UUID", field="backup_id")
        backup_id = backup_id or str(uuid.uuid4())
        created = datetime.now(UTC)
        with self.catalog.session() as s:
            s.add(records.new_row(
                id=backup_id, name=name, description=description, repository=repo.url, repository_id=repo.id, volume_id=src.volume_id,
                volume_name=src.volume_name, source=src.description, encrypted=repo.keys is not None,
                key_file=str(key_file) if key_file else None, chunk_size=repo.config.chunk_size, labels=labels,
                created_at=created,
            ))
        try:
            with RepositoryLock(repo, self.lock_dir, SHARED, f"backup {backup_id}"):
                manifest, counters = self._run(repo, src, backup_id, name, labels, created, progress, cancel, limit)
        except BaseException as exc:
            message = exc.message if isinstance(exc, StorageError) else f"{type(exc).__name__}: {exc}"
            self._update(backup_id, status=STATUS_ERROR, error=message, owner=None)
            raise
        base_id = None
        if src.kind == "volume" and manifest.snapshot_id and src.volume_id:
            base_id = sources.keep_or_drop_base(self, src.volume_id, repo.id, manifest.snapshot_id)
        return self._update(
            backup_id, status=STATUS_AVAILABLE, owner=None, size_bytes=manifest.size, stored_bytes=counters.uploaded,
            read_bytes=counters.read, chunk_count=len(manifest.chunks),
            zero_chunk_count=sum(1 for c in manifest.chunks if c is None), new_chunk_count=counters.chunks_new,
            dedup_chunk_count=counters.chunks_dedup, reused_chunk_count=counters.chunks_reused,
            snapshot_id=base_id,
            completed_at=records.parse_iso(manifest.completed_at),
        )

    def _run(
        self, repo: Repository, src: sources.SourceRef, backup_id: str, name: str | None, labels: dict[str, str],
        created: datetime, progress: ProgressCallback | None, cancel: threading.Event | None, limit: int | None,
    ) -> tuple[Manifest, BackupCounters]:
        cache = ChunkCache(self.cache_root, repo)
        store = repo.clone_store()
        try:
            repo.ensure_current_format(store)
            known = cache.load(store)
            with sources.open_source(self, src, repo.id) as opened:
                fd = open_readonly(opened.path)
                try:
                    size = image_size(fd)
                    if size == 0:
                        raise InvalidInput(f"backup source {src.description!r} is empty (0 bytes)")
                    changed, previous, previous_size = self._base(repo, store, src, opened.snapshot_id)
                    plan = planner.plan_chunks(
                        size, repo.config.chunk_size, data_extents=data_extents(fd, size), changed=changed,
                        previous=previous, previous_size=previous_size, is_stored=known.__contains__,
                    )
                    counters = BackupCounters(total=size)
                    reused: set[int] = set()

                    def upload(chunk_plan: Any) -> list[Any]:
                        return run_backup(
                            fd, chunk_plan, repo, known, counters, workers=self._workers(),
                            uploaders=self.settings.uploaders, progress=progress, cancel=cancel, bandwidth_limit=limit,
                        )

                    def upload_again(chunk_plan: list[planner.PlannedChunk]) -> list[Any]:
                        # these were counted deduplicated (or reused) by the first pass; now they are uploaded
                        again = sum(1 for c in chunk_plan if c.index in reused)
                        counters.chunks_reused = max(0, counters.chunks_reused - again)
                        counters.chunks_dedup = max(0, counters.chunks_dedup - (len(chunk_plan) - again))
                        return upload(chunk_plan)

                    def note_reuse(chunks: Any) -> Any:
                        for chunk in chunks:
                            if chunk.action is planner.Action.REUSE:
                                reused.add(chunk.index)
                            yield chunk

                    chunks = upload(note_reuse(plan))
                    # every referenced chunk is in an intact pack before the manifest names it
                    chunks = ensure_stored(repo, store, chunks, size, known, upload_again, threads=self.settings.uploaders)
                finally:
                    os.close(fd)
                manifest = Manifest(
                    backup_id=backup_id, repository_id=repo.id, size=size, chunk_size=repo.config.chunk_size,
                    chunks=chunks, created_at=created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), completed_at=iso_now(),
                    volume_id=src.volume_id, volume_name=src.volume_name, source=src.description, name=name,
                    labels=labels, snapshot_id=opened.snapshot_id,
                )
                manifest = repo.write_manifest(store, manifest)
            cache.save(store, known, added=manifest.backup_id)  # under the shared lock: GC cannot have run
            return manifest, counters
        finally:
            store.close()

    def _base(
        self, repo: Repository, store: Any, src: sources.SourceRef, snapshot_id: str | None
    ) -> tuple[list[tuple[int, int]] | None, list[Any] | None, int | None]:
        """(changed ranges, previous chunk list, previous size) against the volume's last base snapshot."""
        if src.kind != "volume" or snapshot_id is None:
            return None, None, None
        with self.catalog.session() as s:
            row = s.scalars(
                select(BackupRow)
                .where(BackupRow.volume_id == src.volume_id, BackupRow.repository_id == repo.id,
                       BackupRow.status == STATUS_AVAILABLE, BackupRow.snapshot_id.is_not(None))
                .order_by(BackupRow.created_at.desc())
            ).first()
            prev_id, base_snap = (row.id, row.snapshot_id) if row else (None, None)
        if prev_id is None or base_snap is None:
            return None, None, None
        ranges = sources.changed_ranges(self, base_snap, snapshot_id)
        if ranges is None:
            return None, None, None
        try:
            previous = repo.read_manifest(store, prev_id)
        except StorageError:
            return None, None, None
        if previous.chunk_size != repo.config.chunk_size:
            return None, None, None
        return list(ranges.ranges), previous.chunks, previous.size

    # -- catalog -------------------------------------------------------------------------
    def _update(self, backup_id: str, **values: Any) -> Backup:
        with self.catalog.session() as s:
            row = s.get(BackupRow, backup_id)
            if row is None:
                raise NotFound(f"backup {backup_id!r} not found; see `storagectl backup list`")
            for key, value in values.items():
                setattr(row, key, value)
            return records.to_model(row)

    def get(self, backup_id: str) -> Backup:
        with self.catalog.session() as s:
            records.mark_interrupted(s)
            row = s.get(BackupRow, backup_id)
            if row is None:
                raise NotFound(f"backup {backup_id!r} not found; see `storagectl backup list` or import the repository", backup=backup_id)
            backup = records.to_model(row)
        annotate(backup_id=backup.id, volume_id=backup.volume_id)  # the operation's log lines name it
        return backup

    def list(
        self, *, volume: str | None = None, repository: str | None = None, labels: dict[str, str] | None = None,
        status: str | None = None,
    ) -> list[Backup]:
        """Backups, oldest first; volume is a volume name or id; labels must all match."""
        return BackupListing(self.catalog, lambda url: self.objects.open_url(url).url).list(
            volume=volume, repository=repository, labels=labels, status=status
        )

    # -- restore, verify, delete, gc, import live in ops.py to keep this module small ------
    @operation("backup.restore")
    def restore(
        self, backup_id: str, *, to_volume: str | None = None, new_volume_name: str | None = None,
        to_path: str | None = None, repository: str | None = None, key_file: str | None = None,
        pool: str | None = None, progress: ProgressCallback | None = None, cancel: threading.Event | None = None,
        lock: bool = True,
    ) -> RestoreResult:
        """Restore to exactly one of: an existing volume, a new volume, a file/device path.

        With repository given, the manifest is read straight from the repository and the
        catalog is not needed at all. The repository's shared lock is held throughout (GC
        waits); lock=False reads a repository this host cannot write.
        """
        from storage.backup import ops

        if self._restore_jobs is not None and repository is None and key_file is None and not to_path:
            # a cluster: the restore runs on the target volume's host (a new one: where the scheduler places it)
            return self._restore_jobs().run(self.get(backup_id), to_volume=to_volume, new_volume_name=new_volume_name,
                                            pool=pool, progress=progress, cancel=cancel)  # fmt: skip
        annotate(backup_id=backup_id)  # also when restored from the repository alone (no catalog row to get)
        return ops.restore(self, backup_id, to_volume=to_volume, new_volume_name=new_volume_name, to_path=to_path,
                           repository=repository, key_file=key_file, pool=pool, progress=progress, cancel=cancel,
                           lock=lock)

    @operation("backup.verify")
    def verify(
        self, target: str, *, deep: bool = False, sample_percent: float = 100, key_file: str | None = None,
        progress: ProgressCallback | None = None, lock: bool = True, cancel: threading.Event | None = None,
    ) -> VerifyReport:
        """Verify one backup (by id) or every backup of a repository (by URL), under the shared lock.

        A cancelled verify (cancel set) raises Cancelled and marks nothing."""
        from storage.backup import ops
        from storage.backup.verify import check_sample_percent

        check_sample_percent(sample_percent)

        return ops.verify(self, target, deep=deep, sample_percent=sample_percent, key_file=key_file, progress=progress,
                          lock=lock, cancel=cancel)

    @operation("backup.delete")
    def delete(self, backup_id: str, *, repository: str | None = None) -> None:
        """Delete a backup's manifest and catalog entry; its chunks go at the next gc."""
        from storage.backup import ops

        annotate(backup_id=backup_id)
        if repository is None:  # a serve or a live restore reading it: Conflict naming them
            self.serving.refuse_while_read(f"backup {backup_id} cannot be deleted", {backup_id})
        ops.delete(self, backup_id, repository=repository)

    @operation("backup.gc")
    def gc(self, repository: str | None = None, *, grace_seconds: int | None = None, dry_run: bool = False,
           key_file: str | None = None, repack_threshold: float | None = None) -> GcReport:
        """Delete packs without live chunks and repack packs whose dead fraction exceeds repack_threshold
        (default backup.repack_threshold), all past the grace period, under the exclusive lock."""
        from storage.backup import ops
        from storage.bounds import DURATION_SECONDS_MAX, check_float, check_int

        if grace_seconds is not None:
            check_int(grace_seconds, field="grace_seconds", lo=0, hi=DURATION_SECONDS_MAX, what="a number of seconds")
        if repack_threshold is not None:
            check_float(repack_threshold, field="repack_threshold", lo=0, hi=1)

        return ops.gc(self, repository, grace_seconds=grace_seconds, dry_run=dry_run, key_file=key_file,
                      repack_threshold=repack_threshold)

    def repository_urls(self) -> set[str]:
        """Every repository this host knows: the configured one, those of catalogued backups, those of policies."""
        from storage.catalog.policies import PolicyRow

        urls = {self.settings.repository or ""}
        with self.catalog.session() as s:
            urls.update(s.scalars(select(BackupRow.repository).distinct()))
            for options in s.scalars(select(PolicyRow.backup).where(PolicyRow.backup.is_not(None))):
                if isinstance(options, dict) and isinstance(options.get("repository"), str):
                    urls.add(options["repository"])
        return {u for u in urls if u}

    @operation("backup.import")
    def import_repository(self, url: str | None = None, *, key_file: str | None = None) -> list[Backup]:
        """Rebuild the catalog entries of every manifest in the repository."""
        from storage.backup import ops

        return ops.import_repository(self, url, key_file=key_file)

    # -- NBD exports kept by this process (the API host): storage/nbd/managed.py ------------
    @cached_property
    def serving(self) -> "ServeManager":
        from storage.nbd.managed import ServeManager

        return ServeManager(self, data_dir=self._data_dir, host_name=self.host_name, config_file=self.config_file)

    def serve(self, backup_id: str, **options: Any) -> "ServedExport":
        """Serve a backup read-only over NBD in the background until stop_serve() or its TTL
        (``ttl_seconds``, default 1 h); returns the record (uri, pid, expires_at) once nbdkit serves."""
        return self.serving.start(backup_id, **options)

    def serves(self, backup_id: str | None = None) -> "list[ServedExport]":
        """The live served exports (gone ones reaped, expired ones stopped)."""
        return self.serving.list(backup_id)

    def stop_serve(self, served_id: str) -> None:
        self.serving.stop(served_id)

    def repository_lock(self, repo: Repository, kind: str = EXCLUSIVE, purpose: str = "") -> RepositoryLock:
        return RepositoryLock(repo, self.lock_dir, kind, purpose)
