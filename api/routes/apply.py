"""POST /apply: plan (``?dry_run=true``) or apply a stack file (YAML or JSON body); see docs/apply.md."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from starlette.concurrency import run_in_threadpool

from api.deps import StorageDep, authorize
from api.errors import ERROR_RESPONSES
from api.guards import check_key_file, check_repository
from storage.apply.models import MAX_FILE_BYTES, Stack, inline_schema
from storage.apply.service import ApplyResult, as_stack

router = APIRouter(tags=["apply"], dependencies=[Depends(authorize)], responses=ERROR_RESPONSES)
BODY = {
    "requestBody": {
        "required": True,
        "description": f"The stack file, at most {MAX_FILE_BYTES} bytes: YAML, or JSON (YAML reads it); "
        "its JSON Schema is `storagectl apply schema` (docs/apply.schema.json). Errors name the line.",
        "content": {"application/yaml": {"schema": inline_schema()}, "application/json": {"schema": inline_schema()}},
    }
}


def _guard(stack: Stack, st: StorageDep) -> None:
    """What the API refuses in a policy's backup options, as POST /policies does (api.guards)."""
    for policy in stack.policies:
        if policy.backup is not None:
            check_repository(policy.backup.repository, st.settings)
            if policy.backup.encryption_key_file is not None:
                check_key_file(policy.backup.encryption_key_file, st.settings)


@router.post("/apply", response_model=ApplyResult, openapi_extra=BODY)
async def apply_stack(
    request: Request,
    st: StorageDep,
    dry_run: Annotated[bool, Query(description="Only plan: what would be created, changed, deleted, and why")] = False,
    prune: Annotated[bool, Query(description="Also delete what the stack does not declare (needs yes=true)")] = False,
    yes: Annotated[bool, Query(description="Confirm the deletions of prune")] = False,
    delete_volumes: Annotated[bool, Query(description="Let prune delete volumes that may hold data")] = False,
) -> ApplyResult:
    body = bytearray()
    async for block in request.stream():
        body += block
        if len(body) > MAX_FILE_BYTES:
            raise HTTPException(413, f"the stack is larger than the limit of {MAX_FILE_BYTES} bytes")
    stack = await run_in_threadpool(as_stack, bytes(body), "request body")
    _guard(stack, st)
    return await run_in_threadpool(
        st.applier.apply, stack, dry_run=dry_run, prune=prune, yes=yes, delete_volumes=delete_volumes
    )
