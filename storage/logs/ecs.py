"""ECS formatting: one JSON object per line (``EcsFormatter``) or one readable line (``TextFormatter``).

Keys are flat dotted ECS names (``"log.level"``, ``"storage.volume.id"``); Filebeat's ndjson
parser with ``expand_keys: true`` turns them into objects (scripts/logging/). ``FIELDS`` is every
key a line can carry: the ingest pipeline and its test are checked against it, and a field a log
call passes (``extra={"ecs": {...}}``) that is not in it is dropped, not written.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from storage.logs import context, redact

ECS_VERSION = "8.11.0"
BASE_FIELDS = (
    "@timestamp", "log.level", "message", "log.logger", "ecs.version", "service.name", "host.name",
    "process.pid", "process.thread.name",
)  # fmt: skip
CONTEXT_FIELDS = (
    "trace.id", "http.request.id", "event.action", "storage.volume.id", "storage.backup.id", "storage.job.id",
    "storage.snapshot.id", "storage.policy.id",
)  # fmt: skip
EVENT_FIELDS = (
    "event.outcome", "event.duration", "event.kind", "event.dataset", "error.type", "error.message", "error.stack_trace",
    "http.request.method", "url.path", "http.response.status_code", "http.request.bytes", "client.ip",
    "user.id", "user.name", "user.roles", "storage.volume.name", "storage.job.kind", "storage.job.state",
)  # fmt: skip
FIELDS = BASE_FIELDS + CONTEXT_FIELDS + EVENT_FIELDS
NUMERIC = frozenset({"process.pid", "event.duration", "http.response.status_code", "http.request.bytes"})
_KNOWN = frozenset(FIELDS)
STACK_MAX = 8000  # characters of a stack trace kept (a line is bounded)
MESSAGE_MAX = 8000


def _masked(value: str) -> str:
    """``redact.mask``; a plain token (an id, a word: letters, digits, ``._-``) only against the
    known secrets, as no pattern can match without ``:``, ``=``, ``/`` or a space."""
    if ":" not in value and context.valid_request_id(value):
        return redact.scrub(value, redact.known(), patterns=False)
    return redact.mask(value)


def timestamp(created: float) -> str:
    """``2026-11-30T22:00:00.123Z`` (UTC, milliseconds) of a ``time.time()`` value."""
    ms = int(created * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{ms:03d}Z"


def document(
    *, created: float, level: str, message: str, logger: str, service: str, host: str, pid: int, thread: str,
    scope: Mapping[str, str], extra: Mapping[str, Any], error: BaseException | None = None, stack: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The ECS object of one line (pure: everything it needs is passed in); strings masked."""
    doc: dict[str, Any] = {
        "@timestamp": timestamp(created),
        "log.level": level.lower(),
        "message": redact.mask(message[:MESSAGE_MAX]),
        "log.logger": logger,
        "ecs.version": ECS_VERSION,
        "service.name": service,
        "host.name": host,
        "process.pid": pid,
        "process.thread.name": thread,
    }
    for key, value in scope.items():
        if key in _KNOWN:
            doc[key] = _masked(value)
    if "trace.id" in doc:
        doc["http.request.id"] = doc["trace.id"]
    for key, value in extra.items():
        if key not in _KNOWN or key in BASE_FIELDS or value is None:
            continue
        if key in NUMERIC:
            doc[key] = int(value)
        elif isinstance(value, (list, tuple)):
            doc[key] = [_masked(str(v)) for v in value]
        else:
            doc[key] = _masked(str(value))
    if error is not None:
        doc["error.type"] = type(error).__name__
        doc["error.message"] = redact.mask(str(error)[:MESSAGE_MAX])
    if stack:
        doc["error.stack_trace"] = redact.mask(stack[-STACK_MAX:])
    return doc


def _parts(record: logging.LogRecord) -> tuple[str, BaseException | None, str | None]:
    try:
        message = record.getMessage()
    except Exception as exc:  # noqa: BLE001 - a bad format string must not lose the line
        message = f"{record.msg!r} (log arguments did not format: {type(exc).__name__})"
    error = record.exc_info[1] if record.exc_info else None
    stack = None
    if record.exc_info and record.exc_info[0]:
        import traceback

        stack = "".join(traceback.format_exception(*record.exc_info))
    return message, error, stack


class EcsFormatter(logging.Formatter):
    """One JSON object per line with ECS field names (see ``FIELDS``)."""

    def __init__(self, service: str, host: str) -> None:
        super().__init__()
        self.service, self.host = service, host

    def format(self, record: logging.LogRecord) -> str:
        message, error, stack = _parts(record)
        doc = document(
            created=record.created, level=record.levelname, message=message, logger=record.name,
            service=self.service, host=self.host, pid=record.process or os.getpid(), thread=record.threadName or "",
            scope=getattr(record, "ecs_scope", None) or context.current(), extra=getattr(record, "ecs", None) or {},
            error=error, stack=stack,
        )  # fmt: skip
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), default=str)


class TextFormatter(logging.Formatter):
    """``<time> <LEVEL> <logger> [trace=... volume=...] message (outcome, duration)`` for a terminal."""

    SHORT = {"trace.id": "trace", "storage.volume.id": "volume", "storage.backup.id": "backup", "storage.job.id": "job"}

    def __init__(self, service: str, host: str) -> None:
        super().__init__()
        self.service, self.host = service, host

    def format(self, record: logging.LogRecord) -> str:
        message, error, stack = _parts(record)
        scope = getattr(record, "ecs_scope", None) or context.current()
        extra = getattr(record, "ecs", None) or {}
        ids = " ".join(f"{short}={scope[k]}" for k, short in self.SHORT.items() if k in scope)
        line = f"{timestamp(record.created)} {record.levelname} {record.name}: {message}"
        if ids:
            line += f" [{ids}]"
        if "event.outcome" in extra:
            ms = int(extra.get("event.duration") or 0) / 1e6
            line += f" ({extra['event.outcome']}, {ms:.0f} ms)"
        if stack:
            line += "\n" + stack.rstrip()
        elif error is not None and str(error) not in message:
            line += f": {type(error).__name__}: {error}"
        return redact.mask(line)
