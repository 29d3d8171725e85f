"""What a policy does to one volume: create a snapshot or a backup, list and delete its items.

This is the only module of the policy package that calls the snapshot and backup services, so
their API is adapted in one place. Items made by a policy carry three labels: ``storage.policy``
(the policy id), ``storage.policy.slot`` (the UTC slot time: a retry of the slot reuses items
that carry it) and ``storage.policy.time`` (when the runner made it, by the runner's clock); items
of a manual run (``run --now``) also carry ``storage.policy.trigger=manual`` and never stand in for
a scheduled slot, even when made in the very second the slot fires. A manual run submitted as a
job carries ``storage.policy.run=<job id>``: the queue may deliver it again after its agent died,
and that attempt reuses what the first one made instead of making second items.
Retention only ever looks at items with the policy's label and orders and buckets them by
``storage.policy.time`` (falling back to the catalog's creation time), so manual runs, late
catch-up runs and scheduled runs are ordered as they really happened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from storage.errors import DataCorruption, InvalidInput, NotFound, StorageError
from storage.policy.models import POLICY_LABEL, RUN_LABEL, SLOT_LABEL, TIME_LABEL, TRIGGER_LABEL, Policy

if TYPE_CHECKING:
    from storage.policy.service import PolicyService

GOOD_SNAPSHOT_STATUSES = frozenset({"available", "backing-up", "cloning"})
GOOD_BACKUP_STATUSES = frozenset({"available"})


@dataclass(frozen=True)
class PolicyItem:
    id: str
    volume_id: str
    created_at: datetime  # when the runner made it (storage.policy.time), else its catalog creation time
    status: str
    good: bool
    slot: str | None  # the slot label
    manual: bool = False  # made by a manual run (``run --now``), so it fills no scheduled slot
    run: str | None = None  # the run key (job id) of the manual run that made it


@dataclass(frozen=True)
class Created:
    id: str
    bytes: int = 0  # bytes uploaded (backups) or 0
    size_bytes: int = 0


def slot_text(slot: datetime) -> str:
    return slot.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def time_text(when: datetime) -> str:
    """When an item was made, to the microsecond: items of runs in the same second stay ordered."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_slot_text(text: str | None) -> datetime | None:
    """A slot or time label: whole seconds (slots, older items) or microseconds (``time_text``)."""
    if not text:
        return None
    for layout in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(text, layout).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def _when(labels: dict[str, str], created_at: datetime | None) -> datetime:
    made = parse_slot_text(labels.get(TIME_LABEL))
    if made is not None:
        return made
    if created_at is None:
        return datetime.fromtimestamp(0, UTC)
    return created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)


class Actions:
    """Base: the per-volume operations of one policy."""

    def __init__(self, policies: "PolicyService", policy: Policy, *, manual: bool = False, run_key: str | None = None) -> None:
        self.snapshots = policies.snapshots
        self.backups = policies.backups
        self.policy = policy
        self.manual = manual  # for a manual run (``run --now``): its items fill no scheduled slot
        self.run_key = run_key  # a manual run's job id: a re-delivered attempt reuses its items

    def labels_for(self, slot: datetime, made_at: datetime) -> dict[str, str]:
        labels = {POLICY_LABEL: self.policy.id, SLOT_LABEL: slot_text(slot), TIME_LABEL: time_text(made_at)}
        if self.manual:
            labels[TRIGGER_LABEL] = "manual"
            if self.run_key:
                labels[RUN_LABEL] = self.run_key
        return labels

    def filling(self, items: list[PolicyItem], slot: datetime) -> PolicyItem | None:
        """The good item an earlier attempt of this scheduled slot made (a retry reuses it); a
        manual run reuses only what an earlier attempt of the same job made (its run key), and a
        manual run's items never fill a scheduled slot."""
        if self.manual:
            return next((i for i in items if i.good and i.manual and i.run == self.run_key), None) if self.run_key else None
        wanted = slot_text(slot)
        return next((i for i in items if i.good and not i.manual and i.slot == wanted), None)

    def items(self, volume_id: str) -> list[PolicyItem]:
        raise NotImplementedError

    def create(self, volume_id: str, slot: datetime, made_at: datetime,
               progress: Callable[[Any], None] | None = None) -> Created:
        raise NotImplementedError

    def delete(self, item_id: str) -> None:
        raise NotImplementedError

    def verify(self, item_id: str) -> None:
        """Raise DataCorruption when the new item does not verify (backups only)."""


class SnapshotActions(Actions):
    def items(self, volume_id: str) -> list[PolicyItem]:
        snaps = self.snapshots.list(volume=volume_id, labels={POLICY_LABEL: self.policy.id})
        return [
            PolicyItem(
                s.id, s.volume_id, _when(s.labels, s.created_at), str(getattr(s.status, "value", s.status)),
                str(getattr(s.status, "value", s.status)) in GOOD_SNAPSHOT_STATUSES, s.labels.get(SLOT_LABEL),
                s.labels.get(TRIGGER_LABEL) == "manual", s.labels.get(RUN_LABEL),
            )
            for s in snaps
        ]

    def create(self, volume_id: str, slot: datetime, made_at: datetime,
               progress: Callable[[Any], None] | None = None) -> Created:
        snap = self.snapshots.create(volume_id, None, labels=self.labels_for(slot, made_at))
        return Created(snap.id, 0, snap.size_bytes)

    def delete(self, item_id: str) -> None:
        self.snapshots.delete(item_id)


class BackupActions(Actions):
    def items(self, volume_id: str) -> list[PolicyItem]:
        backups = self.backups.list(volume=volume_id, labels={POLICY_LABEL: self.policy.id})
        return [
            PolicyItem(
                b.id, b.volume_id or volume_id, _when(b.labels, b.created_at), b.status,
                b.status in GOOD_BACKUP_STATUSES, b.labels.get(SLOT_LABEL), b.labels.get(TRIGGER_LABEL) == "manual",
                b.labels.get(RUN_LABEL),
            )
            for b in backups
            if b.labels.get(POLICY_LABEL) == self.policy.id
        ]

    def create(self, volume_id: str, slot: datetime, made_at: datetime,
               progress: Callable[[Any], None] | None = None) -> Created:
        opts = self.policy.backup
        assert opts is not None
        kwargs: dict[str, Any] = {"labels": self.labels_for(slot, made_at), "progress": progress}
        if opts.repository:
            kwargs["repository"] = opts.repository
        if opts.encryption_key_file:
            kwargs["encryption_key_file"] = opts.encryption_key_file
        if opts.bandwidth_limit:
            kwargs["bandwidth_limit"] = opts.bandwidth_limit
        backup = self.backups.create(volume_id, **kwargs)
        if backup.status not in GOOD_BACKUP_STATUSES:
            raise StorageError(f"backup {backup.id} of volume {volume_id} ended in status {backup.status!r}: {backup.error}")
        return Created(backup.id, int(backup.stored_bytes or 0), int(backup.size_bytes or 0))

    def delete(self, item_id: str) -> None:
        self.backups.delete(item_id)

    def verify(self, item_id: str) -> None:
        opts = self.policy.backup
        if opts is None or opts.verify == "none":
            return
        deep = opts.verify == "deep"
        report = self.backups.verify(
            item_id, deep=deep, sample_percent=opts.verify_sample_percent if deep else 100.0,
            key_file=opts.encryption_key_file,
        )
        from storage.backup.verify import verify_failure

        failure = verify_failure(report)
        if failure is not None:  # the same message and details as `backup verify` (what is damaged)
            raise DataCorruption(
                f"backup {item_id} failed {opts.verify} verification right after it was made: {failure.message}",
                **failure.details,
            )


def actions_for(policies: "PolicyService", policy: Policy, *, manual: bool = False, run_key: str | None = None) -> Actions:
    kind = SnapshotActions if policy.kind == "snapshot" else BackupActions
    return kind(policies, policy, manual=manual, run_key=run_key)


def check_repository(policies: "PolicyService", url: str | None, compression: str | None = None) -> None:
    """Refuse a backup target whose store or container does not exist (field ``repository``), and
    a compression choice the repository cannot honour (field ``compression``): compression is fixed
    when a repository's config object is written, from ``[backup] compression`` for a new one."""
    target = url or policies.backup_settings.repository or ""
    try:
        location = policies.objects.open_url(target)
    except StorageError as exc:
        raise InvalidInput(f"backup repository {target!r} is not usable: {exc.message}", field="repository") from None
    try:
        try:
            location.store.stat_container(location.container)
        except NotFound:
            if url is None:  # the default repository is created by the first backup
                return _check_compression(compression, policies.backup_settings.compression, target, existing=False)
            raise NotFound(
                f"backup repository {target!r} does not exist: container {location.container!r} not found; accepted: "
                "an existing repository or container (create the container first, e.g. `storagectl object container "
                "create`)",
                field="repository",
            ) from None
        except StorageError as exc:
            raise InvalidInput(f"backup repository {target!r} cannot be checked: {exc.message}", field="repository") from None
        if compression is None:
            return None
        from storage.backup import format as repo_format

        try:
            raw = location.store.get_bytes(location.container, location.key(repo_format.CONFIG_OBJECT))
        except NotFound:
            return _check_compression(compression, policies.backup_settings.compression, target, existing=False)
        config = repo_format.RepoConfig.from_json(raw, target)
        return _check_compression(compression, config.compression, target, existing=True)
    finally:
        location.store.close()


def _check_compression(wanted: str | None, actual: str, url: str, *, existing: bool) -> None:
    if wanted is None or wanted == actual:
        return
    why = "was fixed when it was created" if existing else "will be created with [backup] compression"
    raise InvalidInput(
        f"backup.compression {wanted!r} does not match repository {url!r}, whose compression {why} ({actual!r}); "
        f"accepted: {actual!r} or leave it out",
        field="compression",
    )
