"""Jobs as named tasks: ``kind -> function(st, ctx, **params)`` with JSON params.

A job is recorded in the catalog (``jobs`` table: the user-visible record, progress and cancel
readable through every API replica) with its kind and params; whichever process runs it (a
thread of the process that accepted it, or the agent of the owning host through procrastinate)
looks the kind up here and calls the function with its own ``Storage`` (``st``), the job's
``JobContext`` (progress callback, cancel event, ``attempt``) and the params. No closure crosses
a process boundary, so any process can run any job.

Every task is safe to run twice (delivery is at least once): a re-run after its agent was killed
either finishes the work or ends ``failed`` with the reason (the step that refused, e.g. a
Conflict naming the status the first run left), and a volume left in a transitional status by the
dead run is settled from what its backend holds before the re-run touches it (``volumes.get``
settles statuses whose owner process is gone, storage/volumes/settle.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from storage.errors import Conflict, InvalidInput, NotFound

if TYPE_CHECKING:
    from storage.jobs.service import JobContext
    from storage.service import Storage

TaskFn = Callable[..., Any]
REGISTRY: dict[str, TaskFn] = {}
NOOP_MAX_SECONDS = 60.0

# HostApi calls a host-call job may make (plain data in and out). open_volume/open_snapshot hand
# out a local path: the work that needs them (backup reads, restore writes) runs whole on the
# owning host's agent instead (kinds backup, restore).
HOST_CALLS = frozenset({
    "check_pool", "pool_capabilities", "pool_usage", "create_volume", "clone_volume", "clone_snapshot",
    "extend_volume", "revert_to_snapshot", "delete_volume", "create_snapshot", "delete_snapshot", "attach",
    "detach", "attached_device", "changed_ranges", "volume_is_all_holes", "export_driver", "ensure_export_service",
    "stop_export_service", "export_target", "unexport_target", "resize_target", "list_targets",
})  # fmt: skip


def task(kind: str) -> Callable[[TaskFn], TaskFn]:
    def register(fn: TaskFn) -> TaskFn:
        REGISTRY[kind] = fn
        return fn

    return register


def run_task(st: "Storage", kind: str, ctx: "JobContext", params: dict[str, Any]) -> Any:
    """Run the task ``kind`` with its params (the job's recorded params, JSON)."""
    fn = REGISTRY.get(kind)
    if fn is None:
        raise InvalidInput(f"job kind {kind!r} has no task; accepted: {', '.join(sorted(REGISTRY))}", field="kind")
    return fn(st, ctx, **params)


@task("noop")
def noop(st: "Storage", ctx: "JobContext", seconds: float = 0.0, **_: Any) -> dict[str, Any]:
    """Does nothing (for a queue's round trip: scripts/bench/queue_bench.py); may sleep, cancellably."""
    if not isinstance(seconds, (int, float)) or not 0 <= seconds <= NOOP_MAX_SECONDS:
        raise InvalidInput(f"seconds {seconds!r} is not accepted; accepted: 0-{NOOP_MAX_SECONDS:g}", field="seconds")
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        ctx.check_cancelled()
        ctx.progress(int((1 - (deadline - time.monotonic()) / max(seconds, 1e-9)) * 100), 100)
        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
    return {"host": st.settings.host_name, "attempt": ctx.attempt}


@task("host-call")
def host_call(st: "Storage", ctx: "JobContext", method: str, args: dict[str, Any] | None = None,
              deadline: float | None = None, **_: Any) -> Any:  # fmt: skip
    """One ``HostApi`` call on this host's drivers (storage/host/remote.py enqueues it). A call
    delivered after its caller stopped waiting (``deadline``, epoch seconds) is refused, not run:
    the caller has already recorded its failure."""
    if deadline is not None and time.time() > float(deadline):
        raise Conflict(f"host call {method} arrived after its caller stopped waiting (deadline passed); not run",
                       method=method)  # fmt: skip
    if method not in HOST_CALLS:
        raise InvalidInput(f"host call {method!r} is not accepted; accepted: {', '.join(sorted(HOST_CALLS))}", field="method")
    args = dict(args or {})
    if method == "export_target":  # its CHAP password comes sealed to this host's key (storage.hosts.sealing)
        from storage.hosts.sealing import open_call

        key = st.host_key
        args = open_call(method, args, st.settings.host_name, key.private() if key is not None else None)
    if method == "delete_volume":
        args["progress"] = ctx.progress
    host = st.local_host
    if ctx.attempt > 1 and method in ("create_volume", "delete_volume"):
        return _again(host, method, args)
    return getattr(host, method)(**args)


def _again(host: Any, method: str, args: dict[str, Any]) -> None:
    """A create or delete delivered again after its runner died: finish what the first run began.
    The volume is new (its catalog row is still ``creating``, held by the waiting caller), so a
    file the first run left is removed and made again; a delete whose first run got through is done."""
    try:
        if method == "create_volume":
            host.delete_volume(args["pool"], args["volume_id"])
    except NotFound:
        pass
    try:
        getattr(host, method)(**args)
    except NotFound:
        if method != "delete_volume":
            raise


@task("backup")
def backup(st: "Storage", ctx: "JobContext", source: str, backup_id: str, name: str | None = None,
           labels: dict[str, str] | None = None, repository: str | None = None,
           bandwidth_limit: int | str | None = None, description: str | None = None,
           encryption_key_file: str | None = None, **_: Any) -> Any:  # fmt: skip
    if ctx.attempt > 1:
        done = resume_backup(st, backup_id)
        if done is not None:
            return done
    return st.backups.create(source, repository=repository, name=name, labels=labels, progress=ctx.progress,
                             cancel=ctx.cancel, backup_id=backup_id, bandwidth_limit=bandwidth_limit,
                             description=description, encryption_key_file=encryption_key_file)  # fmt: skip


def resume_backup(st: "Storage", backup_id: str) -> Any:
    """Before a re-run of a backup job: the backup when the first run finished it; else its
    unfinished catalog record (creating, interrupted or error, left by a runner that is gone) is
    dropped so the re-run records the backup again under the same id. Chunks the first run
    uploaded are found in the repository and not sent again; nothing references them until the
    re-run's manifest does (gc keeps them for its grace period)."""
    from storage.backup.records import owner_is_gone, to_model
    from storage.catalog.backups import BackupRow

    with st.catalog.session() as s:
        row = s.get(BackupRow, backup_id)
        if row is None:
            return None
        if row.status == "available":
            return to_model(row)
        if row.status in ("creating", "interrupted", "error") and (row.owner is None or owner_is_gone(row.owner)):
            s.delete(row)
            return None
        raise Conflict(f"backup {backup_id} is {row.status} (owner {row.owner}); the re-run leaves it alone",
                       backup=backup_id)  # fmt: skip


RESTORED_FROM = "storage.backup/restored-from"


def resume_restore(st: "Storage", backup_id: str, new_volume_name: str) -> None:
    """Before a re-run of a restore into a new volume: the volume the first run created and did not
    fill (its runner died: reading it settles its ``restoring-backup`` to ``error``, never
    ``available``) is deleted, so the re-run creates and fills it again under the same name. Only
    a volume in ``error`` restored from this very backup is deleted; one a live process still
    restores into, or any other, is left alone (the re-run then names the conflict)."""
    from storage.domain import VolumeStatus

    try:
        vol = st.volumes.get(new_volume_name)
    except NotFound:
        return
    if vol.labels.get(RESTORED_FROM) == backup_id and vol.status == VolumeStatus.ERROR:
        st.volumes.delete(vol.id, force=True)


@task("restore")
def restore(st: "Storage", ctx: "JobContext", backup_id: str, to_volume: str | None = None,
            to_volume_id: str | None = None, new_volume_name: str | None = None, pool: str | None = None,
            born_for_restore: bool = False, **_: Any) -> Any:  # fmt: skip
    if ctx.attempt > 1 and new_volume_name and not (to_volume or to_volume_id):
        resume_restore(st, backup_id, new_volume_name)
    born = bool(born_for_restore and to_volume_id)
    if born:
        adopt_restore_target(st, backup_id, str(to_volume_id))
    try:
        return st.backups.restore(backup_id, to_volume=to_volume_id or to_volume, new_volume_name=new_volume_name,
                                  pool=pool, progress=ctx.progress, cancel=ctx.cancel)  # fmt: skip
    except BaseException as exc:
        if born:
            from storage.catalog.volumes import failure_reason

            settle_restore_target(st, str(to_volume_id), failure_reason(f"restore of backup {backup_id}", exc))
        raise


def adopt_restore_target(st: "Storage", backup_id: str, volume_id: str) -> None:
    """The Cinder API made the volume (restoring-backup, owned by the API process) before this job;
    the job, on the volume's host, takes it over, so it ends available or error, never stuck."""
    from storage.domain import VolumeStatus
    from storage.volumes.holds import adopt

    with st.catalog.session() as s:
        if adopt(s, volume_id, VolumeStatus.RESTORING_BACKUP):
            return
    vol = st.volumes.get(volume_id)  # NotFound when it was deleted meanwhile
    raise Conflict(
        f"volume {vol.name!r} made for the restore of backup {backup_id} is {vol.status.value}, no longer "
        "restoring-backup; accepted: restore into a new volume again", volume=vol.name, status=vol.status.value,
    )  # fmt: skip


def settle_restore_target(st: "Storage", volume_id: str, reason: str | None = None) -> None:
    """A failed restore into the volume made for it: `error` (deletable), unless it was settled already."""
    from storage.domain import VolumeStatus
    from storage.errors import StorageError

    try:
        vol = st.volumes.get(volume_id)
        if vol.status is VolumeStatus.RESTORING_BACKUP and st.volumes.held_here(volume_id):
            st.volumes.reset_status(volume_id, VolumeStatus.ERROR, reason=reason)
    except StorageError:
        pass


@task("verify")
def verify(st: "Storage", ctx: "JobContext", backup_id: str, deep: bool = False, sample_percent: float = 100,
           **_: Any) -> Any:  # fmt: skip
    from storage.backup.verify import verify_failure

    report = st.backups.verify(backup_id, deep=deep, sample_percent=sample_percent, progress=ctx.progress,
                               cancel=ctx.cancel)  # fmt: skip
    failure = verify_failure(report)
    if failure is not None:
        raise failure  # the job ends failed naming the damage (the backups are marked damaged already)
    return report


@task("gc")
def gc(st: "Storage", ctx: "JobContext", repository: str | None = None, dry_run: bool = False, **_: Any) -> Any:
    return st.backups.gc(repository, dry_run=dry_run)


@task("wipe")
def wipe(st: "Storage", ctx: "JobContext", volume_id: str, wipe: str = "zero", force: bool = False,
         cascade: bool = False, **_: Any) -> Any:  # fmt: skip
    return st.volumes.delete(volume_id, wipe=wipe, force=force, cascade=cascade, progress=ctx.progress)


@task("policy-run")
def policy_run(st: "Storage", ctx: "JobContext", policy_id: str, dry_run: bool = False, **_: Any) -> Any:
    def progress(_policy: str, _volume: str, report: Any) -> None:
        ctx.progress(report)

    # the job id as run key: a re-delivery (its agent died) reuses the items the first attempt made
    return st.policies.run(now_policies=[policy_id], dry_run=dry_run, progress=progress, run_key=ctx.job_id)
