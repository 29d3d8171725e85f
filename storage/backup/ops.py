"""Restore, verify, delete, gc and import: the BackupService operations past create/list."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select, true

from storage.backup import records, verify as vf
from storage.backup.gc import collect
from storage.backup.locks import EXCLUSIVE, SHARED
from storage.backup.manifests import each_manifest, load_manifests
from storage.backup.models import (
    STATUS_AVAILABLE,
    STATUS_DAMAGED,
    STATUS_LOST,
    Backup,
    GcReport,
    ProgressCallback,
    RestoreResult,
    VerifyReport,
)
from storage.backup.cache import ChunkCache
from storage.backup.format import Manifest
from storage.backup.repository import Repository
from storage.backup.restore import PathTarget, check_target_size, open_target, restore_to_fd, write_failure
from storage.catalog.backups import BackupRow
from storage.domain import VolumeStatus
from storage.errors import (
    BackendError,
    Conflict,
    DataCorruption,
    InsufficientCapacity,
    InvalidInput,
    NotFound,
    StorageError,
)

if TYPE_CHECKING:
    from storage.backup.service import BackupService

log = logging.getLogger(__name__)
RESTORABLE = (STATUS_AVAILABLE, STATUS_DAMAGED)


def _row_source(svc: "BackupService", backup_id: str, allowed: tuple[str, ...] = RESTORABLE) -> tuple[str, str | None, str]:
    b = svc.get(backup_id)
    if b.status not in allowed:
        raise Conflict(f"backup {backup_id} is {b.status}; only available (or damaged) backups can be read", backup=backup_id)
    with svc.catalog.session() as s:
        row = s.get(BackupRow, backup_id)
        key_file = row.key_file if row else None
    return b.repository, key_file, b.status


def _open_by_url(svc: "BackupService", url: str | None, key_file: str | None) -> Repository:
    return svc.open_repository(url, key_file=key_file)


def _reading(svc: "BackupService", repo: Repository, purpose: str, lock: bool) -> contextlib.AbstractContextManager[object]:
    """The shared lock readers hold so garbage collection cannot delete or repack packs under them.

    Without it a GC running meanwhile makes chunks vanish mid-read and a sound backup looks
    damaged. ``lock=False`` is for repositories this host may not write (a read-only copy).
    """
    return svc.repository_lock(repo, SHARED, purpose) if lock else contextlib.nullcontext()


# -- restore ------------------------------------------------------------------------------


def restore(
    svc: "BackupService", backup_id: str, *, to_volume: str | None, new_volume_name: str | None, to_path: str | None,
    repository: str | None, key_file: str | None, pool: str | None, progress: ProgressCallback | None,
    cancel: threading.Event | None, lock: bool = True,
) -> RestoreResult:
    chosen = [t for t in (to_volume, new_volume_name, to_path) if t]
    if len(chosen) != 1:
        raise InvalidInput("give exactly one restore target: to_volume, new_volume_name or to_path")
    from_catalog = repository is None
    if repository is None:
        repository, row_key, _status = _row_source(svc, backup_id)
        key_file = key_file or row_key
    repo = svc.open_repository(repository, key_file=key_file)
    store = repo.clone_store()
    try:
        manifest = repo.read_manifest(store, backup_id)
    except NotFound:
        if from_catalog:
            _mark(svc, repo.url, [], [], [backup_id])
        raise
    finally:
        store.close()
    try:
        with _reading(svc, repo, f"restore of {backup_id}", lock):
            return _restore_to(svc, repo, manifest, to_volume=to_volume, new_volume_name=new_volume_name, to_path=to_path,
                               pool=pool, progress=progress, cancel=cancel)
    except DataCorruption as exc:
        _mark(svc, repo.url, [backup_id], [])
        pack, chunk = exc.details.get("pack"), exc.details.get("chunk")
        if lock and pack and chunk:  # a corrupt copy read back: no backup may deduplicate against it
            _quarantine(repo, {pack: {chunk}})
            ChunkCache(svc.cache_root, repo).invalidate()
        raise DataCorruption(
            f"backup {backup_id} is damaged: {exc.message}; the target is incomplete. "
            "Run `storagectl backup verify` to list every damaged backup",
            backup=backup_id, **exc.details,
        ) from None


def _restore_to(
    svc: "BackupService", repo: Repository, manifest: Manifest, *, to_volume: str | None, new_volume_name: str | None,
    to_path: str | None, pool: str | None, progress: ProgressCallback | None, cancel: threading.Event | None,
) -> RestoreResult:
    backup_id = manifest.backup_id
    kwargs = dict(downloaders=svc.settings.uploaders, progress=progress, cancel=cancel)
    if to_path:
        before = PathTarget.probe(to_path)
        try:
            fd, fresh = open_target(to_path, manifest.size, create=True)
        except OSError as exc:
            raise write_failure(exc, to_path, 0, manifest.size) from None
        try:
            return restore_to_fd(repo, manifest, fd, to_path, fresh=fresh, **kwargs)
        except (InsufficientCapacity, BackendError):
            before.undo()  # a full filesystem keeps no partial restore (nor the space it took)
            raise
        finally:
            os.close(fd)
    if to_volume:
        vol = svc.volumes.get(to_volume)
        check_target_size(vol.size_bytes, manifest.size, f"volume {vol.name!r}")
        if vol.status is VolumeStatus.RESTORING_BACKUP and svc.volumes.held_here(vol.id):
            # born restoring-backup by this process for this restore (the Cinder API creates the
            # volume before its job runs): filled like a new volume, kept in `error` if it fails
            return _fill_new_volume(svc, repo, manifest, vol.id, delete_on_failure=False, **kwargs)
        return _restore_into_volume(svc, repo, manifest, vol.id, fresh=False, **kwargs)
    assert new_volume_name is not None
    # the new volume is born 'restoring-backup' (never an empty 'available' one that a killed restore
    # would leave looking restored) and becomes available only once every byte is written
    vol, decision = svc.volumes.create_explained(
        new_volume_name, manifest.size, pool=pool, labels={"storage.backup/restored-from": backup_id}, restoring=True
    )
    result = _fill_new_volume(svc, repo, manifest, vol.id, delete_on_failure=True, **kwargs)
    # the job record keeps where the scheduler put the new volume, and why
    return result.model_copy(update={"placement": decision.to_dict() if decision else None})


def _fill_new_volume(svc: "BackupService", repo: Repository, manifest: Manifest, volume_id: str, *,
                     delete_on_failure: bool, **kwargs: object) -> RestoreResult:
    """Write a volume that is restoring-backup since its birth; available only once every byte is
    written, else error (and deleted when asked)."""
    try:
        result = _write_volume(svc, repo, manifest, volume_id, fresh=True, **kwargs)
    except BaseException as exc:
        try:
            from storage.catalog.volumes import failure_reason

            # out of restoring-backup: the ordinary delete takes it
            why = failure_reason(f"restore of backup {manifest.backup_id}", exc)
            svc.volumes.reset_status(volume_id, VolumeStatus.ERROR, reason=why)
            if delete_on_failure:
                svc.volumes.delete(volume_id)
        except StorageError:
            pass
        raise
    svc.volumes.reset_status(volume_id, VolumeStatus.AVAILABLE)
    return result


def _restore_into_volume(svc: "BackupService", repo: Repository, manifest: Manifest, volume_id: str, *, fresh: bool, **kwargs: object) -> RestoreResult:
    """Overwrite an available volume. A failure before its data is touched puts it back to
    available; from the first write on, it ends in error with the reason (its data is part old,
    part restored: never ``available`` as if intact), as Cinder's ``error_restoring``."""
    hold = svc.volumes.hold(volume_id, VolumeStatus.RESTORING_BACKUP, allowed_from=frozenset({VolumeStatus.AVAILABLE}))
    with hold:
        return _write_volume(svc, repo, manifest, volume_id, fresh=fresh, hold=hold, **kwargs)


def _write_volume(svc: "BackupService", repo: Repository, manifest: Manifest, volume_id: str, *, fresh: bool,
                  hold: Any = None, **kwargs: object) -> RestoreResult:
    vol = svc.volumes.get(volume_id)
    with svc.host.open_volume(vol.pool, vol.id) as path:  # a restore writes on the volume's host
        fd, _ = open_target(path, manifest.size, create=False)

        def changing() -> None:  # from the first write on, a failure leaves the volume in error
            if hold is not None:
                hold.fails_as = f"restore of backup {manifest.backup_id} over the volume's data"

        try:
            return restore_to_fd(repo, manifest, fd, f"volume {vol.name}", fresh=fresh, on_first_write=changing,
                                 **kwargs)  # type: ignore[arg-type]
        finally:
            os.close(fd)


# -- verify -------------------------------------------------------------------------------


def _load_manifests(svc: "BackupService", repo: Repository, store: object) -> tuple[dict[str, Manifest], list[str]]:
    return load_manifests(repo, store, threads=svc.settings.uploaders)


def verify(
    svc: "BackupService", target: str, *, deep: bool, sample_percent: float, key_file: str | None,
    progress: ProgressCallback | None, lock: bool = True, cancel: threading.Event | None = None,
) -> VerifyReport:
    started = time.monotonic()
    if "://" in target:
        repo = _open_by_url(svc, target, key_file)
        only: str | None = None
    else:
        url, row_key, _ = _row_source(svc, target, RESTORABLE + (STATUS_LOST,))
        repo = svc.open_repository(url, key_file=key_file or row_key)
        only = target
    with _reading(svc, repo, f"verify of {target}", lock):
        return _verify_locked(svc, repo, only, deep=deep, sample_percent=sample_percent, progress=progress,
                              started=started, cancel=cancel, writable=lock)


def _catalog_ids(svc: "BackupService", url: str) -> list[str]:
    """Ids of the catalog's finished backups (available, damaged or lost) of one repository."""
    with svc.catalog.session() as s:
        return list(s.scalars(select(BackupRow.id).where(
            BackupRow.repository == url, BackupRow.status.in_((STATUS_AVAILABLE, STATUS_DAMAGED, STATUS_LOST)))).all())


def _verify_locked(
    svc: "BackupService", repo: Repository, only: str | None, *, deep: bool, sample_percent: float,
    progress: ProgressCallback | None, started: float, cancel: threading.Event | None, writable: bool = True,
) -> VerifyReport:
    # the catalog first: a backup is 'available' only after its manifest is stored, so one the catalog
    # lists now is in the listing below unless the manifest is really gone
    expected = [only] if only is not None else _catalog_ids(svc, repo.url)
    store = repo.clone_store()
    try:
        manifests, unreadable = _load_manifests(svc, repo, store)
        lost = sorted(b for b in expected if b not in manifests and b not in unreadable)
        checked = [m for m in manifests.values() if only is None or m.backup_id == only]
        wanted = vf.referenced_chunks(checked)
        repo_index = repo.load_index(store, threads=svc.settings.uploaders)
        stored = {c.id: c for c in repo.list_chunks(index=repo_index)}
    finally:
        store.close()
    findings = vf.quick_check(wanted, stored)
    if deep:
        ids = vf.sample_ids(sorted(wanted), sample_percent)
        findings.checked = len(ids) + len(findings.bad)
        findings.bytes_checked = 0
        vf.deep_check(repo, wanted, findings, ids, threads=svc.settings.uploaders, progress=progress, index=repo_index,
                      cancel=cancel)
        findings.bytes_checked = sum(wanted[c][0].stored_size for c in ids if c not in findings.bad)
    damaged = sorted(set(vf.damaged_backups(manifests.values(), findings.bad)) | set(unreadable))
    if findings.bad:
        ChunkCache(svc.cache_root, repo).invalidate()
    if findings.corrupt_in and writable:
        _quarantine(repo, findings.corrupt_in)
    _mark(svc, repo.url, damaged, [m.backup_id for m in checked], lost)
    return VerifyReport(
        repository=repo.url, deep=deep, sample_percent=sample_percent if deep else 100,
        backups_checked=sorted(m.backup_id for m in checked) + ([only] if only in unreadable or only in lost else []),
        chunks_checked=findings.checked, bytes_checked=findings.bytes_checked,
        missing_chunks=sorted(findings.missing), corrupt_chunks=sorted(findings.corrupt), damaged_backups=damaged,
        lost_backups=lost, ok=not damaged and not findings.bad and not lost, seconds=round(time.monotonic() - started, 3),
    )


def _quarantine(repo: Repository, corrupt_in: dict[str, set[str]]) -> None:
    """Record where verify read corrupt chunks so no backup deduplicates against those copies again."""
    store = repo.clone_store()
    try:
        for pack_id, ids in sorted(corrupt_in.items()):
            repo.quarantine(store, pack_id, ids)
    except StorageError as exc:  # the finding stands (and is reported); the record is retried by the next verify
        log.warning("recording corrupt chunks of repository %s failed: %s", repo.url, exc.message)
    finally:
        store.close()


MARK_BY_ID_MAX = 500  # more ids to mark than this: read every row of the repository instead of an IN list


def _may_change(ids: set[str]) -> Any:
    """The rows _mark may change: damaged or lost ones (they may pass now) and the given ids (not
    every backup of the repository: a verify of 1,000 healthy backups loads none of them)."""
    if len(ids) > MARK_BY_ID_MAX:
        return true()
    cond = BackupRow.status.in_((STATUS_DAMAGED, STATUS_LOST))
    return or_(cond, BackupRow.id.in_(sorted(ids))) if ids else cond


def _mark(svc: "BackupService", url: str, damaged: list[str], checked: list[str], lost: Sequence[str] = ()) -> None:
    """Damaged backups become 'damaged', those without a manifest 'lost'; checked damaged or lost ones
    that now pass become 'available' again."""
    damaged_set, checked_set, lost_set = set(damaged), set(checked), set(lost)  # one lookup per row, not a scan of each list
    with svc.catalog.session() as s:
        for row in s.scalars(select(BackupRow).where(BackupRow.repository == url, _may_change(damaged_set | lost_set))).all():
            if row.id in lost_set and row.status in (STATUS_AVAILABLE, STATUS_DAMAGED):
                row.status = STATUS_LOST
                row.error = f"its manifest is missing from repository {url}; it cannot be restored (delete it)"
            elif row.id in damaged_set and row.status == STATUS_AVAILABLE:
                row.status = STATUS_DAMAGED
                row.error = "verify found missing or corrupt chunks"
            elif row.id in checked_set and row.id not in damaged_set and row.status in (STATUS_DAMAGED, STATUS_LOST):
                row.status = STATUS_AVAILABLE
                row.error = None


# -- delete, gc, import ---------------------------------------------------------------------


def delete(svc: "BackupService", backup_id: str, *, repository: str | None) -> None:
    with svc.catalog.session() as s:
        row = s.get(BackupRow, backup_id)
        url = row.repository if row else repository
        status = row.status if row else None
        snapshot_id = row.snapshot_id if row else None
    if url is None:
        raise NotFound(f"backup {backup_id!r} not found in the catalog; pass its repository to delete it there", backup=backup_id)
    if status == "creating":
        raise Conflict(f"backup {backup_id} is still being created; cancel it or wait", backup=backup_id)
    repo = svc.open_repository(url, need_keys=False)
    store = repo.clone_store()
    try:
        found = repo.delete_manifest(store, backup_id)
    finally:
        store.close()
    if row is None and not found:
        raise NotFound(f"backup {backup_id} has no manifest in repository {url}", backup=backup_id)
    if snapshot_id:
        try:
            svc.snapshots.delete(snapshot_id)
        except StorageError:
            pass
    with svc.catalog.session() as s:
        row = s.get(BackupRow, backup_id)
        if row is not None:
            s.delete(row)


def gc(svc: "BackupService", repository: str | None, *, grace_seconds: int | None, dry_run: bool, key_file: str | None,
       repack_threshold: float | None = None) -> GcReport:
    grace = svc.settings.gc_grace_seconds if grace_seconds is None else grace_seconds
    if grace < 0:
        raise InvalidInput(f"grace period {grace} is not accepted; accepted: 0 or more seconds")
    threshold = getattr(svc.settings, "repack_threshold", 0.25) if repack_threshold is None else repack_threshold
    if not 0 <= threshold <= 1:
        raise InvalidInput(f"repack threshold {threshold} is not accepted; accepted: a fraction from 0 to 1", field="repack_threshold")
    repo = _open_by_url(svc, repository, key_file)
    if not dry_run:  # a repack moves chunks a serve or a live restore of this repository is reading
        svc.serving.refuse_while_read(f"repository {repo.url} cannot be garbage-collected", repository=repo.url)
    with svc.repository_lock(repo, EXCLUSIVE, "gc") as lock:
        stale = 0 if dry_run else lock.remove_stale()  # a dry run changes nothing, stale locks included
        store = repo.clone_store()
        try:
            referenced: set[str] = set()  # folded as the manifests arrive: none is kept
            unreadable, readable = [], 0
            for mid, m in each_manifest(repo, store, threads=svc.settings.uploaders):
                if m is None:
                    unreadable.append(mid)
                else:
                    referenced |= m.referenced()
                    readable += 1
            if unreadable:
                raise DataCorruption(
                    f"refusing to collect garbage: manifests {', '.join(unreadable)} cannot be read, so their chunks "
                    "are unknown; delete those backups or fix the repository first"
                )
            report = collect(repo, store, referenced, readable, grace_seconds=grace, dry_run=dry_run,
                             repack_threshold=threshold)
        finally:
            store.close()
    return report.model_copy(update={"stale_locks_removed": stale})


def import_repository(svc: "BackupService", url: str | None, *, key_file: str | None) -> list[Backup]:
    repo = svc.open_repository(url, key_file=key_file)
    kf = repo.key_file
    store = repo.clone_store()
    try:
        manifests, _unreadable = _load_manifests(svc, repo, store)
    finally:
        store.close()
    imported: list[Backup] = []
    with svc.catalog.session() as s:
        for manifest in sorted(manifests.values(), key=lambda m: m.created_at):
            row = s.get(BackupRow, manifest.backup_id)
            if row is None:
                row = records.row_from_manifest(manifest, repo.url, repo.keys is not None, str(kf) if kf else None)
                s.add(row)
            elif row.status not in (STATUS_AVAILABLE, STATUS_DAMAGED):
                row.status = STATUS_AVAILABLE
                row.error = None
                row.owner = None
            s.flush()
            imported.append(records.to_model(row))
    return imported
