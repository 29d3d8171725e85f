"""Jobs: long operations (backup, restore, verify, wipe, gc) with progress; cancellable."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.deps import StorageDep, authorize
from api.errors import ERROR_RESPONSES
from api.fields import IdPath
from storage.jobs.service import JobInfo, JobState

router = APIRouter(prefix="/jobs", tags=["jobs"], dependencies=[Depends(authorize)], responses=ERROR_RESPONSES)


@router.get("", response_model=list[JobInfo])
def list_jobs(
    st: StorageDep,
    state: Annotated[JobState | None, Query(description="Only jobs in this state")] = None,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 100,
) -> list[JobInfo]:
    return st.jobs.list(state=state.value if state else None, kind=kind, limit=limit)


@router.get("/{job_id}", response_model=JobInfo)
def show_job(job_id: IdPath, st: StorageDep) -> JobInfo:
    return st.jobs.get(job_id)


@router.post("/{job_id}/cancel", response_model=JobInfo, status_code=202)
def cancel_job(job_id: IdPath, st: StorageDep) -> JobInfo:
    return st.jobs.cancel(job_id)
