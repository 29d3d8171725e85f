"""What the dashboard pages show, as pure functions over the services' models (table-tested).

No business rule lives here: capacity, states and retention come from the services; these
functions only order, count, filter and shape them for the templates.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from storage.bounds import REF_MAX, short_repr
from storage.domain import Volume, VolumeStatus
from storage.errors import InvalidInput
from storage.names import parse_labels
from storage.units import format_size

FAILED_JOB_STATES = ("failed", "interrupted")
BAD_BACKUP_STATUSES = ("damaged", "lost", "error", "interrupted")
ACTIVE_JOB_STATES = ("queued", "running")


@dataclass(frozen=True)
class Bar:
    """A capacity bar: used out of total, its percent and a level for its colour."""

    used: int
    total: int
    percent: float
    level: str  # ok | warn | full | unknown
    text: str


def capacity_bar(total: int | None, free: int | None) -> Bar:
    """Used = total - free; warn from 80 %, full from 95 %; unknown when the total is not known."""
    total = int(total or 0)
    if total <= 0:
        return Bar(0, 0, 0.0, "unknown", "capacity unknown")
    used = max(0, min(total, total - int(free or 0)))
    pct = round(100.0 * used / total, 1)
    level = "full" if pct >= 95 else "warn" if pct >= 80 else "ok"
    return Bar(used, total, pct, level, f"{format_size(used)} of {format_size(total)} used ({pct:g} %)")


def status_counts(statuses: Iterable[str], order: Iterable[str] = ()) -> list[tuple[str, int]]:
    """(status, count) pairs: known statuses in ``order`` first (those with items), then the rest by name."""
    counts = Counter(statuses)
    known = [s for s in order if counts.get(s)]
    rest = sorted(s for s in counts if s not in known)
    return [(s, counts[s]) for s in known + rest]


def attention_jobs(jobs: Iterable[Any]) -> list[Any]:
    """Failed and interrupted jobs, newest first (the service lists newest first already)."""
    return [j for j in jobs if _value(j.state) in FAILED_JOB_STATES]


def attention_backups(backups: Iterable[Any]) -> list[Any]:
    """Damaged, lost, failed and interrupted backups, damaged first, then newest first."""
    bad = [b for b in backups if b.status in BAD_BACKUP_STATUSES]
    rank = {s: i for i, s in enumerate(BAD_BACKUP_STATUSES)}
    return sorted(bad, key=lambda b: (rank[b.status], -(b.created_at.timestamp() if b.created_at else 0)))


@dataclass(frozen=True)
class VolumeFilters:
    status: str | None = None
    labels: dict[str, str] | None = None
    label_text: str = ""
    host: str | None = None

    @property
    def any(self) -> bool:
        return bool(self.status or self.labels or self.host)


def volume_filters(query: Mapping[str, str]) -> VolumeFilters:
    """``?status=&label=k=v&host=`` checked before any listing: unknown status or a bad label is
    InvalidInput naming what is accepted."""
    status = (query.get("status") or "").strip() or None
    if status is not None:
        accepted = [s.value for s in VolumeStatus]
        if status not in accepted:
            raise InvalidInput(f"status {short_repr(status)} is not accepted; accepted: {', '.join(accepted)}", field="status")
    label_text = (query.get("label") or "").strip()
    if len(label_text) > REF_MAX * 4:
        raise InvalidInput(f"label filter is {len(label_text)} characters long; accepted: at most {REF_MAX * 4}", field="label")
    items = [p.strip() for p in label_text.split(",") if p.strip()]
    labels = parse_labels(items) if items else None
    host = (query.get("host") or "").strip() or None
    if host is not None and len(host) > 255:
        raise InvalidInput(f"host is {len(host)} characters long; accepted: at most 255", field="host")
    return VolumeFilters(status, labels, label_text, host)


def filter_by_host(volumes: Iterable[Volume], host: str | None) -> list[Volume]:
    return [v for v in volumes if host is None or v.host == host]


@dataclass(frozen=True)
class VerifyState:
    """The backup's verification as the dashboard shows it: from its status and its newest verify job."""

    label: str  # verified | damaged | lost | verifying | failed to verify | not verified
    level: str  # ok | bad | busy | none
    job_id: str | None = None
    when: str | None = None


def verify_state(status: str, verify_jobs: list[Any]) -> VerifyState:
    """``verify_jobs``: this backup's verify jobs, newest first."""
    if status in ("damaged", "lost"):
        job = verify_jobs[0] if verify_jobs else None
        return VerifyState(status, "bad", job.id if job else None, _when(job))
    if not verify_jobs:
        return VerifyState("not verified", "none")
    job = verify_jobs[0]
    state = _value(job.state)
    if state in ACTIVE_JOB_STATES:
        return VerifyState("verifying", "busy", job.id, _when(job))
    if state == "succeeded":
        ok = bool((job.result or {}).get("ok")) if isinstance(job.result, dict) else False
        return VerifyState("verified" if ok else "damaged", "ok" if ok else "bad", job.id, _when(job))
    if state == "failed" and (getattr(job, "error", None) or {}).get("code") == "data_corruption":
        return VerifyState("damaged", "bad", job.id, _when(job))  # a verify that found damage ends failed
    return VerifyState(f"verify {state}", "bad", job.id, _when(job))


def jobs_by_target(jobs: Iterable[Any], kind: str) -> dict[str, list[Any]]:
    """Jobs of one kind grouped by target, each list newest first (as listed)."""
    out: dict[str, list[Any]] = {}
    for job in jobs:
        if job.kind == kind and job.target:
            out.setdefault(job.target, []).append(job)
    return out


def group_backups(backups: Iterable[Any]) -> list[tuple[str, list[Any]]]:
    """Backups by volume name (or source when the volume is gone), each group newest first."""
    groups: dict[str, list[Any]] = {}
    for b in backups:
        groups.setdefault(b.volume_name or b.volume_id or b.source or "(no volume)", []).append(b)
    for items in groups.values():
        items.sort(key=lambda b: b.created_at.timestamp() if b.created_at else 0, reverse=True)
    return sorted(groups.items())


def bar_value(percent: float | None, state: str) -> float | None:
    """The job bar: its percent; a job of unknown size is full once it succeeded, else undetermined (None)."""
    if percent is not None:
        return percent
    return 100.0 if state == "succeeded" else None


def outcome(job: Any) -> str:
    """What a finished job's result says went wrong although the job ran to its end (a verify that found damage)."""
    result = getattr(job, "result", None)
    if isinstance(result, dict) and result.get("ok") is False:
        bad = len(result.get("damaged_backups") or []) + len(result.get("lost_backups") or [])
        return f"found damage ({bad} backup{'s' if bad != 1 else ''})" if bad else "found problems"
    return ""


def job_json(job: Any) -> dict[str, Any]:
    """The fields the jobs page's script updates (no params, no result: nothing secret)."""
    state = _value(job.state)
    return {
        "id": job.id,
        "kind": job.kind,
        "state": state,
        "percent": job.percent,
        "bar": bar_value(job.percent, state),
        "bytes_done": job.bytes_done,
        "bytes_total": job.bytes_total,
        "progress_text": progress_text(job),
        "message": (job.message or "")[:200],
        "error": (((job.error or {}).get("message") or "")[:500] if job.error else "") or outcome(job),
        "cancel_requested": job.cancel_requested,
        "active": _value(job.state) in ACTIVE_JOB_STATES,
    }


def progress_text(job: Any) -> str:
    pct = job.percent
    if pct is None:
        return format_size(job.bytes_done) if job.bytes_done else ""
    return f"{pct:g} % of {format_size(job.bytes_total or 0)}"


def check_ref(value: str, what: str = "name or id") -> str:
    """A path reference bounded before any lookup."""
    if not value or len(value) > REF_MAX:
        raise InvalidInput(f"{what} is {len(value)} characters long; accepted: 1 to {REF_MAX}", field="ref")
    return value


def _value(state: Any) -> str:
    return str(getattr(state, "value", state))


def _when(job: Any) -> str | None:
    stamp = getattr(job, "finished_at", None) or getattr(job, "created_at", None)
    return stamp.strftime("%Y-%m-%d %H:%M:%S UTC") if stamp else None
