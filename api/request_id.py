"""Request ids and the access line: ``X-Request-ID`` in, the same id out, on every log line between.

``RequestIdMiddleware`` wraps the whole application (outside Starlette's error middleware, so a
500 answer carries the id too). It takes the client's ``X-Request-ID`` when it is acceptable
(``storage.logs.context.valid_request_id``: 1-128 of letters, digits, ``._:-``), else makes one
(``req-<uuid4>``), binds it as ``trace.id`` for everything the request logs (and every job it
submits stores it: ``jobs.request_id``), answers it in ``X-Request-ID`` and writes one access line
per request (``event.action: http.request``, method, path, status, duration, client, token id).
The choice of the id and the access fields are pure functions.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from api.errors import is_cinder_path
from storage.logs import context

log = logging.getLogger("storage.api.access")
HEADER = b"x-request-id"
OPENSTACK_HEADER = b"x-openstack-request-id"  # what Cinder answers (and OpenStack clients may send)
PATH_MAX = 1024  # characters of the path on the access line
HEALTH_PATHS = frozenset({"/healthz", "/healthcheck"})


def request_id_of(headers: list[tuple[bytes, bytes]]) -> tuple[str, bool]:
    """(the id to use, whether the client's was taken): the first X-Request-ID (else the first
    X-OpenStack-Request-ID) when acceptable, else a new one."""
    named = [(n.lower(), v) for n, v in headers if n.lower() in (HEADER, OPENSTACK_HEADER)]
    named.sort(key=lambda item: item[0] != HEADER)  # X-Request-ID first
    for _name, value in named[:1]:
            try:
                text = value.decode("ascii")
            except UnicodeDecodeError:
                break
            accepted = context.valid_request_id(text)
            return (accepted, True) if accepted else (context.new_request_id(), False)
    return context.new_request_id(), False


def access_level(path: str, status: int) -> int:
    """debug for a health probe that succeeds (a load balancer asks every second), info otherwise."""
    return logging.DEBUG if path in HEALTH_PATHS and status < 400 else logging.INFO


def access_fields(scope: dict[str, Any], status: int, duration_ns: int) -> dict[str, Any]:
    """The ECS fields of the access line of one request."""
    principal = (scope.get("state") or {}).get("principal")
    client = scope.get("client") or (None, None)
    return {
        "http.request.method": scope.get("method"),
        "url.path": (scope.get("path") or "")[:PATH_MAX],
        "http.response.status_code": status,
        "event.duration": duration_ns,
        "event.outcome": "success" if status < 400 else "failure",
        "event.kind": "event",
        "client.ip": client[0],
        "user.id": getattr(principal, "token_id", None),
        "user.name": getattr(principal, "name", None),
        "user.roles": [principal.role] if principal is not None else None,
    }


class RequestIdMiddleware:
    """See the module docstring. Wrap the built application: ``RequestIdMiddleware(app.build_middleware_stack())``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid, _taken = request_id_of(scope.get("headers") or [])
        started = time.perf_counter_ns()
        status = 500  # when the application fails before it answers

        async def send_with_id(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in (HEADER, OPENSTACK_HEADER)]
                extra = [(HEADER, rid.encode("ascii"))]
                if is_cinder_path(scope.get("path") or ""):  # as Cinder answers it
                    extra.append((OPENSTACK_HEADER, rid.encode("ascii")))
                message = {**message, "headers": [*headers, *extra]}
            await send(message)

        # Each request is its own task: the id stays bound until the task ends, so lines logged
        # after this coroutine returns (the server's own error line) carry it too.
        context.bind_request(rid)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            fields = access_fields(scope, status, time.perf_counter_ns() - started)
            log.log(access_level(scope.get("path") or "", status), "%s %s %s", scope["method"], fields["url.path"], status,
                    extra={"ecs": {"event.action": "http.request", **fields}})  # fmt: skip


def install(app: Any) -> None:
    """Make ``RequestIdMiddleware`` the outermost layer of a Starlette/FastAPI app."""
    build = app.build_middleware_stack

    def build_with_request_id() -> Any:
        return RequestIdMiddleware(build())

    app.build_middleware_stack = build_with_request_id
