"""The dashboard's plumbing: templates, security headers, the session user and its error pages.

``current_user`` authenticates the session cookie's token before a route reads any body;
``write_form`` then checks the role (operator or admin) and only then reads the bounded form and
its CSRF token. ``UiRoute`` turns every typed error (``storage.errors``) into the page's own error
message with the error's HTTP status, and an expired session into the login form.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape

from api.ui import session
from api.ui.forms import Form, read_form
from storage.auth.service import Principal
from storage.errors import AuthenticationFailed, PermissionDenied, StorageError
from storage.service import Storage
from storage.units import format_size

log = logging.getLogger("storage.api.ui")
HERE = Path(__file__).parent
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # the error page's back link; nothing leaves the site
    "Cache-Control": "no-store",
}


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else ""


def _size(value: Any) -> str:
    return format_size(int(value)) if isinstance(value, (int, float)) else ""


class UiState:
    """Per app: the template environment and the session key (read or made on first use)."""

    def __init__(self, st: Storage) -> None:
        self.st = st
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
        self.env.filters.update(size=_size, when=_when, short=lambda v: (v or "")[:8])
        self._key: bytes | None = None
        self._lock = threading.Lock()

    @property
    def key(self) -> bytes:
        with self._lock:
            if self._key is None:
                self._key = session.load_key(Path(self.st.settings.data_dir))
            return self._key


def ui_state(request: Request) -> UiState:
    return request.app.state.ui


@dataclass(frozen=True)
class UiUser:
    principal: Principal
    csrf: str
    session_id: str

    @property
    def can_write(self) -> bool:
        return self.principal.has_role("operator")

    @property
    def name(self) -> str:
        return self.principal.name or self.principal.token_id[:8]


class LoginRequired(Exception):
    """No session, a forged or expired one, or its token is no longer valid."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


def current_user(request: Request) -> UiUser:
    ui = ui_state(request)
    sealed = session.unseal(ui.key, request.cookies.get(session.COOKIE), int(time.time()))
    if sealed is None:
        raise LoginRequired("" if session.COOKIE not in request.cookies else "your session has ended; log in again")
    try:
        principal = ui.st.tokens.authenticate(sealed.token)
    except AuthenticationFailed as exc:
        raise LoginRequired(exc.message) from None
    request.state.principal = principal  # jobs record who submitted them (api.routes.common.caller)
    user = UiUser(principal, session.csrf_for(ui.key, "csrf", sealed.session_id), sealed.session_id)
    request.state.ui_user = user
    return user


UserDep = Annotated[UiUser, Depends(current_user)]


def check_csrf(request: Request, user: UiUser, form: Form) -> None:
    if not session.csrf_ok(ui_state(request).key, "csrf", user.session_id, form.fields.get(session.CSRF_FIELD)):
        raise PermissionDenied("the form's CSRF token is missing or is not this session's; reload the page and submit it again")


async def session_form(request: Request, user: UserDep) -> Form:
    """Any logged-in user's form (logout): the session first, then the body, then its CSRF token."""
    form = await read_form(request)
    check_csrf(request, user, form)
    return form


async def write_form(request: Request, user: UserDep) -> Form:
    """A form that changes something: operator or admin, checked before the body is read."""
    user.principal.require("operator")
    return await session_form(request, user)


SessionFormDep = Annotated[Form, Depends(session_form)]
WriteFormDep = Annotated[Form, Depends(write_form)]


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    ui = ui_state(request)
    context.setdefault("user", getattr(request.state, "ui_user", None))
    context.setdefault("path", request.url.path)
    html = ui.env.get_template(template).render(request=request, **context)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)


def error_page(request: Request, status: int, code: str, message: str) -> Response:
    if request.url.path.endswith(".json"):
        return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=SECURITY_HEADERS)
    back = request.headers.get("referer") or ""
    back = back if back.startswith(str(request.base_url) + "ui") and len(back) <= 2048 else ""  # only our own pages
    return page(request, "error.html", status, status_code=status, code=code, message=message, back=back)


class UiRoute(APIRoute):
    """Typed errors become the page's message (their status kept); an ended session, the login form."""

    def get_route_handler(self) -> Any:
        inner = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await inner(request)
            except LoginRequired as exc:
                return login_required(request, exc.message)
            except StorageError as exc:
                return error_page(request, exc.http_status, exc.code, exc.message)
            except Exception as exc:  # noqa: BLE001 - logged; the page says where to look
                log.exception("unexpected error in %s %s", request.method, request.url.path)
                return error_page(request, 500, "internal_error", f"internal error ({type(exc).__name__}); see the server log")

        return handler


def login_required(request: Request, message: str) -> Response:
    if request.url.path.endswith(".json"):
        return JSONResponse({"error": {"code": "unauthenticated", "message": message or "log in first"}}, status_code=401)
    if request.method in ("GET", "HEAD"):
        response: Response = redirect("/ui/login" + ("?ended=1" if message else ""))
    else:
        response = error_page(request, 401, "unauthenticated", message or "log in first")
    session.clear_cookie(response, session.COOKIE, request.url.scheme == "https")
    return response
