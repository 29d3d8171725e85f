"""The FastAPI application: ``create_app(settings_or_storage)``.

    uvicorn --factory api.main:app_from_env     # reads STORAGE_CONFIG / STORAGE_* like storagectl

Routers live in ``api/routes`` (native API) and ``api/cinder`` (the Cinder v3 subset).
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI

import storage
from api import errors, request_id, ui
from api.coalesce import Coalescer
from api.edge import EdgeMiddleware
from api.idempotency import IdempotencyMiddleware
from api.methods import HeadAsGet, RouteTable
from api.metrics import MetricsMiddleware, RequestStats
from api.openapi_links import add_links
from api.routes.health import CatalogProbe
from storage.config import Settings
from storage.service import Storage

if TYPE_CHECKING:
    from storage.hosts.replicas import ReplicaLease

NATIVE_ROUTERS = [
    "api.routes.health",
    "api.routes.metrics",
    "api.routes.jobs",
    "api.routes.tokens",
    "api.routes.pools",
    "api.routes.volumes",
    "api.routes.snapshots",
    "api.routes.backup_serves",  # before backups: GET /backups/serves is not a backup id
    "api.routes.backups",
    "api.routes.objects",
    "api.routes.policies",
    "api.routes.exports",
    "api.routes.hosts",
    "api.routes.apply",
]
log = logging.getLogger("storage.api")
TOKEN_CACHE_SECONDS = 2.0  # a revocation by another process applies within this long

CINDER_MODULES = [
    "api.cinder.versions",
    "api.cinder.volumes",
    "api.cinder.snapshots",
    "api.cinder.metadata",
    "api.cinder.limits",
    "api.cinder.backups",
    "api.cinder.pools",
]


def start_local_refresh(st: Storage) -> threading.Event:
    """Single host (no [cluster]): the server keeps this host's services row fresh, as an agent
    would, so other readers of the catalog see it up. Set the returned event to stop."""
    stop = threading.Event()
    if st.settings.cluster is not None:
        return stop  # several hosts: only `storagectl agent` heartbeats
    interval = st.settings.cluster_settings.heartbeat_interval

    def loop() -> None:
        while not stop.is_set():
            try:
                st.hosts.refresh_local()
            except Exception as exc:  # noqa: BLE001 - a catalog hiccup must not end the refresh
                from storage.hosts.agent import one_line

                log.warning("refreshing this host's services row failed: %s", one_line(exc))
            stop.wait(interval)

    threading.Thread(target=loop, name="host-refresh", daemon=True).start()
    return stop


def start_replica_lease(st: Storage) -> "ReplicaLease | None":
    """With a work queue, this replica's liveness lease (storage.hosts.replicas): the agents settle
    the statuses it owned once it is gone, also from another machine. None without a queue."""
    if not st.queued or st.agent:
        return None
    from storage.hosts.replicas import ReplicaLease

    return ReplicaLease(st.catalog, st.settings.cluster_settings.heartbeat_interval).start()


def create_app(config: Settings | Storage | str | os.PathLike[str] | None = None, *, job_shutdown_timeout: float = 5.0) -> FastAPI:
    """Build the app. A given Storage is used as is (and not closed); otherwise one is opened."""
    owned = not isinstance(config, Storage)
    st = config if isinstance(config, Storage) else storage.open(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _ = st.jobs  # starting the job service marks jobs of dead processes interrupted
        _drain_on_signals(app)
        stop_refresh = start_local_refresh(st)
        lease = start_replica_lease(st)
        try:
            yield
        finally:
            stop_refresh.set()
            if lease is not None:
                lease.stop()
            from storage.nbd.managed import stop_all_here

            stop_all_here()  # backups this process serves: nbdkit stopped, locks released, rows dropped
            st.jobs.shutdown(timeout=job_shutdown_timeout)
            if owned:
                st.close()

    app = FastAPI(
        title="storage admin API",
        version=storage.__version__,
        summary="Volumes, snapshots, pools, objects, backups, policies and jobs on one host.",
        lifespan=lifespan,
    )
    app.state.storage = st
    st.tokens.cache_seconds = TOKEN_CACHE_SECONDS
    app.state.request_stats = RequestStats()
    app.state.coalescer = Coalescer()
    app.state.draining = False  # SIGUSR1 sets it, SIGUSR2 clears it; GET /healthcheck answers 503 while set
    app.state.catalog_probe = CatalogProbe(st)
    errors.install(app)
    # every route mounted is also recorded here: roles before the body, HEAD and Allow (api/methods.py)
    app.state.routes = table = RouteTable()
    for route in app.router.routes:  # FastAPI's own: the OpenAPI document and its viewers
        table.add_route(route)
    for name in NATIVE_ROUTERS:
        router = importlib.import_module(name).router
        app.include_router(router)
        table.add_router(router)
    for name in CINDER_MODULES:
        importlib.import_module(name).register(app)
    _publish_links(app)
    ui.register(app)  # the web dashboard at /ui (api/ui)
    app.add_middleware(HeadAsGet, table=table)
    # Idempotency-Key on POST: inside the edge, so the caller is known and the body bounded (api/idempotency.py)
    app.add_middleware(IdempotencyMiddleware, storage=st)
    # authentication and the body limit run before any route reads a body; metrics see their refusals
    app.add_middleware(EdgeMiddleware, storage=st, table=table)
    app.add_middleware(MetricsMiddleware, stats=app.state.request_stats)
    request_id.install(app)  # outermost: X-Request-ID in and out, trace.id on every line, the access line
    return app


def _drain_on_signals(app: FastAPI) -> None:
    """SIGUSR1 drains this process (``/healthcheck`` answers 503), SIGUSR2 undrains it.

    Only where the event loop runs in the main thread (``storagectl serve``); an app run by a test
    client in another thread has no signal handlers and drains by the drain file alone.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    import asyncio

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, setattr, app.state, "draining", True)
    loop.add_signal_handler(signal.SIGUSR2, setattr, app.state, "draining", False)


def _publish_links(app: FastAPI) -> None:
    """The OpenAPI document carries links between operations (api/openapi_links.py)."""
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = add_links(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory``: the config comes from STORAGE_CONFIG and STORAGE_*."""
    from storage.config import load_settings
    from storage.logs import setup

    config = os.environ.get("STORAGE_CONFIG")
    settings = load_settings(Path(config) if config else None)
    # a worker process logs like `storagectl serve` (which passes its choice in STORAGE_LOGGING__*)
    setup.configure(service="storage-api", host=settings.host_name, config_format=settings.logging.format,
                    config_level=settings.logging.level, daemon=True)  # fmt: skip
    return create_app(settings)
