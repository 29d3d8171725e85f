"""The dashboard's pages (GET): overview, volumes, one volume, backups, policies, jobs, one job.

Every page reads through the services (``st``) and shapes with ``api.ui.views``; query
parameters are bounded and checked there before any listing.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from api.ui import views
from api.ui.policies import policy_view
from api.ui.web import SECURITY_HEADERS, UiRoute, UserDep, page, ui_state
from storage.domain import VolumeStatus
from storage.errors import InvalidInput, NotFound
from storage.jobs.service import JobState

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)
JOBS_SHOWN = 100
JSON_IDS_MAX = 50


@router.get("")
def overview(request: Request, user: UserDep) -> Response:
    st = ui_state(request).st
    pools = [(p, views.capacity_bar(p.total_bytes, p.free_bytes)) for p in st.pools.list()]
    hosts = st.hosts.list()
    host_pools = {
        h.name: [(name, report, views.capacity_bar(report.get("total_bytes"), report.get("free_bytes")))
                 for name, report in sorted(h.pools.items())]
        for h in hosts
    }  # fmt: skip
    volumes = st.volumes.list()
    backups = st.backups.list()
    jobs = st.jobs.list(limit=JOBS_SHOWN)
    return page(
        request, "overview.html",
        pools=pools, hosts=hosts, host_pools=host_pools,
        volume_counts=views.status_counts((v.status.value for v in volumes), (s.value for s in VolumeStatus)),
        backup_counts=views.status_counts(b.status for b in backups),
        job_counts=[(s, n) for s, n in st.jobs.counts_by_state().items() if n],
        failed_jobs=views.attention_jobs(jobs), bad_backups=views.attention_backups(backups),
    )  # fmt: skip


@router.get("/volumes")
def volumes(request: Request, user: UserDep) -> Response:
    return volumes_page(request)


def volumes_page(request: Request, status: int = 200, error: str | None = None, values: dict | None = None) -> Response:
    """The volumes page; a refused create form comes back here with its message and values."""
    st = ui_state(request).st
    try:
        filters = views.volume_filters(request.query_params)
    except InvalidInput as exc:
        filters, error, status = views.VolumeFilters(), exc.message, exc.http_status
    listed = st.volumes.list(status=filters.status, labels=filters.labels)
    return page(
        request, "volumes.html", status,
        volumes=views.filter_by_host(listed, filters.host), filters=filters, error=error, values=values or {},
        statuses=[s.value for s in VolumeStatus], hosts=[h.name for h in st.hosts.list()],
        pools=sorted(st.settings.pools), default_pool=st.settings.default_pool,
    )  # fmt: skip


@router.get("/volumes/{ref}")
def volume(ref: str, request: Request, user: UserDep) -> Response:
    return volume_page(request, ref)


def volume_page(request: Request, ref: str, status: int = 200, error: str | None = None) -> Response:
    """One volume; a refused extend or delete form comes back here with its message and status."""
    st = ui_state(request).st
    vol = st.volumes.show(views.check_ref(ref))
    try:
        export = st.exports.get(vol.id)
    except NotFound:
        export = None
    backups = st.backups.list(volume=vol.id)
    verify_jobs = views.jobs_by_target(st.jobs.list(kind="verify", limit=1000), "verify")
    return page(
        request, "volume.html", status, error=error, volume=vol, snapshots=st.snapshots.list(volume=vol.id), export=export,
        backups=[(b, views.verify_state(b.status, verify_jobs.get(b.id, []))) for b in reversed(backups)],
    )


@router.get("/backups")
def backups(request: Request, user: UserDep) -> Response:
    st = ui_state(request).st
    volume = (request.query_params.get("volume") or "").strip() or None
    if volume is not None:
        volume = views.check_ref(volume, "volume")
    listed = st.backups.list(volume=volume)
    verify_jobs = views.jobs_by_target(st.jobs.list(kind="verify", limit=1000), "verify")
    groups = [
        (name, [(b, views.verify_state(b.status, verify_jobs.get(b.id, []))) for b in items])
        for name, items in views.group_backups(listed)
    ]
    return page(request, "backups.html", groups=groups, volume=volume)


@router.get("/policies")
def policies(request: Request, user: UserDep) -> Response:
    st = ui_state(request).st
    return page(request, "policies.html", policies=[policy_view(st, p) for p in st.policies.list()])


@router.get("/jobs")
def jobs(request: Request, user: UserDep) -> Response:
    st = ui_state(request).st
    state = (request.query_params.get("state") or "").strip() or None
    accepted = [s.value for s in JobState]
    if state is not None and state not in accepted:
        raise InvalidInput(f"job state {state[:40]!r} is not accepted; accepted: {', '.join(accepted)}", field="state")
    listed = st.jobs.list(state=state, limit=JOBS_SHOWN)
    return page(request, "jobs.html", jobs=[(j, views.job_json(j)) for j in listed], state=state, states=accepted)


@router.get("/jobs.json")
def jobs_json(request: Request, user: UserDep) -> Response:
    """The jobs the page's script polls: ``?id=`` repeated (at most 50), or the newest 100."""
    st = ui_state(request).st
    ids = request.query_params.getlist("id")
    if len(ids) > JSON_IDS_MAX:
        raise InvalidInput(f"{len(ids)} job ids given; accepted: at most {JSON_IDS_MAX}", field="id")
    listed = [st.jobs.get(views.check_ref(i, "job id")) for i in ids] if ids else st.jobs.list(limit=JOBS_SHOWN)
    return JSONResponse([views.job_json(j) for j in listed], headers=SECURITY_HEADERS)


@router.get("/jobs/{job_id}")
def job(job_id: str, request: Request, user: UserDep) -> Response:
    info = ui_state(request).st.jobs.get(views.check_ref(job_id, "job id"))
    return page(request, "job.html", job=info, view=views.job_json(info))
