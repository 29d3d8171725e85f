"""Which routes serve a path: the role they need, ``HEAD`` wherever ``GET``, and a true ``Allow`` on 405.

FastAPI resolves a route only when it handles the request, after nothing of ours can look, and
when a path is served by several routes (``GET /volumes`` and ``POST /volumes`` are two)
Starlette's 405 names the methods of whichever route matched first. So ``create_app`` records
every route it mounts in a ``RouteTable`` (``app.state.routes``):

- ``RouteTable.required_role`` tells ``api.edge`` the least role before the body is read (admin
  where the route depends on ``require_admin``, operator for other changes, reader for reads);
- ``RouteTable.allowed`` is the union over every route whose path matches, HEAD next to GET;
  ``api.errors`` puts it into the ``Allow`` header of every 405;
- ``HeadAsGet`` serves ``HEAD`` through the path's ``GET`` route (unless a route declares HEAD,
  as object HEAD does), with the GET's headers and no body. The OpenAPI document lists GET only;
  HEAD follows it by HTTP's definition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fastapi.routing import APIRouter
from starlette.routing import BaseRoute, compile_path

from api.deps import require_admin

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _depends_on(dependant: Any, call: Any) -> bool:
    return any(d.call is call or _depends_on(d, call) for d in getattr(dependant, "dependencies", ()))


@dataclass(frozen=True)
class RouteEntry:
    regex: re.Pattern[str]
    methods: frozenset[str]
    admin: bool  # depends on require_admin
    params: int  # path parameters: fewer is more specific (/backups/gc over /backups/{backup_id})


MATCH_CACHE = 4096  # paths remembered (each at most MATCH_CACHE_PATH long), then forgotten at once
MATCH_CACHE_PATH = 256


@dataclass
class RouteTable:
    entries: list[RouteEntry] = field(default_factory=list)
    # path -> the entries matching it: every request asks (the edge's role, HEAD), and matching
    # a path against every route's regex cost about 0.1 ms of the event loop's CPU per request
    _matched: dict[str, tuple[RouteEntry, ...]] = field(default_factory=dict, repr=False)

    def add(self, path: str, methods: set[str] | frozenset[str] | None, dependant: Any = None) -> None:
        regex, _, convertors = compile_path(path)
        self.entries.append(RouteEntry(regex, frozenset(methods or ()), _depends_on(dependant, require_admin), len(convertors)))
        self._matched.clear()

    def add_router(self, router: APIRouter, prefix: str = "") -> None:
        for route in router.routes:
            self.add_route(route, prefix)

    def add_route(self, route: BaseRoute, prefix: str = "") -> None:
        path = getattr(route, "path", None)
        if isinstance(path, str):
            self.add(prefix + path, getattr(route, "methods", None), getattr(route, "dependant", None))

    def _matching(self, path: str) -> tuple[RouteEntry, ...]:
        found = self._matched.get(path)
        if found is None:
            found = tuple(e for e in self.entries if e.regex.match(path))
            if len(path) <= MATCH_CACHE_PATH:
                if len(self._matched) >= MATCH_CACHE:
                    self._matched.clear()
                self._matched[path] = found
        return found

    def allowed(self, path: str) -> list[str]:
        """The methods of the resource at this path (HEAD wherever GET), sorted.

        The resource is the most specific template that matches: ``/backups/gc`` is the gc
        resource (POST), not a backup named "gc", as the OpenAPI document describes it.
        """
        matching = self._matching(path)
        fewest = min((e.params for e in matching), default=0)
        methods: set[str] = set()
        for entry in matching:
            if entry.params == fewest:
                methods |= entry.methods
        if "GET" in methods:
            methods.add("HEAD")
        return sorted(methods)

    def declares(self, method: str, path: str) -> bool:
        return any(method in e.methods for e in self._matching(path))

    def required_role(self, method: str, path: str) -> str:
        """The least role that may call ``method`` at ``path``.

        No route serving it: any valid token, so the router answers 404 or 405 (with Allow), not 403.
        """
        declared = [e for e in self._matching(path) if method in e.methods]
        if any(e.admin for e in declared):
            return "admin"
        if not declared or method in SAFE_METHODS:
            return "reader"
        return "operator"


class HeadAsGet:
    """Answer HEAD through the path's GET route when no route declares HEAD."""

    def __init__(self, app: Any, table: RouteTable) -> None:
        self.app = app
        self.table = table

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if (scope["type"] != "http" or scope["method"] != "HEAD" or self.table.declares("HEAD", path)
                or not self.table.declares("GET", path)):
            await self.app(scope, receive, send)
            return

        async def without_body(message: dict) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                message = {**message, "body": b""}
            await send(message)

        await self.app(dict(scope, method="GET"), receive, without_body)
