"""Long operations (backup, restore, verify, wipe, gc) as persisted, cancellable jobs.

``JobService.submit(kind, work)`` records a job in the catalog and runs ``work(ctx)`` in a
worker thread. ``ctx.progress(done, total)`` is the progress callback to hand to a service call
and ``ctx.cancel`` the ``threading.Event`` to hand as its ``cancel=``. Progress is written to the
catalog at most every ``PROGRESS_INTERVAL`` seconds; a cancel request is stored in the catalog
too, so any process (another API worker, ``storagectl job cancel``) can cancel a job and the
owning process sees it on its next progress write.

Each job records its owner (host, pid and the pid's start time). When a service starts, jobs
still ``queued``/``running`` whose owner process is gone are marked ``interrupted``: a job is
never silently lost.

Jobs are named tasks (``storage.queue.tasks``: kind -> function(st, ctx, **params), JSON params).
Where one runs is the dispatcher's choice (``storage.queue``): in a thread of this process (the
single-host default), or deferred on a procrastinate queue (``jobs.queue``: ``host.<name>`` or
``shared``) to an agent that calls ``execute(job_id)``; such jobs are left to the queue's own
at-least-once delivery, never marked interrupted by ``recover`` here.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from sqlalchemy import select, update

from storage.catalog.api_tables import Job
from storage.errors import Cancelled, Conflict, InvalidInput, NotFound, StorageError
from storage.logs import context as log_context
from storage.jobs.pure import (  # noqa: F401 - the pure helpers, importable from here as before
    current_owner, describe_report, eta_seconds, jsonable, owner_alive, parse_owner, percent, process_start_time,
    redact_params,
)

if TYPE_CHECKING:
    from storage.catalog import Catalog

log = logging.getLogger("storage.jobs")
PROGRESS_INTERVAL = 0.5  # seconds between progress writes
MAX_CONCURRENT_JOBS = 2


class JobState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


ACTIVE_STATES = (JobState.QUEUED.value, JobState.RUNNING.value)
TERMINAL_STATES = tuple(s.value for s in JobState if s.value not in ACTIVE_STATES)


class JobInfo(BaseModel):
    id: str
    kind: str
    target: str | None
    state: JobState
    params: dict[str, Any]
    bytes_done: int
    bytes_total: int | None
    percent: float | None
    rate_bytes_per_s: float | None
    eta_seconds: float | None
    result: Any = None
    error: dict[str, Any] | None
    cancel_requested: bool
    created_by: str | None
    message: str | None
    request_id: str | None = None  # the submitting request's X-Request-ID: trace.id of the job's log lines
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    queue: str | None = None  # the work queue carrying it (host.<name>, shared); None: run in process
    attempts: int = 0  # deliveries so far (> 1: its first runner died and the queue delivered it again)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _info(row: Job, *, shown: bool = False) -> JobInfo:
    """The job as plain data; ``shown`` (get, list: what readers see) with secrets in params redacted."""
    return JobInfo(
        id=row.id,
        kind=row.kind,
        target=row.target,
        state=JobState(row.state),
        params=redact_params(row.params or {}) if shown else (row.params or {}),
        bytes_done=row.bytes_done,
        bytes_total=row.bytes_total,
        percent=percent(row.bytes_done, row.bytes_total),
        rate_bytes_per_s=row.rate_bytes_per_s,
        eta_seconds=eta_seconds(row.bytes_done, row.bytes_total, row.rate_bytes_per_s)
        if row.state == JobState.RUNNING.value
        else None,
        result=row.result,
        error=row.error,
        cancel_requested=row.cancel_requested,
        created_by=row.created_by,
        message=row.message,
        request_id=row.request_id,
        created_at=_aware(row.created_at),  # type: ignore[arg-type]
        started_at=_aware(row.started_at),
        finished_at=_aware(row.finished_at),
        updated_at=_aware(row.updated_at),  # type: ignore[arg-type]
        queue=row.queue,
        attempts=int(row.attempts or 0),
    )


def job_log_scope(job_id: str, request_id: str | None) -> Any:
    """The log scope of a job wherever it runs: its id and the request id stored with it
    (``JobInfo.request_id``), so every line carries the submitting request's ``trace.id``. A
    process running a job it did not submit (a host agent) enters it with the row's values."""
    return log_context.restore({log_context.TRACE: request_id} if request_id else None, job_id=job_id)


def log_finish(ctx: "JobContext", state: str, elapsed: float, error: dict | None) -> None:
    """The job's end line: event.action job.run, outcome and duration, its kind and final state."""
    outcome = "success" if state == JobState.SUCCEEDED.value else "failure"
    fields: dict[str, Any] = {
        "event.action": "job.run", "event.outcome": outcome, "event.duration": int(elapsed * 1e9),
        "storage.job.kind": ctx.kind, "storage.job.state": state,
    }  # fmt: skip
    if error:
        fields.update({"error.type": error.get("code"), "error.message": error.get("message")})
    level = logging.INFO if outcome == "success" else logging.WARNING
    log.log(level, "job %s %s %s", ctx.kind, ctx.job_id, state, extra={"ecs": fields})


class JobContext:
    """Handed to a job's work function: the progress callback and the cancel event."""

    def __init__(self, service: "JobService", job_id: str, kind: str = "job", request_id: str | None = None) -> None:
        self.job_id = job_id
        self.kind = kind
        self.request_id = request_id  # trace.id of every line the job logs (storage.logs.context)
        self.attempt = 1  # > 1 when the queue delivers the job again (its first runner died)
        self.cancel = threading.Event()
        self._service = service
        self._started = time.monotonic()
        self._last_write = 0.0
        self._done = 0
        self._total: int | None = None
        self._message: str | None = None

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()

    def progress(self, done: Any, total: int | None = None) -> None:
        """Progress callback: ``(bytes_done, bytes_total)`` or one report object with ``done``, ``total``
        (and optionally ``phase`` and byte counters, kept as the job's message). Cheap: writes at
        most every 0.5 s."""
        if not isinstance(done, (int, float)):
            report = done
            total = getattr(report, "total", None)
            self._message = describe_report(report)
            done = getattr(report, "done", 0)
        self._done, self._total = int(done), (int(total) if total else self._total)
        now = time.monotonic()
        if now - self._last_write >= PROGRESS_INTERVAL:
            self._last_write = now
            self.flush()

    def check_cancelled(self) -> None:
        if self.cancel.is_set():
            raise Cancelled(f"job {self.job_id} was cancelled", job=self.job_id)

    def flush(self) -> None:
        elapsed = max(time.monotonic() - self._started, 1e-6)
        rate = self._done / elapsed if self._done else None
        if self._service._write_progress(self.job_id, self._done, self._total, rate, self._message):
            self.cancel.set()


WorkFn = Callable[[JobContext], Any]
Runner = Callable[[str, JobContext, dict[str, Any]], Any]  # (kind, ctx, params) -> result: runs a named task


class Dispatcher:
    """Where queued jobs go when they do not run in a thread of this process (storage.queue)."""

    def defer(self, job_id: str, kind: str, params: dict[str, Any]) -> str:
        """Queue the job; return the queue's name (recorded in ``jobs.queue``)."""
        raise NotImplementedError


class JobService:
    """Runs and records jobs; one instance per process (``st.jobs``)."""

    def __init__(
        self, catalog: "Catalog", *, max_concurrent: int = MAX_CONCURRENT_JOBS, runner: Runner | None = None,
        dispatcher: Dispatcher | None = None,
    ) -> None:  # fmt: skip
        """runner: runs a named task in this process; dispatcher: None runs jobs in threads here."""
        self._catalog = catalog
        self._runner = runner
        self.dispatcher = dispatcher
        self._owner = current_owner()
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._contexts: dict[str, JobContext] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._shutting_down = False
        self.recovered = self.recover()

    # -- queries ----------------------------------------------------------------------------
    def get(self, job_id: str) -> JobInfo:
        with self._catalog.session() as session:
            row = session.get(Job, job_id)
            if row is None:
                raise NotFound(f"job {job_id!r} does not exist; see `storagectl job list`", job=job_id)
            return _info(row, shown=True)

    def list(self, state: str | None = None, kind: str | None = None, limit: int = 100) -> list[JobInfo]:
        if state is not None and state not in {s.value for s in JobState}:
            raise InvalidInput(
                f"job state {state!r} is not accepted; accepted: {', '.join(s.value for s in JobState)}",
                field="state",
            )
        if limit < 1 or limit > 10000:
            raise InvalidInput(f"limit {limit} is not accepted; accepted: 1-10000", field="limit")
        query = select(Job).order_by(Job.created_at.desc()).limit(limit)
        if state:
            query = query.where(Job.state == state)
        if kind:
            query = query.where(Job.kind == kind)
        with self._catalog.session() as session:
            return [_info(r, shown=True) for r in session.scalars(query).all()]

    def counts_by_state(self) -> dict[str, int]:
        from sqlalchemy import func

        with self._catalog.session() as session:
            rows = session.execute(select(Job.state, func.count()).group_by(Job.state)).all()
        counts = {s.value: 0 for s in JobState}
        counts.update({state: n for state, n in rows})
        return counts

    # -- lifecycle --------------------------------------------------------------------------
    def submit(
        self,
        kind: str,
        work: WorkFn | None = None,
        *,
        target: str | None = None,
        params: dict[str, Any] | None = None,
        total: int | None = None,
        created_by: str | None = None,
    ) -> JobInfo:
        """Record a job and run it: the named task ``kind`` with ``params`` (or ``work(ctx)``, a
        function of this process, run in a thread here). Returns the queued job."""
        if self._shutting_down:
            raise Conflict("the service is shutting down; no new jobs are accepted")
        if work is None and self._runner is None:
            raise InvalidInput(f"job kind {kind!r}: this job service runs no named tasks", field="kind")
        remote = work is None and self.dispatcher is not None
        now = datetime.now(UTC)
        with self._catalog.session() as session:
            row = Job(
                kind=kind, target=target, state=JobState.QUEUED.value, params=jsonable(params or {}),
                bytes_done=0, bytes_total=total, cancel_requested=False, owner=None if remote else self._owner,
                created_by=created_by, created_at=now, updated_at=now, request_id=log_context.trace_id(),
            )
            session.add(row)
            session.flush()
            info = _info(row)
        log.info("job %s %s submitted", kind, info.id, extra={"ecs": {"storage.job.kind": kind, "storage.job.id": info.id, "event.action": "job.submit"}})
        if remote:
            try:
                queue = self.dispatcher.defer(info.id, kind, info.params)  # type: ignore[union-attr]
            except StorageError as exc:
                self._fail_unqueued(info.id, exc)
                raise
            with self._catalog.session() as session:
                session.execute(update(Job).where(Job.id == info.id).values(queue=queue))
            return info
        ctx = JobContext(self, info.id, kind, info.request_id)
        ctx._total = total
        fn: WorkFn = work if work is not None else (lambda c: self._runner(kind, c, info.params))  # type: ignore[misc]
        thread = threading.Thread(target=self._run, args=(ctx, fn), name=f"job-{kind}-{info.id[:8]}", daemon=True)
        with self._lock:
            self._contexts[info.id] = ctx
            self._threads[info.id] = thread
        thread.start()
        return info

    def _fail_unqueued(self, job_id: str, exc: StorageError) -> None:
        now = datetime.now(UTC)
        with self._catalog.session() as session:
            session.execute(update(Job).where(Job.id == job_id).values(
                state=JobState.FAILED.value, error=exc.to_dict(), finished_at=now, updated_at=now,
                message="the job could not be queued"))  # fmt: skip

    def execute(self, job_id: str) -> JobState | None:
        """Run a recorded, queued job here (the queue's worker calls it; at least once).

        A job still ``running`` was started by a runner that died (the queue found it stalled and
        delivered it again): it runs again as attempt n+1, its task being safe to re-run. A job
        already finished (a duplicate delivery) or unknown is left alone. Returns the final state."""
        if self._runner is None:
            raise InvalidInput("this job service runs no named tasks", field="kind")
        now = datetime.now(UTC)
        with self._catalog.session() as session:
            row = session.get(Job, job_id)
            if row is None or row.state not in ACTIVE_STATES:
                return None if row is None else JobState(row.state)
            attempt = int(row.attempts or 0) + 1
            previous = row.owner
            if row.state == JobState.RUNNING.value:
                row.state = JobState.QUEUED.value
                row.message = f"attempt {attempt}: the runner of attempt {attempt - 1} ({previous}) stopped before it finished"
            row.attempts = attempt
            row.owner = self._owner
            row.updated_at = now
            kind, params, total, request_id = row.kind, dict(row.params or {}), row.bytes_total, row.request_id
        ctx = JobContext(self, job_id, kind, request_id)
        ctx.attempt = attempt
        ctx._total = total
        with self._lock:
            self._contexts[job_id] = ctx
        # no slot: the queue's worker bounds its own concurrency ([cluster] worker_concurrency)
        self._run(ctx, lambda c: self._runner(kind, c, params), slots=contextlib.nullcontext())  # type: ignore[misc]
        return self.get(job_id).state

    def cancel(self, job_id: str) -> JobInfo:
        """Ask a job to stop. A queued job is cancelled at once; a running one at its next check."""
        with self._catalog.session() as session:
            row = session.get(Job, job_id)
            if row is None:
                raise NotFound(f"job {job_id!r} does not exist; see `storagectl job list`", job=job_id)
            if row.state not in ACTIVE_STATES:
                raise Conflict(
                    f"job {job_id} is {row.state}; only queued or running jobs can be cancelled",
                    job=job_id, state=row.state,
                )
            row.cancel_requested = True
            row.updated_at = datetime.now(UTC)
        ctx = self._contexts.get(job_id)
        if ctx is not None:
            ctx.cancel.set()
        return self.get(job_id)

    def wait(self, job_id: str, timeout: float | None = None) -> JobInfo:
        """Block until the job is no longer active (or timeout); returns its latest state."""
        thread = self._threads.get(job_id)
        if thread is not None:
            thread.join(timeout)
            return self.get(job_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.005  # a job of another process (a queue's agent): poll its row, 5 ms doubling to 100 ms
        while True:
            info = self.get(job_id)
            if info.state.value not in ACTIVE_STATES or (deadline is not None and time.monotonic() >= deadline):
                return info
            time.sleep(pause if deadline is None else max(0.0, min(pause, deadline - time.monotonic())))
            pause = min(0.1, pause * 2)

    def recover(self) -> list[str]:
        """Mark queued/running jobs whose owner process is gone as interrupted; return their ids."""
        with self._catalog.session() as session:
            rows = session.scalars(select(Job).where(Job.state.in_(ACTIVE_STATES))).all()
            lost = [r for r in rows if r.queue is None and r.owner != self._owner and not owner_alive(r.owner)]
            now = datetime.now(UTC)
            for row in lost:
                row.state = JobState.INTERRUPTED.value
                row.finished_at = now
                row.updated_at = now
                row.message = "the process running this job stopped before it finished"
        return [r.id for r in lost]

    def shutdown(self, timeout: float = 10.0) -> None:
        """Ask running jobs to stop and wait for them; those stopped are marked interrupted."""
        self._shutting_down = True
        with self._lock:
            contexts = list(self._contexts.values())
            threads = list(self._threads.values())
        for ctx in contexts:
            ctx.cancel.set()
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        now = datetime.now(UTC)
        with self._catalog.session() as session:
            session.execute(
                update(Job)
                .where(Job.owner == self._owner, Job.state.in_(ACTIVE_STATES), Job.queue.is_(None))
                .values(state=JobState.INTERRUPTED.value, finished_at=now, updated_at=now,
                        message="the service stopped before this job finished")
            )

    # -- worker -----------------------------------------------------------------------------
    def _run(self, ctx: JobContext, work: WorkFn, slots: "AbstractContextManager[Any] | None" = None) -> None:
        # a worker thread starts with an empty context: bind the job's ids (and its request's, from the row)
        with job_log_scope(ctx.job_id, ctx.request_id):
            self._run_bound(ctx, work, slots)

    def _run_bound(self, ctx: JobContext, work: WorkFn, slots: "AbstractContextManager[Any] | None" = None) -> None:
        try:
            with slots if slots is not None else self._slots:
                if not self._start(ctx):
                    return
                ctx._started = time.monotonic()
                try:
                    result = work(ctx)
                except Cancelled as exc:
                    self._finish(ctx, self._stopped_state(), error=exc.to_dict())
                except StorageError as exc:
                    state = self._stopped_state() if ctx.cancelled else JobState.FAILED
                    self._finish(ctx, state, error=exc.to_dict())
                except Exception as exc:  # noqa: BLE001 - recorded, never lost
                    state = self._stopped_state() if ctx.cancelled else JobState.FAILED
                    self._finish(ctx, state, error={"code": "internal_error", "message": f"{type(exc).__name__}: {exc}"})
                else:
                    self._finish(ctx, JobState.SUCCEEDED, result=jsonable(result))
        finally:
            with self._lock:
                self._contexts.pop(ctx.job_id, None)
                self._threads.pop(ctx.job_id, None)

    def _stopped_state(self) -> JobState:
        return JobState.INTERRUPTED if self._shutting_down else JobState.CANCELLED

    def _start(self, ctx: JobContext) -> bool:
        now = datetime.now(UTC)
        with self._catalog.session() as session:
            row = session.get(Job, ctx.job_id)
            if row is None or row.state != JobState.QUEUED.value:
                return False
            if row.cancel_requested or ctx.cancelled:
                row.state = self._stopped_state().value
                row.finished_at = row.updated_at = now
                row.error = Cancelled(f"job {ctx.job_id} was cancelled before it started").to_dict()
                return False
            row.state = JobState.RUNNING.value
            row.started_at = row.updated_at = now
        return True

    def _write_progress(self, job_id: str, done: int, total: int | None, rate: float | None, message: str | None = None) -> bool:
        """Store progress; return True when a cancel was requested (by any process)."""
        with self._catalog.session() as session:
            row = session.get(Job, job_id)
            if row is None:
                return False
            row.bytes_done = done
            if total:
                row.bytes_total = total
            row.rate_bytes_per_s = rate
            if message:
                row.message = message
            row.updated_at = datetime.now(UTC)
            return bool(row.cancel_requested)

    def _finish(self, ctx: JobContext, state: JobState, *, result: Any = None, error: dict | None = None) -> None:
        elapsed = max(time.monotonic() - ctx._started, 1e-6)
        log_finish(ctx, state.value, elapsed, error)
        now = datetime.now(UTC)
        with self._catalog.session() as session:
            row = session.get(Job, ctx.job_id)
            if row is None:
                return
            row.state = state.value
            row.bytes_done = ctx._done
            if ctx._total:
                row.bytes_total = ctx._total
            row.rate_bytes_per_s = ctx._done / elapsed if ctx._done else None
            row.result = result
            row.error = error
            if ctx._message:
                row.message = ctx._message
            row.finished_at = row.updated_at = now
