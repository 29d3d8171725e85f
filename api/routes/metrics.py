"""``GET /metrics``: Prometheus text format.

Volume counts by status, pool capacity, backup counts, job states, and request counters and
latency of this server process. Each area is read through its public service; an area whose
service is not available in this build is left out rather than failing the scrape.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import PlainTextResponse

from api.deps import authorize
from api.errors import ERROR_RESPONSES
from api.metrics import Family, render
from storage.service import Storage

log = logging.getLogger("storage.api")
router = APIRouter(tags=["metrics"], dependencies=[Depends(authorize)], responses=ERROR_RESPONSES)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _status_of(item: object) -> str:
    status = getattr(item, "status", "unknown")
    return str(getattr(status, "value", status))


def volume_families(st: Storage) -> list[Family]:
    counts = Counter(_status_of(v) for v in st.volumes.list())
    fam = Family("storage_volumes", "gauge", "Volumes by status")
    for status, n in sorted(counts.items()):
        fam.add(n, status=status)
    return [fam]


def pool_families(st: Storage) -> list[Family]:
    total = Family("storage_pool_total_bytes", "gauge", "Pool capacity")
    free = Family("storage_pool_free_bytes", "gauge", "Pool free space")
    prov = Family("storage_pool_provisioned_bytes", "gauge", "Sum of volume and snapshot sizes in the pool")
    for pool in st.pools.list():
        usage = getattr(pool, "usage", pool)
        name = getattr(pool, "name", "?")
        total.add(getattr(usage, "total_bytes", 0), pool=name)
        free.add(getattr(usage, "free_bytes", 0), pool=name)
        prov.add(getattr(usage, "provisioned_bytes", 0), pool=name)
    return [total, free, prov]


def backup_families(st: Storage) -> list[Family]:
    counts = Counter(_status_of(b) for b in st.backups.list())
    fam = Family("storage_backups", "gauge", "Backups by status")
    for status, n in sorted(counts.items()):
        fam.add(n, status=status)
    return [fam]


def job_families(st: Storage) -> list[Family]:
    fam = Family("storage_jobs", "gauge", "Jobs by state")
    for state, n in st.jobs.counts_by_state().items():
        fam.add(n, state=state)
    return [fam]


COLLECTORS: list[Callable[[Storage], list[Family]]] = [volume_families, pool_families, backup_families, job_families]


def collect(st: Storage) -> list[Family]:
    families: list[Family] = []
    up = Family("storage_collector_up", "gauge", "1 when the area's metrics were collected")
    for collector in COLLECTORS:
        area = collector.__name__.removesuffix("_families")
        try:
            families.extend(collector(st))
            up.add(1, area=area)
        except ImportError:
            continue  # the area's service is not part of this build
        except Exception as exc:  # noqa: BLE001 - a broken area must not hide the others
            log.warning("metrics for %s failed: %s", area, exc)
            up.add(0, area=area)
    return families + [up]


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"description": "Prometheus text exposition", "content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(request: Request) -> PlainTextResponse:
    st: Storage = request.app.state.storage
    families = collect(st) + request.app.state.request_stats.families()
    return PlainTextResponse(render(families), media_type=CONTENT_TYPE)
