"""Health: ``GET /healthz`` (liveness and catalog) and ``GET /healthcheck`` (for load balancers).

Both need no token. ``/healthcheck`` (GET or HEAD) answers 503 while the replica is draining, so
a load balancer sends it no new requests while those in flight finish, or while the catalog does
not answer ``SELECT 1`` within ``api.health_timeout_seconds``; 200 otherwise. Draining (see
docs/api.md "Health check"): the drain file (``api.drain_file``, default ``<data_dir>/api.drain``)
exists, or the process got SIGUSR1 (SIGUSR2 ends that). The catalog probe never hangs the answer:
at most one probe runs at a time per process and the answer waits for it at most the timeout.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from api.deps import StorageDep
from storage.config import Settings
from storage.service import Storage

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    catalog: str


class Readiness(BaseModel):
    status: str  # ok, draining, unhealthy
    catalog: str  # ok, unreachable, timeout
    draining: bool


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
def healthz(st: StorageDep) -> JSONResponse:
    try:
        with st.catalog.session() as session:
            session.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - health reports, never raises
        return JSONResponse({"status": "unhealthy", "catalog": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ok", "catalog": "ok"})


def drain_file(settings: Settings) -> Path:
    return settings.api.drain_file or settings.data_dir / "api.drain"


def readiness(draining: bool, catalog: str) -> tuple[int, dict]:
    """The load balancer's answer from the drain state and the catalog probe. Pure; table-tested."""
    if draining:
        return 503, {"status": "draining", "catalog": catalog, "draining": True}
    if catalog != "ok":
        return 503, {"status": "unhealthy", "catalog": catalog, "draining": False}
    return 200, {"status": "ok", "catalog": "ok", "draining": False}


class CatalogProbe:
    """``SELECT 1`` in a worker thread, one at a time, awaited at most ``timeout`` seconds."""

    def __init__(self, st: Storage) -> None:
        self.st = st
        self._task: asyncio.Future | None = None

    def _select(self) -> None:
        with self.st.catalog.session() as session:
            session.execute(text("SELECT 1"))

    async def check(self, timeout: float) -> str:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(run_in_threadpool(self._select))
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            return "timeout"
        except Exception:  # noqa: BLE001 - health reports, never raises
            return "unreachable"
        return "ok"


@router.get("/healthcheck", response_model=Readiness, responses={503: {"model": Readiness}})
async def healthcheck(request: Request) -> JSONResponse:
    st: Storage = request.app.state.storage
    draining = bool(getattr(request.app.state, "draining", False)) or drain_file(st.settings).exists()
    probe: CatalogProbe = request.app.state.catalog_probe
    catalog = "skipped" if draining else await probe.check(st.settings.api.health_timeout_seconds)
    status, body = readiness(draining, catalog)
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})
