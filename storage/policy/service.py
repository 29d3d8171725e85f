"""PolicyService (``st.policies``): policies in the catalog, their history, and the runner.

    st.policies.create(name=..., kind="snapshot", schedule="0 2 * * *", timezone="Europe/Berlin",
                       selector={"labels": {"tier": "db"}}, retention={"keep_daily": 7})
    report = st.policies.run()                 # what `storagectl run` does
    st.policies.history("nightly")

The clock is injectable (``PolicyService.clock`` or ``run(clock=...)``) so tests control time.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update

from storage.catalog.base import new_id
from storage.catalog.failures import record_when_back
from storage.catalog.policies import PolicyRow, PolicyRunRow, aware
from storage.bounds import check_int
from storage.errors import Conflict, InvalidInput, NotFound
from storage.names import is_uuid
from storage.policy.actions import check_repository
from storage.policy.events import EventSink
from storage.policy.models import Policy, PolicySpec, RunRecord, refuse_bare_minutes, validated
from storage.policy.runner import Clock, ProgressSink, RunReport, Runner, system_clock
from storage.policy.schedule import DueDecision, SlotState, decide
from storage.logs.ops import operation

if TYPE_CHECKING:
    from collections.abc import Collection
    from pathlib import Path

    from storage.backup.service import BackupService
    from storage.catalog import Catalog
    from storage.config import BackupConfig
    from storage.objects.service import ObjectService
    from storage.volumes.service import VolumeService
    from storage.volumes.snapshots import SnapshotService

DONE = "succeeded"
RUN_STATUSES = ("running", "succeeded", "partial", "failed", "interrupted")
NOT_DONE = ("failed", "partial", "interrupted")


def _policy(row: PolicyRow) -> Policy:
    return Policy.model_validate(
        {
            "id": row.id, "name": row.name, "kind": row.kind, "schedule": row.schedule, "timezone": row.timezone,
            "selector": row.selector, "retention": row.retention, "backup": row.backup, "enabled": row.enabled,
            "created_at": aware(row.created_at), "updated_at": aware(row.updated_at),
        }
    )


def _record(row: PolicyRunRow) -> RunRecord:
    return RunRecord(
        id=row.id, policy_id=row.policy_id, policy_name=row.policy_name, trigger=row.trigger,  # type: ignore[arg-type]
        slot_time=aware(row.slot_time), started_at=aware(row.started_at), finished_at=aware(row.finished_at),  # type: ignore[arg-type]
        status=row.status, attempt=row.attempt, missed_slots=row.missed_slots,  # type: ignore[arg-type]
        items_created=list(row.items_created or []), items_pruned=list(row.items_pruned or []),
        bytes=row.bytes or 0, error=row.error,
    )


class PolicyService:
    def __init__(
        self,
        catalog: "Catalog",
        *,
        pools: "Collection[str]",
        data_dir: "Path",
        backup_settings: "BackupConfig",
        volumes: "VolumeService",
        snapshots: "SnapshotService",
        backups: "BackupService",
        objects: "ObjectService",
        clock: Clock | None = None,
    ) -> None:
        # runner.py and actions.py (this package) use these collaborators through the service
        self.catalog = catalog
        self.pools = pools  # configured pool names
        self.data_dir = data_dir
        self.backup_settings = backup_settings
        self.volumes = volumes
        self.snapshots = snapshots
        self.backups = backups
        self.objects = objects
        self.clock: Clock = clock or system_clock

    # -- CRUD ---------------------------------------------------------------------
    @operation("policy.create")
    def create(
        self,
        name: str,
        kind: str,
        schedule: str,
        *,
        selector: dict[str, Any],
        retention: dict[str, Any],
        timezone: str = "UTC",
        backup: dict[str, Any] | None = None,
        enabled: bool = True,
    ) -> Policy:
        """Validate and store a policy; every bad field is named with what is accepted."""
        spec = validated(
            PolicySpec,
            {"name": name, "kind": kind, "schedule": schedule, "timezone": timezone, "selector": selector,
             "retention": retention, "backup": backup, "enabled": enabled},
        )
        refuse_bare_minutes(spec.retention)
        self._check_targets(spec)
        now = self.clock()
        with self.catalog.session() as s:
            if s.scalar(select(PolicyRow.id).where(PolicyRow.name == spec.name)) is not None:
                raise Conflict(f"a policy named {spec.name!r} exists already; choose another name", field="name")
            row = PolicyRow(
                id=new_id(), name=spec.name, kind=spec.kind, schedule=spec.schedule, timezone=spec.timezone,
                selector=spec.selector.model_dump(), retention=spec.retention.model_dump(),
                backup=spec.backup.model_dump() if spec.backup else None, enabled=spec.enabled,
                created_at=now, updated_at=now,
            )
            s.add(row)
            s.flush()
            return _policy(row)

    def _check_targets(self, spec: PolicySpec) -> None:
        if spec.backup is not None and (spec.backup.repository or spec.backup.compression):
            check_repository(self, spec.backup.repository, spec.backup.compression)
        if spec.backup is not None and spec.backup.encryption_key_file:
            from pathlib import Path

            if not Path(spec.backup.encryption_key_file).is_file():
                raise InvalidInput(
                    f"backup.encryption_key_file {spec.backup.encryption_key_file!r} does not exist or is not a file; "
                    "accepted: the path of an existing key file",
                    field="encryption_key_file",
                )
        if spec.selector.pool is not None and spec.selector.pool not in self.pools:
            raise InvalidInput(
                f"selector.pool {spec.selector.pool!r} is not a configured pool; accepted: "
                f"{', '.join(sorted(self.pools))}",
                field="pool",
            )

    def _row_id(self, ref: str) -> str:
        if not isinstance(ref, str) or not ref:
            raise InvalidInput(f"policy reference {ref!r} is not accepted; accepted: a policy name or id", field="policy")
        with self.catalog.session() as s:
            column = PolicyRow.id if is_uuid(ref) else PolicyRow.name
            pid = s.scalar(select(PolicyRow.id).where(column == ref))
        if pid is None:
            raise NotFound(f"policy {ref!r} not found (by name or id); see `storagectl policy list`", policy=ref)
        return pid

    def get(self, ref: str) -> Policy:
        pid = self._row_id(ref)
        with self.catalog.session() as s:
            row = s.get(PolicyRow, pid)
            if row is None:
                raise NotFound(f"policy {ref!r} not found", policy=ref)
            return _policy(row)

    def list(self, *, kind: str | None = None) -> list[Policy]:
        if kind is not None and kind not in ("snapshot", "backup"):
            raise InvalidInput(f"kind {kind!r} is not a policy kind; accepted: snapshot, backup", field="kind")
        with self.catalog.session() as s:
            q = select(PolicyRow).order_by(PolicyRow.name)
            if kind is not None:
                q = q.where(PolicyRow.kind == kind)
            return [_policy(r) for r in s.scalars(q).all()]

    @operation("policy.update")
    def update(self, ref: str, **changes: Any) -> Policy:
        """Change fields: name, schedule, timezone, enabled, or merge into selector/retention/backup.

        ``retention`` replaces the keep rules as a whole (a partial set would silently keep old
        rules); ``selector`` replaces the selection; ``backup`` is merged key by key.
        """
        current = self.get(ref)
        allowed = {"name", "schedule", "timezone", "enabled", "selector", "retention", "backup"}
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise InvalidInput(f"cannot update {', '.join(unknown)}; accepted: {', '.join(sorted(allowed))}", field=unknown[0])
        data = current.model_dump(include={"name", "kind", "schedule", "timezone", "selector", "retention", "backup", "enabled"})
        for key, value in changes.items():
            if value is None:
                continue
            if key == "backup" and data.get("backup") is not None:
                data["backup"] = {**data["backup"], **value}
            else:
                data[key] = value
        spec = validated(PolicySpec, data)
        if changes.get("retention") is not None:
            refuse_bare_minutes(spec.retention)
        if changes.get("backup"):
            self._check_targets(spec)
        with self.catalog.session() as s:
            if spec.name != current.name and s.scalar(select(PolicyRow.id).where(PolicyRow.name == spec.name)):
                raise Conflict(f"a policy named {spec.name!r} exists already; choose another name", field="name")
            row = s.get(PolicyRow, current.id)
            assert row is not None
            row.name, row.schedule, row.timezone, row.enabled = spec.name, spec.schedule, spec.timezone, spec.enabled
            row.selector = spec.selector.model_dump()
            row.retention = spec.retention.model_dump()
            row.backup = spec.backup.model_dump() if spec.backup else None
            row.updated_at = self.clock()
            s.flush()
            return _policy(row)

    @operation("policy.delete")
    def delete(self, ref: str) -> None:
        """Delete the policy; its items stay (with their label) and its history stays."""
        pid = self._row_id(ref)
        with self.catalog.session() as s:
            running = s.scalar(
                select(func.count()).select_from(PolicyRunRow).where(PolicyRunRow.policy_id == pid, PolicyRunRow.status == "running")
            )
            if running:
                raise Conflict(f"policy {ref!r} is running now; delete it when the run has finished", policy=ref)
            row = s.get(PolicyRow, pid)
            if row is not None:
                s.delete(row)

    # -- history ------------------------------------------------------------------
    def history(self, ref: str | None = None, *, limit: int = 50, status: str | None = None) -> list[RunRecord]:
        """Runs, newest first; of one policy (name or id; also of a deleted one by id) or of all."""
        check_int(limit, field="limit", lo=1, hi=10000)
        if status is not None and status not in RUN_STATUSES:
            raise InvalidInput(f"status {status!r} is not a run status; accepted: {', '.join(RUN_STATUSES)}", field="status")
        with self.catalog.session() as s:
            q = select(PolicyRunRow).order_by(PolicyRunRow.started_at.desc(), PolicyRunRow.id).limit(limit)
            if ref is not None:
                try:
                    pid = self._row_id(ref)
                except NotFound:
                    pid = ref if is_uuid(ref) else None
                    if pid is None and not s.scalar(select(PolicyRunRow.id).where(PolicyRunRow.policy_name == ref)):
                        raise
                q = q.where(PolicyRunRow.policy_id == pid) if pid else q.where(PolicyRunRow.policy_name == ref)
            if status is not None:
                q = q.where(PolicyRunRow.status == status)
            return [_record(r) for r in s.scalars(q).all()]

    # -- schedule state -------------------------------------------------------------
    def slot_state(self, policy_id: str) -> SlotState:
        with self.catalog.session() as s:
            done = s.scalar(
                select(func.max(PolicyRunRow.slot_time)).where(
                    PolicyRunRow.policy_id == policy_id, PolicyRunRow.trigger == "schedule", PolicyRunRow.status == DONE
                )
            )
            latest = s.scalar(
                select(func.max(PolicyRunRow.slot_time)).where(
                    PolicyRunRow.policy_id == policy_id, PolicyRunRow.trigger == "schedule"
                )
            )
            attempts = 0
            if latest is not None and (done is None or aware(latest) > aware(done)):
                attempts = s.scalar(
                    select(func.count()).select_from(PolicyRunRow).where(
                        PolicyRunRow.policy_id == policy_id, PolicyRunRow.trigger == "schedule",
                        PolicyRunRow.slot_time == latest, PolicyRunRow.status.in_(NOT_DONE),
                    )
                ) or 0
        return SlotState(aware(done), attempts, aware(latest))

    def due(self, policy: Policy, now: datetime | None = None) -> DueDecision:
        """Whether the policy's newest slot needs a run now. Slots count from the policy's creation
        time, floored to the minute (interval schedules fire at that minute plus n intervals)."""
        anchor = policy.created_at.replace(second=0, microsecond=0)
        return decide(policy.parsed_schedule(), now or self.clock(), anchor, self.slot_state(policy.id))

    # -- running --------------------------------------------------------------------
    @operation("policy.runner")
    def run(
        self,
        *,
        now_policies: list[str] | None = None,
        dry_run: bool = False,
        wait: bool = False,
        wait_timeout: float | None = None,
        clock: Clock | None = None,
        on_event: EventSink | None = None,
        progress: ProgressSink | None = None,
        run_key: str | None = None,
    ) -> RunReport:
        """Run every due policy (or ``now_policies`` at once); see storage.policy.runner.
        ``run_key`` (a job's id) makes a manual run's re-delivery reuse what its first attempt made.

        Raises Busy (exit 7) when another runner holds the host lock and ``wait`` is False.
        """
        runner = Runner(self, clock=clock, on_event=on_event, progress=progress, run_key=run_key)
        return runner.run(now_policies=now_policies, dry_run=dry_run, wait=wait, wait_timeout=wait_timeout)

    # -- run records (used by the runner) ---------------------------------------------
    def _start_run(self, policy: Policy, slot: datetime, trigger: str, attempt: int, missed: int, owner: str,
                   now: datetime) -> str:
        rid = new_id()
        with self.catalog.session() as s:
            s.add(PolicyRunRow(
                id=rid, policy_id=policy.id, policy_name=policy.name, trigger=trigger, slot_time=slot,
                started_at=now, status="running", attempt=attempt, missed_slots=missed, items_created=[],
                items_pruned=[], bytes=0, owner=owner,
            ))
        return rid

    def _finish_run(self, run_id: str | None, status: str, outcome: Any, error: str | None, now: datetime) -> None:
        if run_id is None:
            return
        created = [v.item_id for v in outcome.volumes if v.ok and v.item_id and not v.reused]

        def write() -> None:  # the catalog may be back a little later: the run is not left `running`
            with self.catalog.session() as s:
                s.execute(
                    update(PolicyRunRow).where(PolicyRunRow.id == run_id).values(
                        status=status, finished_at=now, items_created=created,
                        items_pruned=[p.id for p in outcome.pruned], bytes=outcome.bytes, error=error,
                    )
                )

        record_when_back(write)

    def _mark_interrupted(self, *, owner_prefix: str, now: datetime) -> int:
        """Runs left ``running`` by a runner of this host that died (we hold the host lock now)."""
        with self.catalog.session() as s:
            result = s.execute(
                update(PolicyRunRow)
                .where(PolicyRunRow.status == "running", PolicyRunRow.owner.startswith(owner_prefix))
                .values(status="interrupted", finished_at=now, error="the runner stopped before the run finished")
            )
            return result.rowcount or 0
