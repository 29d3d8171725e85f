"""The policies page's data: next slot, last runs, and what retention keeps now and why.

Everything is asked of the policy service and its runner's own pure functions
(``PolicyService.due``, ``history``, ``runner.select_volumes``, ``actions_for(...).items``,
``runner.plan_prune``): the dashboard shows the decisions the runner would make, it does not
make its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from storage.errors import StorageError
from storage.policy.actions import actions_for
from storage.policy.models import Policy, RunRecord
from storage.policy.retention import Item
from storage.policy.runner import plan_prune, prune_reason, select_volumes

RUNS_SHOWN = 5
ITEMS_SHOWN = 50  # retention rows per policy


@dataclass(frozen=True)
class Kept:
    volume: str
    item_id: str
    created_at: datetime
    keep: bool
    why: str


@dataclass
class PolicyView:
    policy: Policy
    summary: dict[str, Any]
    next_slot: str
    due_reason: str
    runs: list[RunRecord] = field(default_factory=list)
    retention: list[Kept] = field(default_factory=list)
    retention_more: int = 0
    problems: list[str] = field(default_factory=list)


def next_slot_text(policy: Policy, decision: Any) -> str:
    if not policy.enabled:
        return "disabled"
    if decision.due:
        return "due now"
    return decision.next_slot.strftime("%Y-%m-%d %H:%M UTC") if decision.next_slot else "none"


def policy_view(st: Any, policy: Policy) -> PolicyView:
    decision = st.policies.due(policy)
    view = PolicyView(policy, policy.summary(), next_slot_text(policy, decision), decision.reason,
                      st.policies.history(policy.id, limit=RUNS_SHOWN))
    try:
        volumes, missing = select_volumes(st.volumes, policy)
        view.problems.extend(missing)
        actions = actions_for(st.policies, policy)
        rows: list[Kept] = []
        for vol in volumes:
            good = [i for i in actions.items(vol.id) if i.good]
            for d in plan_prune([Item(i.id, i.created_at) for i in good], policy):
                rows.append(Kept(vol.name, d.id, d.created_at, d.keep, d.reason if d.keep else prune_reason(d, policy)))
    except StorageError as exc:  # a repository that cannot be listed is shown, not a failed page
        view.problems.append(exc.message)
        rows = []
    view.retention = rows[:ITEMS_SHOWN]
    view.retention_more = max(0, len(rows) - ITEMS_SHOWN)
    return view
