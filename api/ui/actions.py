"""The dashboard's forms (POST): log in and out, create, extend and delete a volume, snapshot,
back up, verify, restore, cancel a job.

Order on every change: the session (``current_user``), the role (operator or admin), then the
bounded body and its CSRF token (``write_form``), then the same service call or route helper the
JSON API uses. After success the browser is sent on with 303 (post/redirect/get).
"""

from __future__ import annotations

import time

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from api.routes.backups import RestoreRequest, VerifyRequest, start_backup, start_restore, start_verify
from api.ui import session, views
from api.ui.forms import Form, parse_label_text, read_form
from api.ui.pages import volume_page, volumes_page
from api.ui.web import SessionFormDep, UiRoute, UserDep, WriteFormDep, page, redirect, ui_state
from storage.bounds import DESCRIPTION_MAX, NAME_MAX, SECRET_MAX, SIZE_TEXT_MAX
from storage.errors import AuthenticationFailed, InvalidInput, StorageError
from storage.names import validate_name

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)


def login_page(request: Request, status: int = 200, error: str | None = None) -> Response:
    """The login form with a fresh pre-login nonce (its own cookie) bound into its CSRF token."""
    ui = ui_state(request)
    nonce = session.new_nonce()
    response = page(request, "login.html", status, user=None, error=error, csrf=session.csrf_for(ui.key, "login", nonce))
    response.set_cookie(session.LOGIN_COOKIE, nonce, max_age=3600, **session.cookie_flags(request.url.scheme == "https"))
    return response


@router.get("/login")
def login_form(request: Request) -> Response:
    ended = request.query_params.get("ended") == "1"
    return login_page(request, error="your session has ended; log in again" if ended else None)


async def _login_body(request: Request) -> Form:
    return await read_form(request)


@router.post("/login")
def login(request: Request, form: Annotated[Form, Depends(_login_body)]) -> Response:
    ui = ui_state(request)
    if not session.csrf_ok(ui.key, "login", request.cookies.get(session.LOGIN_COOKIE), form.fields.get(session.CSRF_FIELD)):
        return login_page(request, 403, "the login form expired or was not sent from this page; try again")
    try:
        token = form.required("token", SECRET_MAX, label="token")
        ui.st.tokens.authenticate(token)
    except (AuthenticationFailed, InvalidInput) as exc:
        return login_page(request, exc.http_status, exc.message)
    response = redirect("/ui")
    flags = session.cookie_flags(request.url.scheme == "https")
    response.set_cookie(session.COOKIE, session.seal(ui.key, token, int(time.time())), max_age=session.SESSION_SECONDS, **flags)
    session.clear_cookie(response, session.LOGIN_COOKIE, request.url.scheme == "https")
    return response


@router.post("/logout")
def logout(request: Request, user: UserDep, form: SessionFormDep) -> Response:
    response = redirect("/ui/login")
    session.clear_cookie(response, session.COOKIE, request.url.scheme == "https")
    return response


@router.post("/volumes")
def create_volume(request: Request, user: UserDep, form: WriteFormDep) -> Response:
    st = ui_state(request).st
    values = {k: form.fields.get(k, "")[:256] for k in ("name", "size", "pool", "labels")}
    try:
        name = form.required("name", NAME_MAX, label="name")
        size = form.required("size", SIZE_TEXT_MAX, label="size")
        pool = form.text("pool", NAME_MAX, label="pool")
        labels = parse_label_text(form.text("labels", 4096, label="labels"))
        vol = st.volumes.create(name, size, pool=pool, labels=labels)
    except StorageError as exc:  # shown above the form, the values kept
        return volumes_page(request, exc.http_status, exc.message, values)
    return redirect(f"/ui/volumes/{vol.id}")


@router.post("/volumes/{ref}/snapshot")
def snapshot_volume(ref: str, request: Request, user: UserDep, form: WriteFormDep) -> Response:
    st = ui_state(request).st
    vol = st.volumes.get(views.check_ref(ref))
    name = form.text("name", NAME_MAX, label="snapshot name")
    st.snapshots.create(vol.id, validate_name(name, kind="snapshot") if name else None)
    return redirect(f"/ui/volumes/{vol.id}")


@router.post("/volumes/{ref}/backup")
def backup_volume(ref: str, request: Request, user: UserDep, form: WriteFormDep) -> Response:
    st = ui_state(request).st
    vol = st.volumes.get(views.check_ref(ref))
    job = start_backup(
        request, st, f"volume:{vol.id}", name=form.text("name", NAME_MAX, label="backup name"),
        bandwidth_limit=form.text("bandwidth_limit", SIZE_TEXT_MAX, label="bandwidth limit"),
        description=form.text("description", DESCRIPTION_MAX, label="description"),
    )
    return redirect(f"/ui/jobs/{job.id}")


@router.post("/volumes/{ref}/extend")
def extend_volume(ref: str, request: Request, user: UserDep, form: WriteFormDep) -> Response:
    st = ui_state(request).st
    vol = st.volumes.get(views.check_ref(ref))
    try:
        st.volumes.extend(vol.id, form.required("size", SIZE_TEXT_MAX, label="new size"))
    except StorageError as exc:  # shown on the volume's page, status kept
        return volume_page(request, vol.id, exc.http_status, exc.message)
    return redirect(f"/ui/volumes/{vol.id}")


@router.post("/volumes/{ref}/delete")
def delete_volume(ref: str, request: Request, user: UserDep, form: WriteFormDep) -> Response:
    st = ui_state(request).st
    vol = st.volumes.get(views.check_ref(ref))
    cascade = form.choice("cascade", ("", "yes"), "") == "yes"
    try:
        st.volumes.delete(vol.id, cascade=cascade)
    except StorageError as exc:  # attached, has snapshots, host down...: said on the volume's page
        return volume_page(request, vol.id, exc.http_status, exc.message)
    return redirect("/ui/volumes")


@router.post("/backups/{backup_id}/verify")
def verify_backup(backup_id: str, request: Request, user: UserDep, form: WriteFormDep) -> Response:
    st = ui_state(request).st
    backup = st.backups.get(views.check_ref(backup_id, "backup id"))
    deep = form.choice("mode", ("quick", "deep"), "quick") == "deep"
    job = start_verify(request, st, backup, VerifyRequest(deep=deep))
    return redirect(f"/ui/jobs/{job.id}")


@router.post("/backups/{backup_id}/restore")
def restore_backup(backup_id: str, request: Request, user: UserDep, form: WriteFormDep) -> Response:
    st = ui_state(request).st
    backup = st.backups.get(views.check_ref(backup_id, "backup id"))
    new_name = form.required("new_volume_name", NAME_MAX, label="new volume name")
    job = start_restore(request, st, backup, RestoreRequest.model_construct(
        to_volume=None, new_volume_name=validate_name(new_name, kind="volume"), pool=form.text("pool", NAME_MAX, label="pool"),
    ))  # fmt: skip
    return redirect(f"/ui/jobs/{job.id}")


@router.post("/jobs/{job_id}/cancel")
def cancel_job(job_id: str, request: Request, user: UserDep, form: WriteFormDep) -> Response:
    info = ui_state(request).st.jobs.cancel(views.check_ref(job_id, "job id"))
    return redirect(f"/ui/jobs/{info.id}")
