"""Policies: CRUD, run history, and run now (a job)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import Field, StrictBool, StrictInt

from api.deps import StorageDep, authorize
from api.errors import ERROR_RESPONSES
from api.fields import Body, HostPath, Name, RefPath, Size, Url
from api.guards import check_key_file, check_repository
from api.routes.common import submit_job
from storage.bounds import SCHEDULE_MAX, TIMEZONE_MAX
from storage.jobs.service import JobInfo
from storage.policy.models import (
    BackupOptions, Policy, PolicyKind, Retention, RunRecord, RunStatus, Selector, VerifyMode,
)

router = APIRouter(prefix="/policies", tags=["policies"], dependencies=[Depends(authorize)], responses=ERROR_RESPONSES)


class PolicyCreate(Body):
    name: Name
    kind: PolicyKind
    schedule: str = Field(min_length=1, max_length=SCHEDULE_MAX, description="cron expression (5 fields) or an interval such as 'every 6h'")
    timezone: str = Field(default="UTC", min_length=1, max_length=TIMEZONE_MAX, description="IANA time zone")
    selector: Selector
    retention: Retention
    backup: BackupOptions | None = None
    enabled: StrictBool = True


class BackupPatch(Body):
    """Backup options to change; the given keys are merged into the policy's options."""

    repository: Url | None = None
    compression: Literal["zstd", "none"] | None = None
    encryption_key_file: HostPath | None = None
    verify: VerifyMode | None = None
    verify_sample_percent: float | None = Field(default=None, gt=0, le=100, allow_inf_nan=False)
    max_concurrent: Annotated[StrictInt, Field(ge=1, le=64)] | None = None
    bandwidth_limit: Size | None = Field(default=None, description="Bytes per second, e.g. 50M")


class PolicyUpdate(Body):
    name: Name | None = None
    schedule: str | None = Field(default=None, min_length=1, max_length=SCHEDULE_MAX)
    timezone: str | None = Field(default=None, min_length=1, max_length=TIMEZONE_MAX)
    enabled: StrictBool | None = None
    selector: Selector | None = None
    retention: Retention | None = None
    backup: BackupPatch | None = Field(default=None, description="Merged key by key into the backup options")


class RunRequest(Body):
    dry_run: StrictBool = False


def _guard_backup(st: Any, backup: BackupOptions | dict[str, Any] | None) -> None:
    """Repository and key file as the API accepts them (api.guards); before the service looks at any path."""
    if isinstance(backup, dict):
        repository, key_file = backup.get("repository"), backup.get("encryption_key_file")
    else:
        repository = backup.repository if backup else None
        key_file = backup.encryption_key_file if backup else None
    check_repository(repository if isinstance(repository, str) or repository is None else str(repository), st.settings)
    if key_file is not None:
        check_key_file(key_file if isinstance(key_file, str) else "", st.settings)


@router.get("", response_model=list[Policy])
def list_policies(st: StorageDep, kind: Annotated[PolicyKind | None, Query()] = None) -> list[Policy]:
    return st.policies.list(kind=kind)


@router.post("", response_model=Policy, status_code=201)
def create_policy(body: PolicyCreate, st: StorageDep) -> Policy:
    _guard_backup(st, body.backup)
    return st.policies.create(
        body.name, body.kind, body.schedule, selector=body.selector.model_dump(), retention=body.retention.model_dump(),
        timezone=body.timezone, backup=body.backup.model_dump() if body.backup else None, enabled=body.enabled,
    )


@router.get("/{ref}", response_model=Policy)
def show_policy(ref: RefPath, st: StorageDep) -> Policy:
    return st.policies.get(ref)


@router.patch("/{ref}", response_model=Policy)
def update_policy(ref: RefPath, body: PolicyUpdate, st: StorageDep) -> Policy:
    _guard_backup(st, body.backup)
    changes = body.model_dump(exclude_none=True)
    return st.policies.update(ref, **changes)


@router.delete("/{ref}", status_code=204, response_class=Response)
def delete_policy(ref: RefPath, st: StorageDep) -> Response:
    st.policies.delete(ref)
    return Response(status_code=204)


@router.get("/{ref}/history", response_model=list[RunRecord])
def policy_history(
    ref: RefPath, st: StorageDep,
    limit: Annotated[int, Query(ge=1, le=10000)] = 50,
    status: Annotated[RunStatus | None, Query()] = None,
) -> list[RunRecord]:
    return st.policies.history(ref, limit=limit, status=status)


@router.post("/{ref}/run", status_code=202, response_model=JobInfo, responses={202: {"model": JobInfo}})
def run_policy(ref: RefPath, body: RunRequest, request: Request, st: StorageDep) -> JSONResponse:
    """Run the policy now (outside its schedule) as a job; the job's result is the run report."""
    policy = st.policies.get(ref)
    job = submit_job(request, st, "policy-run", target=policy.id,
                     params={"policy": policy.name, "policy_id": policy.id, "dry_run": body.dry_run})
    return JSONResponse(job.model_dump(mode="json"), status_code=202)
