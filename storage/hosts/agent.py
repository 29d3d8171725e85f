"""``storagectl agent``: registers this host in the catalog and heartbeats until SIGTERM.

Each heartbeat reports the host's pools (driver, capabilities, capacity through
``HostApi.pool_usage``). When the catalog cannot be reached (at start or later), the agent logs
one line per failure, waits a bounded, doubling delay and tries again; it never exits for it.
SIGTERM or SIGINT ends the loop between two heartbeats and the process exits 0.

With ``[cluster] queue = "procrastinate"`` the agent also runs the host's workers
(storage.queue.pq.QueueWorker): one takes device work from ``host.<host_name>`` and ``shared``
(``worker_concurrency`` at once), another the policy runs from ``runs.<host_name>``
(``run_concurrency``; a run waits for device work, so it never holds a device slot) and runs
them here, on this host's drivers; at start and then periodically it hands back to the queue
the jobs of workers that stopped heartbeating (a killed agent's), so they run again, and it
deletes finished ``host-call`` job rows older than ``[cluster] host_call_retention``
(storage/jobs/prune.py).
Each heartbeat also settles this host's volumes whose transitional status belongs to a gone
owner, such as a killed API replica (storage.hosts.replicas).
"""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from storage.catalog.base import utcnow
from storage.hosts.state import retry_delay

if TYPE_CHECKING:
    from storage.config import Settings
    from storage.hosts.service import HostService
    from storage.queue.pq import QueueWorker

log = logging.getLogger("storage.agent")

MAX_RETRY_DELAY = 60.0  # seconds; also at most service_down_time / 2 so a recovery shows soon
_URL_SECRET = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (no traceback, no password of a URL), at most 300 chars."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = _URL_SECRET.sub(r"\1***@", text)
    return f"{type(exc).__name__}: {text}"[:300]


class Agent:
    """The heartbeat loop; ``open_hosts`` builds the HostService (and may fail: catalog down)."""

    def __init__(self, settings: "Settings", open_hosts: Callable[[], "HostService"] | None = None) -> None:
        self.settings = settings
        self.stop = threading.Event()
        self._open_hosts = open_hosts or self._default_open
        self._hosts: HostService | None = None
        self._storage = None
        self.started_at: datetime = utcnow()
        self.heartbeats = 0
        self.worker: "QueueWorker | None" = None
        self.run_worker: "QueueWorker | None" = None  # policy runs (queue runs.<host_name>)
        self.pruned = 0  # host-call job rows deleted so far (storage/jobs/prune.py)
        self._last_prune: float | None = None

    def _default_open(self) -> "HostService":
        from storage.service import Storage

        st = Storage(self.settings, agent=True)
        self._storage = st  # type: ignore[assignment]
        return st.hosts

    def ensure_worker(self) -> None:
        """Start the queue worker (with a work queue only) once the catalog answers; again when it died."""
        cluster = self.settings.cluster
        if cluster is None or cluster.queue != "procrastinate" or self._storage is None:
            return
        from storage.queue.pq import QueueWorker
        from storage.queue.routing import run_queues_of_agent

        st = self._storage
        name = self.settings.host_name
        for attr, concurrency, queues, label in (
            ("worker", cluster.worker_concurrency, None, "storage-agent"),
            ("run_worker", cluster.run_concurrency, run_queues_of_agent(name), "storage-agent-runs"),
        ):  # fmt: skip
            worker = getattr(self, attr)
            if worker is not None and worker.error is None and worker._thread is not None and worker._thread.is_alive():
                continue
            worker = QueueWorker(
                self.settings.catalog_url, name, st.jobs, concurrency=concurrency,  # type: ignore[attr-defined]
                heartbeat_interval=cluster.heartbeat_interval, stalled_after=cluster.service_down_time,
                queues=queues, name=label,
            )  # fmt: skip
            setattr(self, attr, worker)
            worker.start()
            log.info("host %r takes work from queues %s (%d at once)", name, ", ".join(worker.queues), concurrency)

    def prune(self) -> None:
        """With a work queue: delete finished host-call job rows older than ``host_call_retention``,
        at most every ``prune_every`` seconds. A failure is logged; the next round tries again."""
        from storage.jobs.prune import prune_every, prune_host_calls

        cluster = self.settings.cluster
        if cluster is None or cluster.queue != "procrastinate" or self._storage is None:
            return
        now = time.monotonic()
        if self._last_prune is not None and now - self._last_prune < prune_every(cluster.host_call_retention, cluster.heartbeat_interval):
            return
        self._last_prune = now
        try:
            n = prune_host_calls(self._storage.catalog, retention=cluster.host_call_retention)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - pruning is housekeeping: never stops the heartbeats
            log.warning("pruning finished host-call jobs failed: %s", one_line(exc))
            return
        self.pruned += n
        if n:
            log.info("pruned %d finished host-call jobs older than %gs", n, cluster.host_call_retention,
                     extra={"ecs": {"event.action": "jobs.prune", "event.outcome": "success"}})  # fmt: skip

    def beat(self) -> None:
        """One registration/heartbeat; opens the catalog first when it is not open yet."""
        started = time.perf_counter_ns()
        if self._hosts is None:
            self._hosts = self._open_hosts()
        self._hosts.heartbeat(started_at=self.started_at)
        self.heartbeats += 1
        self.settle()
        log.debug("heartbeat of host %r", self.settings.host_name, extra={"ecs": {
            "event.action": "host.heartbeat", "event.outcome": "success", "event.duration": time.perf_counter_ns() - started}})

    def settle(self) -> None:
        """This host's volumes left transitional by a gone owner (a killed API replica, here or on
        another machine: storage.hosts.replicas) settled from what its drivers hold; one query
        when there are none. A failure is logged and tried again at the next heartbeat."""
        st = self._storage
        if st is None:
            return
        from storage.hosts.replicas import prune_leases, settle_dead_owners

        try:
            if self.heartbeats % 1000 == 1:
                prune_leases(st.catalog)
            settle_dead_owners(st.catalog, st.local_host, self.settings.host_name,
                               self.settings.cluster_settings.service_down_time)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - settling must never stop the heartbeat
            log.warning("settling volumes of gone owners on host %r failed: %s", self.settings.host_name, one_line(exc))
        try:
            # this host's served exports (serves, live restores) whose nbdkit died with the process
            # that started it (a killed CLI) are forgotten, expired ones stopped: a dead row would
            # otherwise refuse backup delete and gc cluster-wide until a command here listed serves
            st.backups.serving.list()
        except Exception as exc:  # noqa: BLE001 - never stops the heartbeat either
            log.warning("reaping dead served exports on host %r failed: %s", self.settings.host_name, one_line(exc))

    def run(self) -> int:
        cluster = self.settings.cluster_settings
        interval = cluster.heartbeat_interval
        cap = max(interval, min(MAX_RETRY_DELAY, cluster.service_down_time / 2))
        failures = 0
        log.info("agent for host %r: heartbeat every %gs, down after %gs", self.settings.host_name, interval, cluster.service_down_time)
        while not self.stop.is_set():
            try:
                self.beat()
                self.ensure_worker()  # the loop only: `agent --once` registers and takes no work
                self.prune()
            except Exception as exc:  # noqa: BLE001 - any failure to reach the catalog is retried
                failures += 1
                delay = retry_delay(failures, interval, cap)
                log.warning("heartbeat of host %r failed (%d in a row): %s; retrying in %gs",
                            self.settings.host_name, failures, one_line(exc), delay,
                            extra={"ecs": {"event.action": "host.heartbeat", "event.outcome": "failure",
                                           "error.type": type(exc).__name__}})  # fmt: skip
                self._reset()
                self.stop.wait(delay)
                continue
            if failures:
                log.info("heartbeat of host %r succeeded again after %d failures", self.settings.host_name, failures)
            elif self.heartbeats == 1:
                log.info("host %r registered", self.settings.host_name)
            failures = 0
            self.stop.wait(interval)
        log.info("agent for host %r stopping", self.settings.host_name)
        for worker in (self.worker, self.run_worker):
            if worker is not None:
                worker.stop()
        self._reset()
        return 0

    def _reset(self) -> None:
        """Drop the catalog connection after a failure (or at exit): the next beat reopens it."""
        if self._storage is not None:
            try:
                self._storage.close()
            except Exception:  # noqa: BLE001 - closing a broken engine must not kill the loop
                pass
            for worker in (self.worker, self.run_worker):
                if worker is not None:
                    worker.stop(timeout=5.0)
            self.worker = self.run_worker = None
            self._storage = None
            self._hosts = None

    def install_signal_handlers(self) -> None:
        def _stop(signum: int, _frame: object) -> None:
            self.stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
