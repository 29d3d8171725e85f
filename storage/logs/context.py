"""The ids of the operation being run, carried by a contextvar into every log line.

Field names are ECS (or ``storage.*`` for ours): ``trace.id`` (the request id that follows one
request across processes and hosts), ``storage.volume.id``, ``storage.backup.id``,
``storage.job.id``, ``event.action``. ``bind(...)`` opens a scope (a new dict, so an inner scope
never changes an outer one); ``annotate(...)`` adds ids to the innermost scope once an operation
has resolved them (a volume name to its id). ``carry()``/``restore()`` move the carryable part
(the trace id) to another thread or process: a job row stores it, the process running the job
binds it again.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

REQUEST_ID_MAX = 128
# Letters, digits and . _ : - (UUIDs, Cinder's req-<uuid>, most tracing ids); starts with a letter or digit.
REQUEST_ID = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}"
TRACE = "trace.id"
CARRIED = (TRACE,)  # what follows a request into jobs and other processes
# keyword -> ECS field, for bind()/annotate() callers
KEYS = {
    "trace_id": TRACE,
    "volume_id": "storage.volume.id",
    "backup_id": "storage.backup.id",
    "job_id": "storage.job.id",
    "snapshot_id": "storage.snapshot.id",
    "policy_id": "storage.policy.id",
    "action": "event.action",
}
ID_MAX = 255  # longer ids are cut: a log line is bounded

_current: ContextVar[dict[str, str]] = ContextVar("storage_log_context", default={})  # noqa: B039 - never mutated: see bind


def valid_request_id(value: str | None) -> str | None:
    """``value`` when it is an acceptable request id (1-128 of letters, digits, ``._:-``), else None."""
    if value is None or len(value) > REQUEST_ID_MAX or not re.fullmatch(REQUEST_ID, value):
        return None
    return value


def new_request_id() -> str:
    """``req-<uuid4>`` (Cinder's form), without importing uuid."""
    import os

    h = os.urandom(16).hex()
    return f"req-{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) % 4]}{h[17:20]}-{h[20:32]}"


def _fields(kwargs: Mapping[str, object]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in kwargs.items():
        if value is None:
            continue
        field = KEYS.get(key)
        if field is None:
            raise TypeError(f"unknown log context key {key!r}; accepted: {', '.join(KEYS)}")
        out[field] = str(value)[:ID_MAX]
    return out


def current() -> dict[str, str]:
    """The ECS fields of the innermost scope (a copy)."""
    return dict(_current.get())


def trace_id() -> str | None:
    return _current.get().get(TRACE)


@contextmanager
def bind(**kwargs: object) -> Iterator[dict[str, str]]:
    """A scope adding ``trace_id=``, ``volume_id=``, ``backup_id=``, ``job_id=``, ``action=``... to every line logged in it."""
    scope = {**_current.get(), **_fields(kwargs)}
    token = _current.set(scope)
    try:
        yield scope
    finally:
        _current.reset(token)


def annotate(**kwargs: object) -> None:
    """Add ids to the innermost scope (when there is one: outside any ``bind`` this does nothing)."""
    scope = _current.get()
    if scope:
        scope.update(_fields(kwargs))


def carry() -> dict[str, str]:
    """The part of the context that follows work into another thread or process (the trace id)."""
    scope = _current.get()
    return {k: scope[k] for k in CARRIED if k in scope}


@contextmanager
def restore(carried: Mapping[str, str] | None, **kwargs: object) -> Iterator[dict[str, str]]:
    """Bind what ``carry()`` returned elsewhere (values checked again: it may come from a database row)."""
    fields = {k: v for k, v in (carried or {}).items() if k in CARRIED and valid_request_id(v)}
    token = _current.set({**_current.get(), **fields})
    try:
        with bind(**kwargs) as scope:
            yield scope
    finally:
        _current.reset(token)


@contextmanager
def detached() -> Iterator[None]:
    """No ids at all inside (a server's own lines: each request binds its own)."""
    token = _current.set({})
    try:
        yield
    finally:
        _current.reset(token)


def bind_request(request_id: str) -> None:
    """Bind a request's id for the rest of the current task or thread (no scope to leave: an
    asyncio task's context ends with the task). Only for a server's per-request task."""
    _current.set({TRACE: request_id[:REQUEST_ID_MAX]})
