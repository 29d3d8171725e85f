"""The cron-safe runner behind ``storagectl run``: run due policies once per slot, then prune.

One call: take the host-wide lock (or raise Busy / wait), mark runs left ``running`` by a dead
runner as ``interrupted``, then for every enabled policy decide (pure, ``schedule.decide``)
whether its newest slot still needs a run. A run makes one snapshot or backup per selected
volume, labelled with the policy id and the slot; an item already made for this slot by an
earlier, interrupted attempt is reused, so a retry finishes the job instead of redoing it.
Retention runs per volume and only after that volume's new item succeeded (and verified), and
only over good items carrying this policy's label; the newest item is always kept.
"""

from __future__ import annotations

import contextvars
import os
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from storage.errors import StorageError
from storage.policy import retention
from storage.policy.actions import Actions, Created, actions_for
from storage.policy.events import EventSink, make_event
from storage.policy.lock import LOCK_NAME, HostLock
from storage.policy.models import Policy
from storage.policy.schedule import DueDecision, decide
from storage.logs import context as log_context
from storage.logs.ops import operation

if TYPE_CHECKING:
    from storage.domain import Volume
    from storage.policy.service import PolicyService
    from storage.volumes.service import VolumeService

Clock = Callable[[], datetime]
ProgressSink = Callable[[str, str, Any], None]  # (policy name, volume name, backup Progress)
NEW_ITEM = "(new)"


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class VolumeOutcome:
    volume_id: str
    volume_name: str
    ok: bool
    item_id: str | None = None
    reused: bool = False  # made by an earlier attempt for the same slot
    bytes: int = 0
    size_bytes: int = 0
    error: str | None = None
    exit_code: int = 0


@dataclass
class Pruned:
    id: str
    volume: str
    created_at: datetime
    reason: str


@dataclass
class PolicyOutcome:
    policy: str
    policy_id: str
    due: bool
    reason: str
    slot: datetime | None = None
    trigger: str = "schedule"
    status: str = "skipped"  # skipped | planned | succeeded | partial | failed
    run_id: str | None = None
    volumes: list[VolumeOutcome] = field(default_factory=list)
    pruned: list[Pruned] = field(default_factory=list)
    would_prune: list[Pruned] = field(default_factory=list)  # dry run
    would_keep: list[Pruned] = field(default_factory=list)  # dry run: reason = the rules that keep it
    bytes: int = 0
    errors: list[str] = field(default_factory=list)
    exit_code: int = 0
    duration_seconds: float = 0.0
    next_slot: datetime | None = None


@dataclass
class RunReport:
    started_at: datetime
    finished_at: datetime | None
    dry_run: bool
    policies: list[PolicyOutcome]

    @property
    def failures(self) -> list[str]:
        return [f"policy {p.policy}: {e}" for p in self.policies for e in p.errors]

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def exit_code(self) -> int:
        codes = [p.exit_code for p in self.policies if p.errors]
        return 0 if not codes else (codes[0] or 1)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        out = asdict(self)
        out.update(ok=self.ok, exit_code=self.exit_code, failures=self.failures)
        return out


def owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def select_volumes(volumes: "VolumeService", policy: Policy) -> tuple[list["Volume"], list[str]]:
    """The volumes a policy covers now, and errors for named volumes that do not exist."""
    sel = policy.selector
    if sel.volumes:
        found, missing = [], []
        for ref in sel.volumes:
            try:
                found.append(volumes.get(ref))
            except StorageError as exc:
                missing.append(f"volume {ref}: {exc.message}")
        return found, missing
    return volumes.list(pool=sel.pool, labels=sel.labels or None), []


def plan_prune(items: list[retention.Item], policy: Policy) -> list[retention.Decision]:
    """Retention decisions for a volume's good items of this policy (pure)."""
    return retention.decide(items, policy.retention.rules(), policy.timezone)


def prune_reason(decision: retention.Decision, policy: Policy) -> str:
    return f"matched no keep rule ({policy.retention.describe()})"


class Runner:
    def __init__(
        self,
        service: "PolicyService",
        *,
        clock: Clock | None = None,
        on_event: EventSink | None = None,
        progress: ProgressSink | None = None,
        run_key: str | None = None,
    ) -> None:
        """``run_key``: the job id of a manual run submitted as a job (storage.policy.actions)."""
        self.run_key = run_key
        self.service = service
        self.policies = service
        self.clock = clock or service.clock
        self.on_event = on_event
        self.progress = progress

    # -- events -------------------------------------------------------------------
    def emit(self, event: str, policy: Policy | None = None, **fields: Any) -> None:
        if self.on_event is None:
            return
        if policy is not None:
            fields = {"policy": policy.name, "policy_id": policy.id, **fields}
        self.on_event(make_event(event, self.clock(), **fields))

    # -- entry point --------------------------------------------------------------
    def run(
        self,
        *,
        now_policies: list[str] | None = None,
        dry_run: bool = False,
        wait: bool = False,
        wait_timeout: float | None = None,
    ) -> RunReport:
        forced = [self.service.get(ref) for ref in now_policies or []]
        if dry_run:
            return self._run_locked(forced, dry_run=True)
        lock = HostLock(self.policies.data_dir / LOCK_NAME)
        lock.acquire(wait=wait, timeout=wait_timeout)
        try:
            self.service._mark_interrupted(owner_prefix=socket.gethostname() + ":", now=self.clock())
            return self._run_locked(forced, dry_run=False)
        finally:
            lock.release()

    def _run_locked(self, forced: list[Policy], *, dry_run: bool) -> RunReport:
        report = RunReport(self.clock(), None, dry_run, [])
        self.emit("runner_start", dry_run=dry_run, pid=os.getpid())
        if forced:
            todo = [(p, DueDecision(True, self.clock(), "run now (--now)")) for p in forced]
        else:
            todo = []
            for policy in self.service.list():
                if not policy.enabled:
                    report.policies.append(PolicyOutcome(policy.name, policy.id, False, "disabled"))
                    continue
                todo.append((policy, self.service.due(policy, self.clock())))
        for policy, decision in todo:
            trigger = "manual" if forced else "schedule"
            if not decision.due:
                outcome = PolicyOutcome(
                    policy.name, policy.id, False, decision.reason, decision.slot, next_slot=decision.next_slot
                )
                self.emit("skip", policy, reason=decision.reason, next_slot=decision.next_slot)
            elif dry_run:
                outcome = self._plan(policy, decision, trigger)
            else:
                outcome = self._run_policy(policy, decision, trigger)
            report.policies.append(outcome)
        report.finished_at = self.clock()
        self.emit(
            "runner_finish", ok=report.ok, exit_code=report.exit_code,
            ran=sum(1 for p in report.policies if p.status not in ("skipped", "planned")),
            failures=report.failures or None,
        )
        return report

    # -- dry run ------------------------------------------------------------------
    def _plan(self, policy: Policy, decision: DueDecision, trigger: str) -> PolicyOutcome:
        assert decision.slot is not None
        out = PolicyOutcome(policy.name, policy.id, True, decision.reason, decision.slot, trigger, "planned")
        volumes, missing = select_volumes(self.policies.volumes, policy)
        out.errors.extend(missing)
        actions = actions_for(self.policies, policy, manual=trigger == "manual", run_key=self.run_key)
        for vol in volumes:
            good = [i for i in actions.items(vol.id) if i.good]
            already = actions.filling(good, decision.slot) is not None
            out.volumes.append(VolumeOutcome(vol.id, vol.name, True, reused=already))
            items = [retention.Item(i.id, i.created_at) for i in good]
            if not already:
                items.append(retention.Item(NEW_ITEM, self.clock()))
            for d in plan_prune(items, policy):
                if d.keep:
                    out.would_keep.append(Pruned(d.id, vol.name, d.created_at, d.reason))
                else:
                    out.would_prune.append(Pruned(d.id, vol.name, d.created_at, prune_reason(d, policy)))
        self.emit(
            "plan", policy, slot=decision.slot, trigger=trigger, reason=decision.reason,
            volumes=[v.volume_name for v in out.volumes],
            would_prune=[{"id": p.id, "volume": p.volume, "reason": p.reason} for p in out.would_prune] or None,
        )
        return out

    # -- a real run ---------------------------------------------------------------
    @operation("policy.run")
    def _run_policy(self, policy: Policy, decision: DueDecision, trigger: str) -> PolicyOutcome:
        assert decision.slot is not None
        log_context.annotate(policy_id=policy.id)
        slot = decision.slot
        started = time.monotonic()
        out = PolicyOutcome(policy.name, policy.id, True, decision.reason, slot, trigger, "failed")
        out.run_id = self.service._start_run(policy, slot, trigger, decision.attempt, decision.missed, owner(), self.clock())
        self.emit("start", policy, run_id=out.run_id, slot=slot, trigger=trigger, attempt=decision.attempt,
                  missed_slots=decision.missed or None)
        try:
            volumes, missing = select_volumes(self.policies.volumes, policy)
            for message in missing:
                out.errors.append(message)
                out.exit_code = out.exit_code or 3
                self.emit("error", policy, run_id=out.run_id, error=message)
            actions = actions_for(self.policies, policy, manual=trigger == "manual", run_key=self.run_key)

            def record(result: VolumeOutcome) -> None:
                out.volumes.append(result)
                out.bytes += result.bytes
                if result.ok:
                    self.emit("item", policy, run_id=out.run_id, volume=result.volume_name, item=result.item_id,
                              reused=result.reused, bytes=result.bytes, size_bytes=result.size_bytes)
                else:
                    out.errors.append(f"volume {result.volume_name}: {result.error}")
                    out.exit_code = out.exit_code or result.exit_code
                    self.emit("error", policy, run_id=out.run_id, volume=result.volume_name, error=result.error)

            self._make_items(policy, actions, volumes, slot, record)
            for result in out.volumes:
                if result.ok:
                    self._prune_volume(policy, actions, result, out)
        except StorageError as exc:
            out.errors.append(exc.message)
            out.exit_code = out.exit_code or exc.exit_code
            self.emit("error", policy, run_id=out.run_id, error=exc.message)
        except Exception as exc:  # a bug in one policy must not stop the others; it is named and fails the run
            message = f"unexpected {type(exc).__name__}: {exc}"
            out.errors.append(message)
            out.exit_code = out.exit_code or 1
            self.emit("error", policy, run_id=out.run_id, error=message)
        except BaseException as exc:
            self.service._finish_run(out.run_id, "interrupted", out, f"interrupted: {type(exc).__name__}", self.clock())
            raise
        ok_volumes = sum(1 for v in out.volumes if v.ok)
        if not out.errors:
            out.status = "succeeded"
        elif ok_volumes:
            out.status = "partial"
        out.duration_seconds = round(time.monotonic() - started, 3)
        self.service._finish_run(out.run_id, out.status, out, "; ".join(out.errors) or None, self.clock())
        self.emit(
            "finish", policy, run_id=out.run_id, status=out.status, slot=slot, volumes=len(out.volumes),
            created=[v.item_id for v in out.volumes if v.ok and not v.reused],
            reused=[v.item_id for v in out.volumes if v.reused] or None,
            bytes=out.bytes, pruned=[p.id for p in out.pruned], duration_seconds=out.duration_seconds,
            errors=out.errors or None,
        )
        return out

    def _make_items(self, policy: Policy, actions: Actions, volumes: list["Volume"], slot: datetime,
                    record: Callable[[VolumeOutcome], None]) -> None:
        """Make one item per volume; ``record`` is called in this thread as each one finishes."""
        workers = policy.backup.max_concurrent if policy.kind == "backup" and policy.backup else 1
        if workers <= 1 or len(volumes) <= 1:
            for vol in volumes:
                record(self._make_one(policy, actions, vol, slot))
            return
        with ThreadPoolExecutor(max_workers=min(workers, len(volumes)), thread_name_prefix="policy") as pool:
            # each worker runs in a copy of this context: its lines carry the run's trace and policy ids
            futures = [pool.submit(contextvars.copy_context().run, self._make_one, policy, actions, vol, slot) for vol in volumes]
            for future in as_completed(futures):
                record(future.result())

    def _make_one(self, policy: Policy, actions: Actions, vol: "Volume", slot: datetime) -> VolumeOutcome:
        with log_context.bind(volume_id=vol.id):
            return self._make_one_bound(policy, actions, vol, slot)

    def _make_one_bound(self, policy: Policy, actions: Actions, vol: "Volume", slot: datetime) -> VolumeOutcome:
        try:
            item = actions.filling(actions.items(vol.id), slot)
            if item is not None:
                actions.verify(item.id)  # an earlier attempt may have stopped before verifying it
                return VolumeOutcome(vol.id, vol.name, True, item.id, reused=True)
            progress = None
            if self.progress is not None:
                sink = self.progress
                progress = lambda p: sink(policy.name, vol.name, p)  # noqa: E731
            created: Created = actions.create(vol.id, slot, self.clock(), progress)
            actions.verify(created.id)
            return VolumeOutcome(vol.id, vol.name, True, created.id, False, created.bytes, created.size_bytes)
        except StorageError as exc:
            return VolumeOutcome(vol.id, vol.name, False, error=exc.message, exit_code=exc.exit_code)
        except Exception as exc:  # an unexpected failure of one volume must not hide the others
            return VolumeOutcome(vol.id, vol.name, False, error=f"{type(exc).__name__}: {exc}", exit_code=1)

    def _prune_volume(self, policy: Policy, actions: Actions, result: VolumeOutcome, out: PolicyOutcome) -> None:
        good = [i for i in actions.items(result.volume_id) if i.good]
        if result.item_id not in {i.id for i in good}:
            return  # never prune on the strength of an item that is not there and good
        decisions = plan_prune([retention.Item(i.id, i.created_at) for i in good], policy)
        for d in retention.to_prune(decisions):
            if d.id == result.item_id:
                continue  # the item this run made or reused is never pruned by the same run
            try:
                actions.delete(d.id)
            except StorageError as exc:
                message = f"volume {result.volume_name}: pruning {d.id} failed: {exc.message}"
                out.errors.append(message)
                out.exit_code = out.exit_code or exc.exit_code
                self.emit("error", policy, run_id=out.run_id, volume=result.volume_name, item=d.id, error=message)
                continue
            pruned = Pruned(d.id, result.volume_name, d.created_at, prune_reason(d, policy))
            out.pruned.append(pruned)
            self.emit("prune", policy, run_id=out.run_id, volume=result.volume_name, item=d.id,
                      item_time=d.created_at, reason=pruned.reason)
