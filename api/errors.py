"""The ONE place mapping errors to HTTP responses.

Native API: ``{"error": {"code", "message", "details"}}`` with the status each
``storage.errors`` type declares (404, 409, 422, 503...). Cinder subset (paths under ``/v3`` and
the version document at ``/``): Cinder's own bodies, e.g. ``{"itemNotFound": {"code": 404,
"message": ...}}``, with Cinder's status codes.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from storage.errors import InvalidInput, StorageError

log = logging.getLogger("storage.api")

WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="storage"'}

_HTTP_CODES = {
    400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    406: "not_acceptable", 409: "conflict", 411: "length_required", 413: "too_large", 415: "unsupported_media_type",
    422: "invalid_input", 500: "internal_error", 501: "unsupported", 503: "backend_error", 507: "insufficient_capacity",
}

# Cinder's fault names (cinder/api/openstack/wsgi.py Fault._fault_names)
_CINDER_FAULTS = {
    400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound", 405: "badMethod",
    409: "conflictingRequest", 413: "overLimit", 415: "badMediaType", 501: "notImplemented",
    503: "serviceUnavailable",
}


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any] | None = None


class ErrorBody(BaseModel):
    """The one error shape of the native API."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": desc}
    for status, desc in {
        400: "Malformed request",
        401: "Missing or invalid token",
        403: "The token's role does not allow this",
        404: "Not found",
        409: "Conflicting state",
        413: "Too large",
        415: "Unsupported media type",
        422: "Invalid input: names the field and what is accepted",
        500: "Internal error",
        501: "Not supported on this backend or host",
        503: "A backend is unavailable",
        507: "Insufficient capacity",
    }.items()
}


def is_cinder_path(path: str) -> bool:
    return path == "/" or path.startswith("/v3")


def cinder_status(status: int) -> int:
    """Cinder reports invalid input as 400 and capacity/quota exhaustion as 413."""
    if status == 422:
        return 400
    if status == 507:
        return 413
    return status


def cinder_fault(status: int, message: str) -> JSONResponse:
    status = cinder_status(status)
    name = _CINDER_FAULTS.get(status, "computeFault" if status >= 500 else "badRequest")
    headers = {"WWW-Authenticate": 'Keystone uri="none"'} if status == 401 else None
    return JSONResponse({name: {"code": status, "message": message}}, status_code=status, headers=headers)


def native_error(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message, "details": details or None}
    headers = WWW_AUTHENTICATE if status == 401 else None
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def error_response(request: Request, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> JSONResponse:
    if is_cinder_path(request.url.path):
        return cinder_fault(status, message)
    return native_error(status, code, message, details)


def _storage_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StorageError)
    status = exc.http_status
    if status >= 500:
        log.warning("%s %s failed: %s", request.method, request.url.path, exc.message)
    details = exc.to_dict().get("details")
    return error_response(request, status, exc.code, exc.message, details)


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] or parts
    return ".".join(parts) or "request"


def validation_message(errors: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """One readable sentence per bad field, and a structured list for ``details.fields``."""
    fields = []
    for err in errors:
        ctx = err.get("ctx") or {}
        accepted = ", ".join(f"{k}={v}" for k, v in ctx.items() if k in ("expected", "ge", "gt", "le", "lt", "min_length", "max_length", "pattern"))
        fields.append({
            "field": _field_name(err.get("loc", ())),
            "location": str(err.get("loc", ("body",))[0]),
            "message": str(err.get("msg", "invalid")),
            "accepted": accepted or None,
        })
    sentence = "; ".join(
        f"{f['field']}: {f['message']}" + (f" (accepted: {f['accepted']})" if f["accepted"] else "") for f in fields
    )
    return sentence or "invalid request", fields


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    message, fields = validation_message(list(exc.errors()))
    return error_response(request, 422, InvalidInput.code, message, {"fields": fields})


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    response = error_response(request, exc.status_code, code, message)
    for key, value in (exc.headers or {}).items():
        response.headers.setdefault(key, value)
    if exc.status_code == 405:  # every method of every route at this path, not just the first route's
        response.headers["Allow"] = ", ".join(request.app.state.routes.allowed(request.url.path))
    return response


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error in %s %s", request.method, request.url.path)
    return error_response(request, 500, "internal_error", f"internal error ({type(exc).__name__}); see the server log")


def install(app: FastAPI) -> None:
    app.add_exception_handler(StorageError, _storage_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
