"""Run a Plan's changes through the services, in the plan's order; stop at the first failure."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from storage.apply.plan import Change, Plan
from storage.errors import InvalidInput, StorageError

if TYPE_CHECKING:
    from storage.exports.service import ExportService
    from storage.policy.service import PolicyService
    from storage.volumes.service import VolumeService


def gate(plan: Plan, *, yes: bool) -> None:
    """Refuse to apply a plan with refusals, or with deletions not confirmed by ``yes``."""
    if plan.refused:
        raise InvalidInput(
            "the plan refuses: " + "; ".join(f"{c.kind} {c.name}: {c.reason}" for c in plan.refused[:20])
            + "; nothing was changed",
            field="stack", refused=[f"{c.kind} {c.name}" for c in plan.refused],
        )  # fmt: skip
    if plan.deletes and not yes:
        names = ", ".join(f"{c.kind} {c.name}" for c in plan.deletes[:20])
        raise InvalidInput(
            f"--prune would delete {len(plan.deletes)} item(s): {names}; accepted: confirm with --yes "
            "(API: yes=true), or run without --prune; nothing was changed",
            field="yes",
        )


def _run(change: Change, volumes: "VolumeService", policies: "PolicyService", exports: "ExportService") -> None:
    p = change.params
    if change.kind == "volume":
        if change.action == "create":
            from storage.scheduler.hints import validate_hints

            hints = validate_hints(host=p["host"]) if p.get("host") else None
            volumes.create(change.name, p["size"], pool=p.get("pool"), labels=p.get("labels") or {}, hints=hints)
        elif change.action == "extend":
            volumes.extend(change.name, p["size"])
        elif change.action == "update":
            volumes.update(change.name, labels=p["labels"])
        elif change.action == "delete":
            volumes.delete(change.name)
    elif change.kind == "policy":
        if change.action == "create":
            policies.create(
                change.name, p["kind"], p["schedule"], selector=p["selector"], retention=p["retention"],
                timezone=p["timezone"], backup=p["backup"], enabled=p["enabled"],
            )  # fmt: skip
        elif change.action == "update":
            policies.update(change.name, **p)
        elif change.action == "delete":
            policies.delete(change.name)
    elif change.kind == "export":
        if change.action in ("replace", "delete"):
            exports.unexport(change.name)
        if change.action in ("create", "replace"):
            exports.export(change.name, initiators=p["initiators"], chap=p["chap"])


def execute(
    plan: Plan, *, volumes: "VolumeService", policies: "PolicyService", exports: "ExportService"
) -> list[dict[str, Any]]:
    """Perform every change; returns what was done. A failure raises the service's own error type,
    its message naming the change and how many changes were done before it."""
    done: list[dict[str, Any]] = []
    for change in plan.actions:
        try:
            _run(change, volumes, policies, exports)
        except StorageError as exc:
            exc.message = f"{change.action} {change.kind} {change.name}: {exc.message} ({len(done)} change(s) done before it)"
            exc.args = (exc.message,)
            exc.details = {**exc.details, "done": [f"{d['action']} {d['kind']} {d['name']}" for d in done]}
            raise
        done.append({"kind": change.kind, "name": change.name, "action": change.action, "reason": change.reason})
    return done
