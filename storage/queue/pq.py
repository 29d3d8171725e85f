"""The procrastinate side: the dispatcher that defers jobs, the worker an agent runs.

One procrastinate task, ``storage.job(job_id)``: its only argument is the id of the job row in the
catalog, which holds the kind and JSON params (storage.queue.tasks); the worker calls
``JobService.execute(job_id)``. Queues and locks come from ``storage.queue.routing``.

Delivery is at least once. The agent's worker heartbeats (procrastinate's ``procrastinate_workers``
table); a worker silent for ``stalled_after`` seconds is stalled: every agent, when it starts
and then every ``stalled_after / 2`` seconds, hands the jobs of stalled workers on its queues
(its ``host.<name>`` and ``shared``; the policy-run worker's: ``runs.<name>``) back to ``todo``
(``retry_stalled``), so a job whose agent
was killed runs again on that host's restarted agent, or, for shared work, on any agent.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from storage.jobs.service import Dispatcher
from storage.queue.routing import Route, queues_of_agent, route

if TYPE_CHECKING:
    import procrastinate

    from storage.jobs.service import JobService

log = logging.getLogger("storage.queue")

TASK_NAME = "storage.job"
HostOf = Callable[[str, dict[str, Any]], "str | None"]


def conninfo(url: str) -> str:
    """A libpq connection string from the catalog's SQLAlchemy URL (``postgresql+psycopg://``)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def make_app(url: str, *, asynchronous: bool = False) -> "procrastinate.App":
    import procrastinate

    kwargs = {"conninfo": conninfo(url), "min_size": 1, "max_size": 4}
    connector = procrastinate.PsycopgConnector(**kwargs) if asynchronous else procrastinate.SyncPsycopgConnector(**kwargs)
    return procrastinate.App(connector=connector)


def ensure_schema(url: str) -> bool:
    """procrastinate's schema in the catalog database, applied when missing (idempotent)."""
    import psycopg

    from storage.queue.schema import apply_schema_sql

    with psycopg.connect(conninfo(url)) as conn:
        return apply_schema_sql(lambda sql: _Result(conn.execute(sql)))  # type: ignore[arg-type]


class _Result:
    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def scalar(self) -> Any:
        row = self._cursor.fetchone()
        return row[0] if row else None


class ProcrastinateDispatcher(Dispatcher):
    """Defers jobs on PostgreSQL; ``host_of(kind, params)`` names the host that owns a job's volume."""

    def __init__(self, url: str, host_of: HostOf) -> None:
        self._url = url
        self._host_of = host_of
        self._app: "procrastinate.App | None" = None
        self._lock = threading.Lock()

    def _opened(self) -> "procrastinate.App":
        with self._lock:
            if self._app is None:
                ensure_schema(self._url)
                app = make_app(self._url)
                app.open()
                self._app = app
            return self._app

    def route(self, kind: str, params: dict[str, Any]) -> Route:
        return route(kind, params, host=self._host_of(kind, params))

    def defer(self, job_id: str, kind: str, params: dict[str, Any]) -> str:
        r = self.route(kind, params)
        self._opened().configure_task(TASK_NAME, queue=r.queue, lock=r.lock).defer(job_id=job_id)
        return r.queue

    def close(self) -> None:
        with self._lock:
            if self._app is not None:
                self._app.close()
                self._app = None


class QueueWorker:
    """The procrastinate worker of an agent, in a thread of its own with its own event loop."""

    def __init__(self, url: str, host: str, jobs: "JobService", *, concurrency: int = 4,
                 heartbeat_interval: float = 10.0, stalled_after: float = 30.0, queues: list[str] | None = None,
                 name: str = "storage-agent") -> None:  # fmt: skip
        """``queues``: default the host's device-work queues (``host.<name>``, ``shared``); an
        agent's second worker takes ``runs.<name>`` (storage.queue.routing.run_queues_of_agent)."""
        self.url = url
        self.queues = queues or queues_of_agent(host)
        self.name = name
        self.jobs = jobs
        self.concurrency = concurrency
        self.heartbeat_interval = heartbeat_interval
        self.stalled_after = stalled_after
        self.retried: list[int] = []
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name=f"queue-worker-{self.name}", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # noqa: BLE001 - reported by the agent's loop
            self.error = exc
            log.warning("queue worker stopped: %s: %s", type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        finally:
            self.ready.set()

    async def _run(self) -> None:
        from procrastinate.worker import Worker

        ensure_schema(self.url)
        app = make_app(self.url, asynchronous=True)
        jobs = self.jobs

        import procrastinate

        # execute() records every failure of the task itself in the catalog; what escapes it is
        # the catalog being unreachable: procrastinate retries that, up to ~8 minutes
        @app.task(name=TASK_NAME, retry=procrastinate.RetryStrategy(max_attempts=8, exponential_wait=2))
        def run_job(job_id: str) -> None:
            jobs.execute(job_id)

        async with app.open_async():
            self._loop = asyncio.get_running_loop()
            self._worker = Worker(
                app, queues=self.queues, name=self.name, concurrency=self.concurrency,
                install_signal_handlers=False, update_heartbeat_interval=self.heartbeat_interval,
                stalled_worker_timeout=self.stalled_after, fetch_job_polling_interval=1.0,
                abort_job_polling_interval=2.0,
                delete_jobs="successful",  # the catalog's jobs row is the record; procrastinate's table stays small
            )  # fmt: skip
            watcher = asyncio.create_task(self._watch_stalled(app))
            try:
                await self._worker.run()
            finally:
                watcher.cancel()

    async def _watch_stalled(self, app: "procrastinate.App") -> None:
        first = True
        while True:
            try:
                await self.retry_stalled(app)
            except Exception as exc:  # noqa: BLE001 - the next round tries again
                log.warning("retrying stalled jobs failed: %s: %s", type(exc).__name__, exc)
            if first:
                self.ready.set()
                first = False
            await asyncio.sleep(max(1.0, self.stalled_after / 2))

    async def retry_stalled(self, app: "procrastinate.App") -> list[int]:
        """Jobs on this agent's queues whose worker stopped heartbeating: back to ``todo``."""
        retried = []
        for queue in self.queues:
            for job in await app.job_manager.get_stalled_jobs(queue=queue, seconds_since_heartbeat=self.stalled_after):
                await app.job_manager.retry_job(job)
                log.warning("job %s on queue %s: its worker stopped; delivered again", job.id, queue)
                retried.append(int(job.id))  # type: ignore[arg-type]
        self.retried.extend(retried)
        return retried

    def stop(self, timeout: float = 30.0) -> None:
        if self._loop is not None and self._worker is not None:
            self._loop.call_soon_threadsafe(self._worker.stop)
        if self._thread is not None:
            self._thread.join(timeout)
