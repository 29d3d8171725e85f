"""ApplyService (``st.apply``'s engine): stack text or data -> plan -> (optionally) apply."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from storage.apply.execute import execute, gate
from storage.apply.models import Stack
from storage.apply.plan import plan as make_plan
from storage.apply.source import load_stack, validate_stack
from storage.apply.state import read_state

if TYPE_CHECKING:
    from collections.abc import Callable

    from storage.exports.service import ExportService
    from storage.host.api import HostApi
    from storage.policy.service import PolicyService
    from storage.volumes.service import VolumeService
    from storage.volumes.snapshots import SnapshotService


class ApplyResult(BaseModel):
    """What an apply planned and (unless dry_run) did."""

    dry_run: bool
    changed: bool  # the plan has changes (dry run) or changes were made
    plan: dict[str, Any]
    done: list[dict[str, Any]] = Field(default_factory=list)


def as_stack(doc: "Stack | str | bytes | dict[str, Any]", source: str = "stack.yaml") -> Stack:
    """A Stack from YAML text (errors carry line numbers), parsed data, or a Stack."""
    if isinstance(doc, Stack):
        return doc
    if isinstance(doc, (str, bytes)):
        return load_stack(doc, source)
    return validate_stack(doc, None, source)


class ApplyService:
    def __init__(
        self,
        *,
        host_name: str,
        host: "HostApi",
        volumes: "VolumeService",
        snapshots: "SnapshotService",
        policies: "PolicyService",
        exports: "Callable[[], ExportService]",
    ) -> None:
        """exports is a provider: building the export service reads the [export] setup."""
        self._host_name = host_name
        self._host = host
        self._volumes = volumes
        self._snapshots = snapshots
        self._policies = policies
        self._exports = exports

    def apply(
        self,
        doc: "Stack | str | bytes | dict[str, Any]",
        *,
        dry_run: bool = True,
        prune: bool = False,
        yes: bool = False,
        delete_volumes: bool = False,
        source: str = "stack.yaml",
    ) -> ApplyResult:
        stack = as_stack(doc, source)
        state = read_state(
            host_name=self._host_name, host=self._host, volumes=self._volumes, snapshots=self._snapshots,
            policies=self._policies, exports=self._exports(), declared_volumes=frozenset(v.name for v in stack.volumes),
            prune=prune,
        )  # fmt: skip
        plan = make_plan(state, stack, prune=prune, delete_volumes=delete_volumes)
        if dry_run:
            return ApplyResult(dry_run=True, changed=plan.changed, plan=plan.to_dict())
        gate(plan, yes=yes)
        done = execute(plan, volumes=self._volumes, policies=self._policies, exports=self._exports())
        return ApplyResult(dry_run=False, changed=bool(done), plan=plan.to_dict(), done=done)
