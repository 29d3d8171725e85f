"""Shared dependencies: settings, the Storage, a catalog session, the caller and role checks.

``api.edge.EdgeMiddleware`` authenticates every request before its body is read and leaves the
principal in ``request.state``; these dependencies reuse it (and authenticate themselves when the
app runs without the middleware). Every route except ``/healthz`` and ``/healthcheck`` depends on ``authorize``: a reader may only use safe methods
(GET, HEAD), an operator anything but token administration and status resets, which depend on
``require_admin``. The token comes from ``Authorization: Bearer`` or, as python-cinderclient
sends it, ``X-Auth-Token``. These run on the event loop (``async def``: FastAPI would hand each
plain ``def`` to a worker thread, a hop of about 0.1 ms of CPU per dependency per request); the
only one that may read the catalog sends that read to a thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from storage.auth.service import Principal
from storage.config import Settings
from storage.errors import AuthenticationFailed
from storage.service import Storage

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="A token from `storagectl token create --role admin|operator|reader`.",
)


async def get_storage(request: Request) -> Storage:
    return request.app.state.storage


async def get_settings(request: Request) -> Settings:
    return request.app.state.storage.settings


def get_session(st: Annotated[Storage, Depends(get_storage)]) -> Iterator[Session]:
    with st.catalog.session() as session:
        yield session


async def get_principal(
    request: Request,
    st: Annotated[Storage, Depends(get_storage)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    known = getattr(request.state, "principal", None)
    if isinstance(known, Principal):
        return known
    token = credentials.credentials if credentials else request.headers.get("x-auth-token")
    if not token:
        raise AuthenticationFailed("missing token: send 'Authorization: Bearer <token>' (or X-Auth-Token)")
    principal = st.tokens.cached(token) or await run_in_threadpool(st.tokens.authenticate, token)
    request.state.principal = principal
    return principal


async def authorize(request: Request, principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    """Readers may only read; changes need operator or admin."""
    principal.require("reader" if request.method in SAFE_METHODS else "operator")
    return principal


async def require_admin(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    principal.require("admin")
    return principal


StorageDep = Annotated[Storage, Depends(get_storage)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
PrincipalDep = Annotated[Principal, Depends(authorize)]
AdminDep = Annotated[Principal, Depends(require_admin)]
