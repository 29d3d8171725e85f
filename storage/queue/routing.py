"""Pure routing of a job: which queue carries it and which lock serialises it.

Work that touches a host's devices (volume create/delete/extend/snapshot/revert, export, wipe, a
backup's reads, a restore's writes: kinds in ``HOST_KINDS``) goes to ``host.<name>`` of the host
that owns the volume; work any host can do (verify, gc, no-op) goes to ``shared``. Locks name what
two jobs must never touch at once: ``volume:<id>`` (every operation on one volume), ``repo:<url>``
(one gc per repository). Table-tested in tests/test_queue_routing.py.

A policy run (``RUN_KINDS``) only orchestrates: it waits for the device work of the volumes it
covers, which may be queued on any host. It goes to ``runs.<name>``, a lane of its own that each
agent serves apart from its device work (``[cluster] run_concurrency``), so runs waiting on each
other's hosts never hold the slots the work they wait for needs (a deadlock at
``worker_concurrency = 1`` before). Nothing ever waits on a policy run, and the device and shared
kinds wait on no other job, so the waits-for graph has no cycle.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from storage.errors import InvalidInput

SHARED_QUEUE = "shared"
HOST_QUEUE_PREFIX = "host."
RUN_QUEUE_PREFIX = "runs."
HOST_KINDS = frozenset({"backup", "restore", "wipe", "host-call", "policy-run"})
RUN_KINDS = frozenset({"policy-run"})  # host kinds that wait on other jobs: their own lane (runs.<name>)
SHARED_KINDS = frozenset({"verify", "gc", "noop"})
KINDS = HOST_KINDS | SHARED_KINDS
_HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


@dataclass(frozen=True)
class Route:
    queue: str
    lock: str | None = None


def host_queue(host: str) -> str:
    """``host.<name>``; the name is checked so a queue name never carries anything else."""
    if not _HOST_NAME.match(host or ""):
        raise InvalidInput(f"host name {host!r} is not accepted for a queue; accepted: letters, digits, '.', '_', '-' (1-255)",
                           field="host")  # fmt: skip
    return HOST_QUEUE_PREFIX + host


def run_queue(host: str) -> str:
    """``runs.<name>``: the policy runs of a host (checked like ``host_queue``)."""
    return RUN_QUEUE_PREFIX + host_queue(host)[len(HOST_QUEUE_PREFIX):]


def volume_of(kind: str, params: Mapping[str, Any]) -> str | None:
    """The volume id a job works on, when it names one (a backup's ``volume:<id>`` source, a
    restore's ``to_volume``, a wipe's ``volume_id``, a host call's ``volume_id``)."""
    if kind == "backup":
        source = str(params.get("source") or "")
        return source.partition(":")[2] or None if source.startswith("volume:") else None
    if kind == "restore":
        return params.get("to_volume_id") or None
    if kind in ("wipe", "host-call"):
        return params.get("volume_id") or None
    return None


def route(kind: str, params: Mapping[str, Any], *, host: str | None) -> Route:
    """The queue and lock of a job. ``host``: the host that owns the job's volume (or, for work
    with no volume yet, the host chosen for it); required for ``HOST_KINDS``."""
    if kind not in KINDS:
        raise InvalidInput(f"job kind {kind!r} is not accepted; accepted: {', '.join(sorted(KINDS))}", field="kind")
    if kind in SHARED_KINDS:
        lock = f"repo:{params['repository']}" if kind == "gc" and params.get("repository") else None
        return Route(SHARED_QUEUE, lock)
    if not host:
        raise InvalidInput(f"a {kind} job needs the host that owns its volume; none was given", field="host")
    if kind in RUN_KINDS:
        return Route(run_queue(host), None)
    vid = volume_of(kind, params)
    return Route(host_queue(host), f"volume:{vid}" if vid else None)


def run_host(own: str, serving: Mapping[str, bool]) -> str | None:
    """Pure: the host whose agent takes a policy run submitted here. ``serving``: registered host ->
    whether its agent is heard from (up or disabled: a disabled host still runs its work). This
    replica's own host when it serves, else the first serving host by name (a run only orchestrates;
    its device work goes to each volume's host anyway); None when no agent serves at all."""
    if serving.get(own):
        return own
    return next((name for name in sorted(serving) if serving[name]), None)


def queues_of_agent(host: str) -> list[str]:
    """What an agent's device-work worker listens to: its host's queue, then the shared one."""
    return [host_queue(host), SHARED_QUEUE]


def run_queues_of_agent(host: str) -> list[str]:
    """What an agent's policy-run worker listens to (a lane of its own, see the module doc)."""
    return [run_queue(host)]


HostOf = Callable[[str], str]
