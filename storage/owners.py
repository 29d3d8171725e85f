"""Who owns a transitional status: ``host:pid:start`` of the process running the operation.

The start time (clock ticks since boot, field 22 of ``/proc/<pid>/stat``) tells a dead owner
from a new process that got its pid: without it a reused pid would keep a status stuck. Owners
recorded as ``host:pid`` (before the start time was recorded) are still understood.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from functools import lru_cache


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, None when it is gone or unreadable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    fields = raw.rsplit(b")", 1)[-1].split()
    return fields[19].decode() if len(fields) > 19 else None  # field 22 counted after "pid (comm)"


@lru_cache(maxsize=4)
def _start_of(pid: int) -> str:
    return process_start(pid) or ""


def this_owner() -> str:
    """This process as an owner string (host:pid:start)."""
    pid = os.getpid()
    start = _start_of(pid)
    return f"{socket.gethostname()}:{pid}:{start}" if start else f"{socket.gethostname()}:{pid}"


def parse_owner(owner: str) -> tuple[str, int, str | None] | None:
    """Pure: (host, pid, start or None) of an owner string; None when it is not one."""
    parts = owner.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1].isdigit():
        return None
    start = parts[2] if len(parts) == 3 and parts[2].isdigit() else None
    return parts[0], int(parts[1]), start


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_is_dead(
    owner: str | None,
    this_host: str,
    alive: Callable[[int], bool] = pid_alive,
    start_of: Callable[[int], str | None] = process_start,
) -> bool:
    """Pure given alive/start_of: True only when owner names a process of this host that is gone
    (no such pid, or the pid now belongs to a process started at another time). An empty or
    unparseable owner, or one of another host, is not known to be dead: False."""
    parsed = parse_owner(owner) if owner else None
    if parsed is None:
        return False
    host, pid, start = parsed
    if host != this_host:
        return False
    if not alive(pid):
        return True
    now_start = start_of(pid) if start is not None else None
    return start is not None and now_start is not None and now_start != start


def is_dead_here(owner: str | None) -> bool:
    """owner_is_dead for this host with the real process table."""
    return owner_is_dead(owner, socket.gethostname())
