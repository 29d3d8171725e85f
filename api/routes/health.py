"""``GET /healthz``: unauthenticated liveness and catalog check."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from api.deps import StorageDep

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    catalog: str


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
def healthz(st: StorageDep) -> JSONResponse:
    try:
        with st.catalog.session() as session:
            session.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - health reports, never raises
        return JSONResponse({"status": "unhealthy", "catalog": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ok", "catalog": "ok"})
