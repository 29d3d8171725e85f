"""Cinder backups: create, list, detail, show, delete, restore.

A backup runs as a job; its id is chosen before the job starts, so ``GET /backups/{id}`` shows it
(``creating``, from the job) even before the backup engine has written its catalog row.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, FastAPI, Query, Request, Response

from api.cinder import listing, views
from api.cinder.common import BACKUP_CREATE_KEYS, RESTORE_KEYS, base_url, body_of, cinder_router, include_both, metadata_labels
from api.deps import StorageDep
from api.fields import IdPath
from api.routes.backups import start_backup
from api.routes.common import submit_job
from storage.errors import InvalidInput, NotFound
from storage.jobs.service import JobInfo
from storage.service import Storage

router = cinder_router()


class _PendingBackup:
    """A backup whose job has not written its catalog row yet, shaped like backup.models.Backup."""

    def __init__(self, job: JobInfo) -> None:
        self.id = job.params["backup_id"]
        self.name = job.params.get("name")
        self.description = job.params.get("description")
        self.volume_id = job.params.get("volume_id")
        self.status = "creating" if job.state.value in ("queued", "running") else "error"
        self.size_bytes = job.bytes_total or 0
        self.chunk_count = 0
        self.repository = job.params.get("repository") or ""
        self.created_at = job.created_at
        self.completed_at = job.finished_at
        self.error = (job.error or {}).get("message")
        self.labels: dict[str, str] = {}


def _find(st: Storage, backup_id: str) -> Any:
    try:
        return st.backups.get(backup_id)
    except NotFound:
        for job in st.jobs.list(kind="backup", limit=1000):
            if job.params.get("backup_id") == backup_id and job.state.value != "succeeded":
                return _PendingBackup(job)  # still running, or failed before its row was written
        raise


def _listing(request: Request, st: StorageDep, detail: bool, volume_id: str | None, status: str | None,
             marker: str | None, limit: int | None, name: str | None = None) -> dict:
    rows = [views.backup_detail(b, base_url(request)) for b in st.backups.list(volume=volume_id)]
    rows = [r for r in rows if listing.matches(r, status=status or None, name=name or None)]
    return listing.listing("backups", rows, url=str(request.url), marker=marker, limit=limit, what="backup",
                           summary=None if detail else ("id", "name", "links"))


Name = Annotated[str | None, Query(max_length=256)]
Limit = Annotated[int | None, Query(ge=0, le=listing.LIMIT_MAX)]


@router.get("/backups")
def list_backups(request: Request, st: StorageDep, volume_id: Annotated[str | None, Query(max_length=256)] = None, status: Annotated[str | None, Query(max_length=256)] = None,
                 marker: Annotated[str | None, Query(max_length=256)] = None, limit: Limit = None, name: Name = None) -> dict:
    return _listing(request, st, False, volume_id, status, marker, limit, name)


@router.get("/backups/detail")
def list_backups_detail(request: Request, st: StorageDep, volume_id: Annotated[str | None, Query(max_length=256)] = None, status: Annotated[str | None, Query(max_length=256)] = None,
                        marker: Annotated[str | None, Query(max_length=256)] = None, limit: Limit = None, name: Name = None) -> dict:
    return _listing(request, st, True, volume_id, status, marker, limit, name)


@router.post("/backups", status_code=202)
def create_backup(request: Request, st: StorageDep, payload: Annotated[dict, Body()]) -> dict:
    spec = body_of(payload, "backup", BACKUP_CREATE_KEYS)
    if not spec.get("volume_id"):
        raise InvalidInput("backup needs volume_id; accepted: the id of an existing volume", field="volume_id")
    container = spec.get("container")
    if container and "://" not in str(container):
        raise InvalidInput(
            f"container {container!r} is not accepted; accepted: omit it (the configured repository) or give a "
            "repository URL such as swift://container", field="container",
        )
    source = f"snapshot:{st.snapshots.get(spec['snapshot_id']).id}" if spec.get("snapshot_id") else f"volume:{st.volumes.get(spec['volume_id']).id}"
    job = start_backup(request, st, source, name=spec.get("name") or None, labels=metadata_labels(spec.get("metadata")),
                       repository=container or None, description=spec.get("description"))
    backup_id = job.params["backup_id"]
    return {"backup": {"id": backup_id, "name": spec.get("name"), "links": views.self_links(base_url(request), "backups", backup_id)}}


@router.get("/backups/{backup_id}")
def show_backup(backup_id: IdPath, request: Request, st: StorageDep) -> dict:
    return {"backup": views.backup_detail(_find(st, backup_id), base_url(request))}


@router.delete("/backups/{backup_id}", status_code=202, response_class=Response)
def delete_backup(backup_id: IdPath, st: StorageDep) -> Response:
    st.backups.get(backup_id)
    st.backups.delete(backup_id)
    return Response(status_code=202)


@router.post("/backups/{backup_id}/restore", status_code=202)
def restore_backup(backup_id: IdPath, request: Request, st: StorageDep, payload: Annotated[dict, Body()]) -> dict:
    spec = body_of(payload, "restore", RESTORE_KEYS)
    backup = st.backups.get(backup_id)
    if spec.get("volume_id"):
        volume = st.volumes.get(spec["volume_id"])
        st.volumes.require_host_up(volume)
    else:  # Cinder creates the new volume at once and restores into it in the background: born
        # restoring-backup and owned by this process, so a crash before or during the job leaves
        # it `error` (settled by the next read), never an empty `available` volume
        volume = st.volumes.create(spec.get("name") or views.generated_name("restore"), max(backup.size_bytes, views.GiB),
                                   restoring=True)
    submit_job(
        request, st, "restore", target=backup.id, total=backup.size_bytes or None,
        # born_for_restore: the job (on the volume's host) takes the new volume over from this process
        params={"backup_id": backup.id, "to_volume": volume.id, "to_volume_id": volume.id,
                "born_for_restore": not spec.get("volume_id")},
    )
    return {"restore": {"backup_id": backup.id, "volume_id": volume.id, "volume_name": volume.name}}


def register(app: FastAPI) -> None:
    include_both(app, router)
