"""Typed errors of the storage library.

Every error carries the CLI exit code and HTTP status it maps to, so the CLI
(`storage.cli`) and the API (`api.errors`) map them in exactly one place each.
Messages name what was wrong and what is accepted; they never contain secrets.
"""

from __future__ import annotations

from typing import Any, ClassVar


class StorageError(Exception):
    """Base of all errors raised by storage and its backends."""

    code: ClassVar[str] = "internal_error"
    exit_code: ClassVar[int] = 1
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            out["details"] = {k: v for k, v in self.details.items() if v is not None}
        return out


class InvalidInput(StorageError):
    """Bad input: a size, name, expression or option that is not accepted."""

    code = "invalid_input"
    exit_code = 2
    http_status = 422


class NotFound(StorageError):
    code = "not_found"
    exit_code = 3
    http_status = 404


class Conflict(StorageError):
    """The object exists already, or is in a state that forbids the operation."""

    code = "conflict"
    exit_code = 4
    http_status = 409


class BackendError(StorageError):
    """A backend (device, tool, server) failed or is unreachable."""

    code = "backend_error"
    exit_code = 5
    http_status = 503


class CatalogUnavailable(BackendError):
    """The catalog database cannot be reached (PostgreSQL stopped, restarting, unreachable, a
    connection it closed). HTTP 503 (Cinder ``serviceUnavailable``), exit code 5: retry later; the
    next request connects again by itself. ``details``: ``catalog`` (its URL without password)."""

    code = "catalog_unavailable"


class InsufficientCapacity(StorageError):
    code = "insufficient_capacity"
    exit_code = 6
    http_status = 507


class NoValidHost(InsufficientCapacity):
    """The scheduler found no pool for a new volume; the message says why each candidate was refused.

    A kind of InsufficientCapacity (same exit code and HTTP status), like Cinder's NoValidBackend;
    ``details["explanation"]`` is the whole decision (storage.scheduler.Decision.to_dict()).
    """

    code = "no_valid_host"


class Busy(StorageError):
    """A host-wide lock is held by another process (e.g. a second `storagectl run`)."""

    code = "busy"
    exit_code = 7
    http_status = 409


class AuthenticationFailed(StorageError):
    code = "unauthenticated"
    exit_code = 8
    http_status = 401


class PermissionDenied(StorageError):
    code = "forbidden"
    exit_code = 8
    http_status = 403


class DataCorruption(StorageError):
    """Stored data failed verification (missing chunk, bad hash, bad tag)."""

    code = "data_corruption"
    exit_code = 9
    http_status = 500


class Unsupported(StorageError):
    """The backend or host cannot do this (capability missing, kernel feature absent)."""

    code = "unsupported"
    exit_code = 10
    http_status = 501


class Cancelled(StorageError):
    code = "cancelled"
    exit_code = 11
    http_status = 409


class HostUnavailable(StorageError):
    """The host that owns the volume (or the one asked to take a new one) is down or disabled.

    ``details``: ``host`` (its name) and ``state`` (down, disabled, unknown).
    """

    code = "host_unavailable"
    exit_code = 12
    http_status = 503


# Documented in README "Exit codes"; keep in sync with the classes above.
EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "internal error",
    2: "invalid input or usage",
    3: "not found",
    4: "conflict (state or already exists)",
    5: "backend failure",
    6: "insufficient capacity",
    7: "busy (another run holds the lock)",
    8: "authentication or permission failure",
    9: "data corruption detected",
    10: "unsupported on this backend or host",
    11: "cancelled",
    12: "host unavailable (the volume's host is down, or disabled for new volumes)",
}
