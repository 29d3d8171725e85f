"""Database failures other than constraint violations, as the library's typed errors.

A value the database refuses (PostgreSQL enforces ``String(n)`` lengths, SQLite does not) is
``InvalidInput`` naming the limit: the services bound their inputs first, this is the net under them.
A catalog that cannot be reached (PostgreSQL down or restarting, a connection it closed, nothing
listening, SQLite unable to open its file or still locked after its busy timeout) is
``CatalogUnavailable`` (a ``BackendError``: HTTP 503, exit 5) naming the database without its
password; another failure the database reports (a bad password, out of resources) is a plain
``BackendError``; a transaction PostgreSQL aborted because of a concurrent writer (deadlock, serialization
failure) is a ``Conflict`` to retry. The driver's first line is kept: it names host and port, never a
password.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

from storage.errors import BackendError, CatalogUnavailable, Conflict, InvalidInput, StorageError

_RETRY_SQLSTATES = {"40001": "a serialization failure", "40P01": "a deadlock"}
# connection exceptions (class 08) and the server shutting down or starting up (57P01-57P03)
_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})
_MAX_DETAIL = 300
T = TypeVar("T")
log = logging.getLogger(__name__)


def driver_detail(exc: DBAPIError) -> str:
    first = (str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]
    return first[:_MAX_DETAIL]


def data_refused(exc: DBAPIError) -> InvalidInput:
    """A DataError: too long for its column, out of range, not valid for the type."""
    return InvalidInput(
        f"a value does not fit the catalog ({driver_detail(exc)}); accepted: values within the documented limits",
        field="catalog",
    )


def unavailable(sqlstate: str | None) -> bool:
    """Does a failure with this SQLSTATE mean "the database cannot be reached now"? Pure; table-tested.

    No SQLSTATE at all: the driver never got an answer (refused, reset, closed, timed out; SQLite
    errors carry none either)."""
    return sqlstate is None or sqlstate.startswith("08") or sqlstate in _UNAVAILABLE_SQLSTATES


def database_failure(exc: DBAPIError, where: str) -> StorageError:
    """The typed error for a DBAPI failure on the catalog ``where`` (a URL already redacted)."""
    sqlstate = getattr(getattr(exc.orig, "diag", None), "sqlstate", None)
    if sqlstate in _RETRY_SQLSTATES:
        return Conflict(
            f"the catalog aborted the change because of {_RETRY_SQLSTATES[sqlstate]} with a concurrent writer; retry",
            sqlstate=sqlstate,
        )
    if unavailable(sqlstate):
        return CatalogUnavailable(f"catalog database {where} is unavailable: {driver_detail(exc)}; retry later", catalog=where)
    return BackendError(f"catalog database {where} failed: {driver_detail(exc)}", catalog=where)


# How long the end of an operation (putting a held status back, recording a run's outcome) waits for
# a catalog that went away meanwhile: longer than a PostgreSQL restart or failover, short enough that
# a process stopping for good still ends (its leftover status is then settled by the next command).
RECORD_RETRY_SECONDS = 60.0


def record_when_back(write: Callable[[], T], *, budget: float = RECORD_RETRY_SECONDS, poll: float = 0.5,
                     sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> T:
    """Run ``write`` (one catalog transaction), again every ``poll`` seconds while the catalog is
    unavailable, for at most ``budget`` seconds; then the last CatalogUnavailable is raised. For the
    writes that end an operation: without them a status stays transitional while the process lives."""
    deadline = clock() + budget
    while True:
        try:
            return write()
        except CatalogUnavailable as exc:
            if clock() + poll > deadline:
                raise
            log.warning("recording the end of an operation waits for the catalog: %s", exc.message)
            sleep(poll)
