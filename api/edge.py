"""The API's edge: authentication and a body limit, enforced before any route reads the body.

``EdgeMiddleware`` is a plain ASGI middleware, so it runs before FastAPI parses a request body:

1. Every path but the public ones and the web dashboard's (``/ui``, which authenticates its own
   session cookie before it reads a body: ``api.ui.web``) (``/healthz``, ``/healthcheck``, the Cinder version documents, the OpenAPI
   document and its viewers) needs a valid token; without one the answer is 401 and not one byte
   of the body is read (malformed JSON without a token is 401, not 422). The role the route
   needs (``api.methods.RouteTable.required_role``: admin where it depends on ``require_admin``, operator for other
   changes, reader for reads) is checked here too (403), as the route's dependencies check again.
2. The body is bounded: ``api.max_body_bytes`` for every request, ``api.max_object_bytes`` for
   object uploads (they stream to a spool file). A ``Content-Length`` over the limit is refused
   413 at once; a chunked body is counted while the route reads it and refused 413 at the limit.

The decisions (``is_public``, ``body_limit``, ``bearer_of``) are pure functions.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from api.errors import error_response
from api.methods import SAFE_METHODS, RouteTable
from api.ui import is_ui_path
from storage.auth.service import Principal
from storage.config import ApiConfig
from storage.errors import AuthenticationFailed, StorageError
from storage.service import Storage

PUBLIC_PATHS = frozenset({"/healthz", "/healthcheck", "/", "/v3", "/v3/", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
OBJECT_UPLOAD = re.compile(r"^/object-stores/[^/]+/containers/[^/]+/objects/.+")


def is_public(method: str, path: str) -> bool:
    """Only reads of the health check, the version documents and the API description need no token."""
    return method in SAFE_METHODS and path in PUBLIC_PATHS


def body_limit(method: str, path: str, api: ApiConfig) -> int:
    """The most bytes of body this request may carry."""
    if method == "PUT" and OBJECT_UPLOAD.match(path):
        return api.max_object_bytes
    return api.max_body_bytes


def bearer_of(headers: Headers) -> str | None:
    """The token of ``Authorization: Bearer <token>`` or, as python-cinderclient sends it, ``X-Auth-Token``."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return headers.get("x-auth-token") or None


def too_large(limit: int, what: str = "request body") -> HTTPException:
    return HTTPException(413, f"{what} is larger than the limit of {limit} bytes (api.max_body_bytes / api.max_object_bytes)")


class EdgeMiddleware:
    """Authenticate, then bound the body; see the module docstring."""

    def __init__(self, app: Any, storage: Storage, table: RouteTable) -> None:
        self.app = app
        self.storage = storage
        self.table = table

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        headers = Headers(scope=scope)
        if not is_public(method, path) and not is_ui_path(path):
            try:
                role = self.table.required_role(method, path)
                bearer = bearer_of(headers)  # a cached token is a dict lookup: no thread hop
                principal = self.storage.tokens.cached(bearer) or await run_in_threadpool(self._principal, bearer)
                principal.require(role)
            except StorageError as exc:
                await self._refuse(scope, receive, send, exc.http_status, exc.code, exc.message)
                return
            scope.setdefault("state", {})["principal"] = principal
        limit = body_limit(method, path, self.storage.settings.api)
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isascii() or not declared.isdigit() or len(declared) > 20:
                await self._refuse(scope, receive, send, 400, "bad_request", "Content-Length is not a whole number of bytes")
                return
            if int(declared) > limit:
                await self._refuse(scope, receive, send, 413, "too_large", too_large(limit).detail)
                return
        await self.app(scope, _counting(receive, limit), send)

    def _principal(self, token: str | None) -> Principal:
        if not token:
            raise AuthenticationFailed("missing token: send 'Authorization: Bearer <token>' (or X-Auth-Token)")
        return self.storage.tokens.authenticate(token)

    @staticmethod
    async def _refuse(scope: dict, receive: Any, send: Any, status: int, code: str, message: str) -> None:
        response = error_response(Request(scope), status, code, message)
        response.headers["Connection"] = "close"  # the unread body is not drained: the connection ends here
        await response(scope, receive, send)


def _counting(receive: Any, limit: int) -> Any:
    """``receive`` that raises 413 (an HTTPException FastAPI passes through) once the body passes ``limit``."""
    seen = 0

    async def wrapped() -> dict:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise too_large(limit)
        return message

    return wrapped
