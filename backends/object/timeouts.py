"""Telling a timeout from a refused or dropped connection, for every HTTP store (pure).

The Swift and S3 drivers both report "did not answer ... in time" only for a real timeout; a
connection that was refused (nothing listens) is a different failure with a different message.
"""

from __future__ import annotations

import socket

import urllib3


def is_timeout(exc: BaseException) -> bool:
    """True when a requests/urllib3/socket failure is a timeout (also when wrapped in a ConnectionError)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (urllib3.exceptions.NewConnectionError, ConnectionRefusedError)):
            return False  # refused or no route: a ConnectTimeoutError subclass in urllib3, but not a timeout
        if isinstance(current, (TimeoutError, socket.timeout, urllib3.exceptions.TimeoutError)):
            return True
        if type(current).__name__ in ("Timeout", "ReadTimeout", "ConnectTimeout", "ReadTimeoutError", "ConnectTimeoutError"):
            return True
        args = getattr(current, "args", ())
        nested = next((a for a in args if isinstance(a, BaseException)), None)
        reason = getattr(current, "reason", None)  # MaxRetryError
        current = nested or (reason if isinstance(reason, BaseException) else None) or current.__cause__ or current.__context__
    return "timed out" in str(exc)
