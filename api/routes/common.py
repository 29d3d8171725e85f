"""Small helpers shared by the native routers (query parsing, job submission)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request

from storage.jobs.service import JobContext, JobInfo
from storage.names import parse_labels
from storage.service import Storage


def labels_query(items: list[str] | None) -> dict[str, str] | None:
    """``?label=k=v&label=k2=v2`` -> dict (validated by storage.names.parse_labels)."""
    return parse_labels(items) if items else None


def caller(request: Request) -> str | None:
    principal = getattr(request.state, "principal", None)
    return f"{principal.role}:{principal.name or principal.token_id}" if principal else None


def submit_job(
    request: Request, st: Storage, kind: str, work: Callable[[JobContext], Any], *,
    target: str | None = None, params: dict[str, Any] | None = None, total: int | None = None,
) -> JobInfo:
    """Run ``work`` as a job (202 + job resource); the route returns the queued job."""
    return st.jobs.submit(kind, work, target=target, params=params, total=total, created_by=caller(request))
