"""The filters: pure functions ``(candidate, request) -> None (passes) | reason (refused)``.

Like Cinder's filter scheduler, every candidate runs through the filters in ``FILTERS`` order and
the first one that refuses it is recorded with its reason; the survivors go to the weigher.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from storage.scheduler.models import Candidate, CapabilityValue, PlacementRequest
from storage.units import format_size, round_up

Filter = Callable[[Candidate, PlacementRequest], str | None]


def effective_capabilities(candidate: Candidate) -> Mapping[str, CapabilityValue]:
    """The candidate's capabilities plus ``reflink`` (copy_method == "reflink") when it does not say."""
    caps = dict(candidate.capabilities)
    caps.setdefault("reflink", caps.get("copy_method") == "reflink")
    return caps


def requested(c: Candidate, r: PlacementRequest) -> str | None:
    """An explicit host or pool in the request: only that one passes."""
    if r.hints.host is not None and c.host != r.hints.host:
        return f"the request names host {r.hints.host!r}"
    if r.pool is not None and c.pool != r.pool:
        return f"the request names pool {r.pool!r}"
    return None


def host_state(c: Candidate, r: PlacementRequest) -> str | None:
    """The host is up and enabled, and the pool reported its usage."""
    if not c.up:
        return f"host {c.host!r} is down"
    if c.disabled:
        return f"host {c.host!r} is disabled" + (f" ({c.disabled_reason})" if c.disabled_reason else "")
    if c.error is not None:
        return f"the pool did not report its capacity: {c.error}"
    return None


def availability_zone(c: Candidate, r: PlacementRequest) -> str | None:
    zone = r.hints.availability_zone
    if zone is not None and c.availability_zone != zone:
        return f"in zone {c.availability_zone!r}, the request asks for {zone!r}"
    return None


def labels(c: Candidate, r: PlacementRequest) -> str | None:
    missing = [f"{k}={v}" for k, v in sorted(r.hints.labels.items()) if c.labels.get(k) != v]
    if missing:
        return f"pool labels lack {', '.join(missing)}"
    return None


def capabilities(c: Candidate, r: PlacementRequest) -> str | None:
    caps = effective_capabilities(c)
    wrong = []
    for key, want in sorted(r.hints.capabilities.items()):
        have = caps.get(key)
        if have != want:
            wrong.append(f"{key}={_show(want)} (pool: {_show(have) if key in caps else 'not reported'})")
    if wrong:
        return f"capabilities differ: {', '.join(wrong)}"
    return None


def room_bytes(c: Candidate) -> int:
    """What a new volume may use: provisionable bytes on a thin pool, free bytes on a thick one."""
    return c.provisionable_bytes if c.thin else c.free_bytes


def capacity(c: Candidate, r: PlacementRequest) -> str | None:
    """Thin pools by provisionable bytes (total x overcommit - provisioned), thick by free bytes."""
    size = round_up(r.size_bytes, c.granularity)
    if c.total_bytes <= 0:
        return "the pool reports no total capacity"
    room = room_bytes(c)
    if size <= room:
        return None
    need, have = format_size(size), format_size(max(room, 0))
    if need == have:  # the short forms hide the difference: say it in bytes
        need, have = f"{size} bytes", f"{max(room, 0)} bytes"
    if c.thin:
        counted = c.limit_bytes - room  # provisioned bytes the pool's limit counts
        return (
            f"needs {need}, {have} provisionable (thin: total {format_size(c.total_bytes)} x overcommit "
            f"{c.overcommit_ratio:g} - {format_size(counted)} provisioned)"
        )
    return f"needs {need}, {have} free (thick)"


def _show(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


# Cheap, decisive checks first; capacity last so its reason names a pool that was otherwise fit.
FILTERS: tuple[tuple[str, Filter], ...] = (
    ("requested", requested),
    ("host_state", host_state),
    ("availability_zone", availability_zone),
    ("labels", labels),
    ("capabilities", capabilities),
    ("capacity", capacity),
)


def first_refusal(c: Candidate, r: PlacementRequest) -> tuple[str, str] | None:
    """(filter name, reason) of the first filter that refuses the candidate, or None if all pass."""
    for name, check in FILTERS:
        reason = check(c, r)
        if reason is not None:
            return name, reason
    return None
