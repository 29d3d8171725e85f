"""Pure helpers of the job service: progress figures, owner strings, JSON of results (table-tested
in tests/test_api_services.py)."""

from __future__ import annotations

import enum
import os
import socket
from dataclasses import asdict, is_dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel


def percent(done: int, total: int | None) -> float | None:
    if not total:
        return None
    return round(min(100.0, 100.0 * done / total), 1)


def eta_seconds(done: int, total: int | None, rate: float | None) -> float | None:
    if not total or not rate or rate <= 0 or done >= total:
        return None
    return round((total - done) / rate, 1)


def parse_owner(owner: str | None) -> tuple[str, int, int] | None:
    """``host:pid:starttime`` -> parts, or None when malformed."""
    if not owner:
        return None
    parts = owner.rsplit(":", 2)
    if len(parts) != 3:
        return None
    try:
        return parts[0], int(parts[1]), int(parts[2])
    except ValueError:
        return None


def process_start_time(pid: int) -> int | None:
    """The start time (clock ticks since boot) of a live process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode(errors="replace")
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return int(fields[19]) if len(fields) > 19 else None  # field 22 of stat(5)


def current_owner() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{process_start_time(pid) or 0}"


def owner_alive(owner: str | None, host: str | None = None) -> bool:
    """False when the owner process of a job is provably gone (same host, pid dead or reused)."""
    parts = parse_owner(owner)
    if parts is None:
        return False
    owner_host, pid, start = parts
    if owner_host != (host or socket.gethostname()):
        return True  # cannot check another host's processes; leave its jobs alone
    return process_start_time(pid) == start


def jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if is_dataclass(value) and not isinstance(value, type):
        return jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def describe_report(report: Any) -> str | None:
    """``phase: read 1.0M, uploaded 512K`` from a progress report object's counters."""
    from storage.units import format_size

    parts = [
        f"{name} {format_size(value)}"
        for name in ("read", "skipped", "deduplicated", "uploaded", "downloaded")
        if isinstance(value := getattr(report, name, 0), (int, float)) and value
    ]
    phase = getattr(report, "phase", None)
    if not phase and not parts:
        return None
    return f"{phase or 'progress'}: {', '.join(parts)}" if parts else str(phase)




SECRET_KEYS = frozenset({"password", "secret", "chap_secret", "auth_password", "sealed_password"})
REDACTED = "***"


def redact_params(value: Any) -> Any:
    """A job's params as shown to readers: the value of every secret-named key replaced by ``***``,
    at any depth. A host call's CHAP password is not in the row at all (storage/hosts/sealing.py:
    only its sealed form, which this masks too); this is the net for any other secret-named value."""
    if isinstance(value, dict):
        return {k: (REDACTED if k in SECRET_KEYS and v is not None else redact_params(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_params(v) for v in value]
    return value
