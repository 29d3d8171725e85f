"""``@operation("volume.create")``: every operation logs one line when it ends.

The line carries ``event.action``, ``event.outcome`` (success/failure), ``event.duration``
(nanoseconds), the ids the operation resolved (``storage.volume.id``... from the result, or
``context.annotate`` calls inside) and, on failure, ``error.type``/``error.message`` (a typed
``StorageError`` is a warning without a stack trace; anything else an error with one). Every line
logged inside the operation carries its ids and action too (``context.bind``).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from storage.logs import context

log = logging.getLogger("storage.ops")
F = TypeVar("F", bound=Callable[..., Any])
# the class name of a result -> which id its ``id`` is
ID_OF = {
    "Volume": "volume_id", "Snapshot": "snapshot_id", "Backup": "backup_id", "JobInfo": "job_id", "Policy": "policy_id",
}  # fmt: skip
ID_ATTRS = ("volume_id", "backup_id", "job_id", "snapshot_id", "policy_id")
WRAPPED = ("volume", "backup", "job")


def ids_of(result: Any) -> dict[str, str]:
    """The ids an operation's result names: its own ``id`` by its class, and ``volume_id``-like attributes."""
    if result is None or type(result) in (str, bytes, int, float, bool, list, tuple, dict, set):
        return {}
    out: dict[str, str] = {}
    for attr in WRAPPED:  # a result wrapping the object (Placed.volume, a restore's result)
        inner = getattr(result, attr, None)
        if inner is not None and inner is not result:
            out.update(ids_of(inner))
    for attr in ID_ATTRS:
        value = getattr(result, attr, None)
        if isinstance(value, str) and value:
            out[attr] = value
    key = ID_OF.get(type(result).__name__)
    value = getattr(result, "id", None)
    if key and isinstance(value, str) and value:
        out[key] = value
    return out


def target_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """What the operation is about, for the message: the first argument after ``self`` that is a
    string or has a string ``name`` (a Policy)."""
    for value in (*args[1:], *kwargs.values()):
        name = value if isinstance(value, str) else getattr(value, "name", None)
        if isinstance(name, str) and name:
            return name[:120]
    return None


def outcome_level(exc: BaseException | None) -> int:
    """info for success, warning for a typed refusal (bad input, not found, conflict...), error otherwise."""
    if exc is None:
        return logging.INFO
    from storage.errors import StorageError

    return logging.WARNING if isinstance(exc, StorageError) else logging.ERROR


def finish(action: str, target: str | None, started_ns: int, exc: BaseException | None) -> None:
    """Log the end line of an operation (inside its scope, so its ids are on the line)."""
    level = outcome_level(exc)
    if not log.isEnabledFor(level):
        return
    duration = time.perf_counter_ns() - started_ns
    what = f"{action} {target}" if target else action
    extra = {"event.outcome": "failure" if exc else "success", "event.duration": duration, "event.kind": "event"}
    if exc is None:
        log.info("%s succeeded", what, extra={"ecs": extra})
        return
    message = getattr(exc, "message", None) or str(exc)
    extra.update({"error.type": type(exc).__name__, "error.message": message})
    log.log(level, "%s failed: %s", what, message, extra={"ecs": extra}, exc_info=exc if level >= logging.ERROR else None)


def operation(action: str) -> Callable[[F], F]:
    """Decorate a service method: its calls run in a log scope and end with one line (see module doc)."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter_ns()
            target = target_of(args, kwargs)
            with context.bind(action=action):
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:
                    finish(action, target, started, exc)
                    raise
                context.annotate(**ids_of(result))
                finish(action, target, started, None)
                return result

        return wrapper  # type: ignore[return-value]

    return decorate
