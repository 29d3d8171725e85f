"""Backups: create (job), list, show, restore (job), verify (job), delete, gc (job)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ConfigDict, Field, StrictBool, model_validator

from api.deps import StorageDep, authorize
from api.errors import ERROR_RESPONSES
from api.fields import Body, IdPath, LabelMap, Name, Ref, Size, Url, one_of
from api.guards import check_repository
from api.routes.common import caller, check_job_params, labels_query, submit_job
from storage.backup.models import Backup
from storage.bounds import DESCRIPTION_MAX
from storage.jobs.service import JobInfo

router = APIRouter(prefix="/backups", tags=["backups"], dependencies=[Depends(authorize)], responses=ERROR_RESPONSES)
JOB_RESPONSE: dict[int | str, dict[str, Any]] = {202: {"model": JobInfo, "description": "Accepted: the job doing it"}}


class BackupCreate(Body):
    model_config = ConfigDict(extra="forbid", json_schema_extra=one_of("volume", "snapshot"))
    volume: Ref = Field(default=None, description="Back up this volume (name or id), through a new snapshot")  # type: ignore[assignment]
    snapshot: Ref = Field(default=None, description="Or back up this existing snapshot")  # type: ignore[assignment]
    name: Name | None = None
    description: Annotated[str, Field(max_length=DESCRIPTION_MAX)] | None = Field(default=None, description="Free text")
    labels: LabelMap | None = None
    repository: Url | None = Field(default=None, description="Repository URL; default: the configured one")
    bandwidth_limit: Size | None = Field(default=None, description="Upper bound of read bytes per second, e.g. 50M")

    @model_validator(mode="after")
    def _one_source(self) -> "BackupCreate":
        if (self.volume is None) == (self.snapshot is None):
            raise ValueError("give exactly one of volume or snapshot")
        return self


class RestoreRequest(Body):
    model_config = ConfigDict(extra="forbid", json_schema_extra=one_of("to_volume", "new_volume_name"))
    to_volume: Ref = Field(default=None, description="Overwrite this existing volume (large enough)")  # type: ignore[assignment]
    new_volume_name: Name = Field(default=None, description="Or restore into a new volume")  # type: ignore[assignment]
    pool: Name | None = Field(default=None, description="Pool of the new volume")

    @model_validator(mode="after")
    def _one_target(self) -> "RestoreRequest":
        if (self.to_volume is None) == (self.new_volume_name is None):
            raise ValueError("give exactly one of to_volume or new_volume_name")
        return self


class VerifyRequest(Body):
    deep: StrictBool = False
    sample_percent: float = Field(default=100, gt=0, le=100, allow_inf_nan=False)


class GcRequest(Body):
    repository: Url | None = None
    dry_run: StrictBool = False


def _accepted(job: JobInfo, location: str | None = None) -> JSONResponse:
    headers = {"Location": location} if location else None
    return JSONResponse(job.model_dump(mode="json"), status_code=202, headers=headers)


def start_backup(request: Request, st: StorageDep, source: str, *, name: str | None = None,
                 labels: dict[str, str] | None = None, repository: str | None = None,
                 bandwidth_limit: int | str | None = None, description: str | None = None) -> JobInfo:
    """Submit a backup job whose backup id is known now (used by the Cinder subset too).

    Every parameter is checked before the job is queued (422 now, not a failed job later)."""
    repository = check_repository(repository, st.settings)
    check_job_params(st, repository=repository, name=name, labels=labels, bandwidth_limit=bandwidth_limit)
    from storage.volumes.edits import check_description

    description = check_description(description)
    require_source_host_up(st, source)
    backup_id = str(uuid.uuid4())
    return submit_job(
        request, st, "backup", target=backup_id,
        params={"backup_id": backup_id, "source": source, "name": name, "repository": repository, "labels": labels,
                "bandwidth_limit": bandwidth_limit, "description": description},
    )


def require_source_host_up(st: StorageDep, source: str) -> None:
    """A backup reads on the volume's host: answer 503 now (host named) when it is down, not in the job."""
    kind, _, ref = source.partition(":")
    if kind == "volume":
        st.volumes.require_host_up(st.volumes.get(ref))
    elif kind == "snapshot":
        st.volumes.require_host_up(st.volumes.get(st.snapshots.get(ref).volume_id))


@router.get("", response_model=list[Backup])
def list_backups(
    st: StorageDep,
    volume: Annotated[str | None, Query(min_length=1, max_length=256, description="Volume name or id")] = None,
    status: Annotated[str | None, Query(max_length=32)] = None,
    label: Annotated[list[str] | None, Query(description="KEY=VALUE; repeat to require several")] = None,
) -> list[Backup]:
    return st.backups.list(volume=volume, status=status, labels=labels_query(label))


@router.post("", status_code=202, response_model=JobInfo, responses=JOB_RESPONSE)
def create_backup(body: BackupCreate, request: Request, st: StorageDep) -> JSONResponse:
    source = f"volume:{st.volumes.get(body.volume).id}" if body.volume else f"snapshot:{st.snapshots.get(body.snapshot or '').id}"
    job = start_backup(request, st, source, name=body.name, labels=body.labels, repository=body.repository,
                       bandwidth_limit=body.bandwidth_limit, description=body.description)
    return _accepted(job, f"/backups/{job.params['backup_id']}")


@router.get("/{backup_id}", response_model=Backup)
def show_backup(backup_id: IdPath, st: StorageDep) -> Backup:
    return st.backups.get(backup_id)


@router.delete("/{backup_id}", status_code=204, response_class=Response)
def delete_backup(backup_id: IdPath, st: StorageDep) -> Response:
    st.backups.get(backup_id)  # 404 for ids not in the catalog (no repository lookups from the API)
    st.backups.delete(backup_id)
    return Response(status_code=204)


@router.post("/{backup_id}/restore", status_code=202, response_model=JobInfo, responses=JOB_RESPONSE)
def restore_backup(backup_id: IdPath, body: RestoreRequest, request: Request, st: StorageDep) -> JSONResponse:
    return _accepted(start_restore(request, st, st.backups.get(backup_id), body))


def start_restore(request: Request, st: StorageDep, backup: Backup, body: RestoreRequest) -> JobInfo:
    """Check the target, place a new volume (several hosts: the scheduler, over every host) and submit
    the restore job (storage.backup.queued: the library and CLI use the same path; the web
    dashboard's restore button too)."""
    return st.backup_jobs.submit(backup, to_volume=body.to_volume, new_volume_name=body.new_volume_name,
                                  pool=body.pool, created_by=caller(request))


@router.post("/{backup_id}/verify", status_code=202, response_model=JobInfo, responses=JOB_RESPONSE)
def verify_backup(backup_id: IdPath, body: VerifyRequest, request: Request, st: StorageDep) -> JSONResponse:
    return _accepted(start_verify(request, st, st.backups.get(backup_id), body))


def start_verify(request: Request, st: StorageDep, backup: Backup, body: VerifyRequest) -> JobInfo:
    """Submit the verify job of one backup (the web dashboard's verify button too)."""
    return submit_job(request, st, "verify", target=backup.id, params={"backup_id": backup.id, **body.model_dump()})


@router.post("/gc", status_code=202, response_model=JobInfo, responses=JOB_RESPONSE)
def gc(body: GcRequest, request: Request, st: StorageDep) -> JSONResponse:
    repository = check_repository(body.repository, st.settings)
    check_job_params(st, repository=repository)
    url = repository or st.settings.backup.repository
    if not body.dry_run and url:  # 409 now, not a failed job, while a serve or live restore reads it
        st.backups.serving.refuse_while_read(f"repository {url} cannot be garbage-collected", repository=url)
    job = submit_job(request, st, "gc", target=repository, params={**body.model_dump(), "repository": repository})
    return _accepted(job)
