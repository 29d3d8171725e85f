"""``plan(current, desired) -> Plan``: what an apply would create, change and delete, and why.

Pure: the current state is plain data (``CurrentState``, read by storage.apply.state), the
desired state a validated ``Stack``. Nothing here does I/O. Rules:

- a volume not present is created; a larger size extends it; a smaller one is refused (shrink);
  other labels replace its labels; another pool or host is refused (volumes do not move).
- a policy not present is created; other fields update it; another kind is refused.
- an export not present is created; other CHAP or initiators re-export it (a new CHAP secret).
- with ``prune``, what the file does not declare is deleted: exports and policies always; a
  volume only when it is known to hold no data (every block a hole) or ``delete_volumes`` is
  given, and never while it has snapshots or is attached by anything but a pruned export.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from storage.apply.models import Stack
from storage.units import round_up

Kind = Literal["volume", "policy", "export"]
Action = Literal["create", "extend", "update", "replace", "delete", "keep", "refuse"]
CHANGES = ("create", "extend", "update", "replace", "delete")
POLICY_FIELDS = ("kind", "schedule", "timezone", "selector", "retention", "backup", "enabled")


@dataclass(frozen=True)
class VolumeState:
    name: str
    size_bytes: int
    pool: str
    labels: dict[str, str] = field(default_factory=dict)
    attached: bool = False
    snapshots: int = 0
    all_holes: bool = False  # True only when the backend tells it holds no data


@dataclass(frozen=True)
class ExportState:
    volume: str
    chap: bool
    initiators: tuple[str, ...] = ()
    attached_by_export: bool = False


@dataclass(frozen=True)
class CurrentState:
    host: str
    granularity: dict[str, int] = field(default_factory=dict)  # pool -> bytes
    volumes: dict[str, VolumeState] = field(default_factory=dict)
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> POLICY_FIELDS
    exports: dict[str, ExportState] = field(default_factory=dict)  # volume name -> export


@dataclass(frozen=True)
class Change:
    kind: Kind
    name: str
    action: Action
    reason: str
    params: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        return f"{self.action:7} {self.kind} {self.name}: {self.reason}"


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    prune: bool = False

    @property
    def refused(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.action == "refuse")

    @property
    def actions(self) -> tuple[Change, ...]:
        """The changes an apply performs, in order: creates and updates, then deletes."""
        return tuple(c for c in self.changes if c.action in CHANGES)

    @property
    def deletes(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.action == "delete")

    @property
    def changed(self) -> bool:
        return bool(self.actions)

    def counts(self) -> dict[str, int]:
        out = {a: 0 for a in (*CHANGES, "keep", "refuse")}
        for c in self.changes:
            out[c.action] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"changes": [asdict(c) for c in self.changes], "counts": self.counts(), "prune": self.prune}


def format_size(n: int) -> str:
    """Exact: the largest binary unit that divides the size (10G, 10241M), else bytes."""
    for suffix, unit in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if n and n % unit == 0:
            return f"{n // unit}{suffix}"
    return str(n)


def _labels_text(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}"


def _plan_volumes(current: CurrentState, desired: Stack) -> list[Change]:
    out: list[Change] = []
    for decl in desired.volumes:
        have = current.volumes.get(decl.name)
        want = decl.size_bytes()
        if have is None:
            if decl.host is not None and decl.host != current.host:
                out.append(Change("volume", decl.name, "refuse", f"host {decl.host!r} is not this host ({current.host})"))
                continue
            where = f"pool {decl.pool}" if decl.pool else "pool chosen by the scheduler"
            params = {"size": want, "pool": decl.pool, "host": decl.host, "labels": decl.labels}
            out.append(Change("volume", decl.name, "create", f"new, {format_size(want)} in {where}", params))
            continue
        if decl.pool is not None and decl.pool != have.pool:
            out.append(Change("volume", decl.name, "refuse", f"pool {have.pool} -> {decl.pool}: volumes do not move between pools"))
            continue
        if decl.host is not None and decl.host != current.host:
            out.append(Change("volume", decl.name, "refuse", f"host {current.host} -> {decl.host}: volumes do not move between hosts"))
            continue
        size = round_up(want, current.granularity.get(have.pool, 1))
        if size < have.size_bytes:
            out.append(Change(
                "volume", decl.name, "refuse",
                f"shrink {format_size(have.size_bytes)} -> {format_size(size)}: shrinking is refused; accepted: "
                f"a size of at least {format_size(have.size_bytes)}",
            ))  # fmt: skip
            continue
        if size > have.size_bytes:
            out.append(Change(
                "volume", decl.name, "extend", f"size {format_size(have.size_bytes)} -> {format_size(size)} (extend)",
                {"size": size},
            ))  # fmt: skip
        if decl.labels != have.labels:
            out.append(Change(
                "volume", decl.name, "update", f"labels {_labels_text(have.labels)} -> {_labels_text(decl.labels)}",
                {"labels": decl.labels},
            ))  # fmt: skip
    return out


def _plan_policies(current: CurrentState, desired: Stack) -> list[Change]:
    out: list[Change] = []
    for spec in desired.policies:
        want = spec.model_dump(include=set(POLICY_FIELDS))
        have = current.policies.get(spec.name)
        if have is None:
            out.append(Change("policy", spec.name, "create", f"new {spec.kind} policy, schedule {spec.schedule!r}", want))
            continue
        if have["kind"] != want["kind"]:
            out.append(Change(
                "policy", spec.name, "refuse",
                f"kind {have['kind']} -> {want['kind']}: a policy's kind cannot change; accepted: a new policy name",
            ))  # fmt: skip
            continue
        diffs = [f"{f} {have.get(f)!r} -> {want[f]!r}" for f in POLICY_FIELDS if have.get(f) != want[f]]
        if diffs:
            changes = {f: want[f] for f in POLICY_FIELDS if f != "kind" and have.get(f) != want[f]}
            out.append(Change("policy", spec.name, "update", "; ".join(diffs), changes))
    return out


def _export_text(chap: bool, initiators: tuple[str, ...] | list[str]) -> str:
    who = ", ".join(initiators) if initiators else "any initiator"
    return f"{'CHAP' if chap else 'no CHAP'}, {who}"


def _plan_exports(current: CurrentState, desired: Stack) -> list[Change]:
    out: list[Change] = []
    for decl in desired.exports:
        params = {"chap": decl.chap, "initiators": list(decl.initiators)}
        have = current.exports.get(decl.volume)
        if have is None:
            out.append(Change("export", decl.volume, "create", f"new iSCSI target ({_export_text(decl.chap, decl.initiators)})", params))
        elif have.chap != decl.chap or sorted(have.initiators) != sorted(decl.initiators):
            out.append(Change(
                "export", decl.volume, "replace",
                f"{_export_text(have.chap, have.initiators)} -> {_export_text(decl.chap, decl.initiators)} "
                "(unexport and export again; a new CHAP secret)",
                params,
            ))  # fmt: skip
    return out


def _plan_prune(
    current: CurrentState, desired: Stack, *, prune: bool, delete_volumes: bool
) -> list[Change]:
    out: list[Change] = []
    hint = "not in the file; --prune would delete it" if not prune else ""
    gone_exports = set()
    for name in sorted(set(current.exports) - {e.volume for e in desired.exports}):
        if prune:
            gone_exports.add(name)
            out.append(Change("export", name, "delete", "not in the file (--prune): unexport"))
        else:
            out.append(Change("export", name, "keep", hint))
    for name in sorted(set(current.policies) - {p.name for p in desired.policies}):
        if prune:
            out.append(Change("policy", name, "delete", "not in the file (--prune); its snapshots and backups stay"))
        else:
            out.append(Change("policy", name, "keep", hint))
    for name in sorted(set(current.volumes) - {v.name for v in desired.volumes}):
        vol = current.volumes[name]
        if not prune:
            out.append(Change("volume", name, "keep", hint))
        elif vol.snapshots:
            out.append(Change("volume", name, "keep", f"not in the file, but it has {vol.snapshots} snapshot(s); delete them first"))
        elif vol.attached and not (name in gone_exports and current.exports[name].attached_by_export):
            out.append(Change("volume", name, "keep", "not in the file, but it is attached; detach it first"))
        elif not vol.all_holes and not delete_volumes:
            out.append(Change(
                "volume", name, "keep",
                "not in the file, but it may hold data (the backend cannot tell it is all holes); "
                "give --delete-volumes to delete it",
            ))  # fmt: skip
        else:
            why = "it holds no data (all holes)" if vol.all_holes else "--delete-volumes"
            out.append(Change("volume", name, "delete", f"not in the file (--prune); {why}"))
    return out


def plan(current: CurrentState, desired: Stack, *, prune: bool = False, delete_volumes: bool = False) -> Plan:
    """Every change in the order an apply runs them: volumes, policies, exports, then deletions
    (exports, policies, volumes), each list sorted as the file gives it."""
    changes = [
        *_plan_volumes(current, desired),
        *_plan_policies(current, desired),
        *_plan_exports(current, desired),
        *_plan_prune(current, desired, prune=prune, delete_volumes=delete_volumes),
    ]
    return Plan(tuple(changes), prune=prune)
