"""Small helpers shared by the native routers (query parsing, job submission)."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from storage.bounds import check_labels
from storage.units import parse_size
from storage.jobs.service import JobInfo
from storage.names import parse_labels, validate_name
from storage.service import Storage


def labels_query(items: list[str] | None) -> dict[str, str] | None:
    """``?label=k=v&label=k2=v2`` -> dict (validated by storage.names.parse_labels)."""
    return parse_labels(items) if items else None


def check_job_params(
    st: Storage, *, repository: str | None = None, name: str | None = None,
    labels: dict[str, str] | None = None, bandwidth_limit: int | str | None = None,
) -> None:
    """What a backup or gc job would refuse, refused before it is queued: the backup name, its
    labels, the bandwidth limit, and the repository URL (its form and a configured store)."""
    if name is not None:
        validate_name(name, kind="backup")
    check_labels(labels)
    if bandwidth_limit is not None:
        parse_size(bandwidth_limit, field="bandwidth_limit")
    url = repository or st.settings.backup.repository
    if url:
        st.objects.check_url(url)


def caller(request: Request) -> str | None:
    principal = getattr(request.state, "principal", None)
    return f"{principal.role}:{principal.name or principal.token_id}" if principal else None


def submit_job(
    request: Request, st: Storage, kind: str, *,
    target: str | None = None, params: dict[str, Any] | None = None, total: int | None = None,
) -> JobInfo:
    """Run the named task ``kind`` (storage.queue.tasks) with ``params`` as a job (202 + job
    resource): in this process, or on the owning host's queue; the route returns the queued job."""
    return st.jobs.submit(kind, target=target, params=params, total=total, created_by=caller(request))
