"""Policies: CRUD, run history, and run now (a job)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictBool

from api.deps import StorageDep, authorize
from api.errors import ERROR_RESPONSES
from api.guards import check_key_file, check_repository
from api.routes.common import submit_job
from storage.jobs.service import JobInfo
from storage.policy.models import BackupOptions, Policy, PolicyKind, Retention, RunRecord, RunStatus, Selector

router = APIRouter(prefix="/policies", tags=["policies"], dependencies=[Depends(authorize)], responses=ERROR_RESPONSES)


class PolicyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    kind: PolicyKind
    schedule: str = Field(min_length=1, description="cron expression (5 fields) or an interval such as 'every 6h'")
    timezone: str = "UTC"
    selector: Selector
    retention: Retention
    backup: BackupOptions | None = None
    enabled: StrictBool = True


class PolicyUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=128)
    schedule: str | None = None
    timezone: str | None = None
    enabled: StrictBool | None = None
    selector: Selector | None = None
    retention: Retention | None = None
    backup: dict[str, Any] | None = Field(default=None, description="Merged key by key into the backup options")


class RunRequest(BaseModel):
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
def show_policy(ref: str, st: StorageDep) -> Policy:
    return st.policies.get(ref)


@router.patch("/{ref}", response_model=Policy)
def update_policy(ref: str, body: PolicyUpdate, st: StorageDep) -> Policy:
    _guard_backup(st, body.backup)
    changes = body.model_dump(exclude_none=True)
    return st.policies.update(ref, **changes)


@router.delete("/{ref}", status_code=204, response_class=Response)
def delete_policy(ref: str, st: StorageDep) -> Response:
    st.policies.delete(ref)
    return Response(status_code=204)


@router.get("/{ref}/history", response_model=list[RunRecord])
def policy_history(
    ref: str, st: StorageDep,
    limit: Annotated[int, Query(ge=1, le=10000)] = 50,
    status: Annotated[RunStatus | None, Query()] = None,
) -> list[RunRecord]:
    return st.policies.history(ref, limit=limit, status=status)


@router.post("/{ref}/run", status_code=202, response_model=JobInfo, responses={202: {"model": JobInfo}})
def run_policy(ref: str, body: RunRequest, request: Request, st: StorageDep) -> JSONResponse:
    """Run the policy now (outside its schedule) as a job; the job's result is the run report."""
    policy = st.policies.get(ref)

    def work(ctx: Any) -> Any:
        def progress(_policy: str, _volume: str, report: Any) -> None:
            ctx.progress(report)

        report = st.policies.run(now_policies=[policy.id], dry_run=body.dry_run, progress=progress)
        return report

    job = submit_job(request, st, "policy-run", work, target=policy.id, params={"policy": policy.name, "dry_run": body.dry_run})
    return JSONResponse(job.model_dump(mode="json"), status_code=202)
