"""Retention: which snapshots/backups to keep, as pure functions (restic ``forget`` semantics).

Given items ``(id, created_at)`` and rules, :func:`decide` returns one :class:`Decision` per item,
newest first, each with the rules that kept it (``"daily #3"``) or why it goes.

Semantics (restic ``forget``; differences from borg ``prune`` noted):

- Items are walked newest first. ``keep-last N`` keeps the N newest items.
- ``keep-hourly/daily/weekly/monthly/yearly N``: the period of every item is computed on the
  wall clock of the policy's time zone (hour = calendar date + hour, week = ISO 8601 year and
  week, Monday first, so Dec 30 can belong to week 1 of the next year). Walking newest first,
  an item is kept when its period differs from the period of the item this rule kept last, until
  N periods are kept. So the newest item of each of the N most recent periods that have items is
  kept; periods without items do not use up the count.
- Every rule counts on its own: an item kept by ``daily`` still counts for ``weekly`` (as in
  restic). borg instead skips items already kept by an earlier rule, so borg keeps more items
  for the same numbers, and borg also keeps the oldest item when a rule's count is not reached;
  neither is done here.
- ``keep-within D`` keeps every item not older than the newest item minus D (restic; borg
  measures from the current time). Calendar units (y, mo, d, w) are applied on the policy's wall
  clock, h/m/s as elapsed time.
- DST: on a fall-back night the repeated local hour (e.g. 02:00-03:00 twice) is one hourly
  period, like restic, which buckets on local time too.
- ``keep_all`` keeps everything. With no rule at all everything is kept as well; the policy
  model refuses that unless ``keep_all`` is given explicitly, so an empty rule set never reaches
  here by accident.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo

from storage.errors import InvalidInput
from storage.policy.durations import Duration

Bucket = tuple[int, ...]


@dataclass(frozen=True)
class Rules:
    last: int | None = None
    hourly: int | None = None
    daily: int | None = None
    weekly: int | None = None
    monthly: int | None = None
    yearly: int | None = None
    within: Duration | None = None
    keep_all: bool = False

    def __post_init__(self) -> None:
        for name in ("last", "hourly", "daily", "weekly", "monthly", "yearly"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise InvalidInput(
                    f"keep-{name} {value!r} is not accepted; accepted: a whole number of at least 1",
                    field=f"keep_{name}",
                )

    @property
    def empty(self) -> bool:
        return self.within is None and all(
            getattr(self, n) is None for n in ("last", "hourly", "daily", "weekly", "monthly", "yearly")
        )


@dataclass(frozen=True)
class Item:
    id: str
    created_at: datetime


@dataclass(frozen=True)
class Decision:
    id: str
    created_at: datetime
    keep: bool
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def reason(self) -> str:
        return ", ".join(self.reasons) if self.reasons else "matched no keep rule"


def _hour(t: datetime) -> Bucket:
    return (t.year, t.month, t.day, t.hour)


def _day(t: datetime) -> Bucket:
    return (t.year, t.month, t.day)


def _week(t: datetime) -> Bucket:
    iso = t.isocalendar()
    return (iso.year, iso.week)


def _month(t: datetime) -> Bucket:
    return (t.year, t.month)


def _year(t: datetime) -> Bucket:
    return (t.year,)


PERIODS: tuple[tuple[str, Callable[[datetime], Bucket]], ...] = (
    ("hourly", _hour),
    ("daily", _day),
    ("weekly", _week),
    ("monthly", _month),
    ("yearly", _year),
)


def period_of(rule: str, moment: datetime, tz: tzinfo) -> Bucket:
    """The period (bucket) of ``moment`` for ``rule`` on the wall clock of ``tz``."""
    return dict(PERIODS)[rule](moment.astimezone(tz))


def _zone(tz: tzinfo | str | None) -> tzinfo:
    if tz is None:
        return ZoneInfo("UTC")
    return ZoneInfo(tz) if isinstance(tz, str) else tz


def decide(items: Iterable[Item], rules: Rules, tz: tzinfo | str | None = None) -> list[Decision]:
    """Keep/prune decisions for ``items``, newest first (ties broken by id, descending)."""
    zone = _zone(tz)
    ordered = sorted(items, key=lambda i: (i.created_at, i.id), reverse=True)
    for item in ordered:
        if item.created_at.tzinfo is None:
            raise InvalidInput(f"item {item.id!r} has a timestamp without a time zone", field="created_at")
    if rules.keep_all or rules.empty:
        why = ("keep-all",) if rules.keep_all else ("no keep rule",)
        return [Decision(i.id, i.created_at, True, why) for i in ordered]

    reasons: dict[str, list[str]] = {i.id: [] for i in ordered}
    if rules.last:
        for n, item in enumerate(ordered[: rules.last], start=1):
            reasons[item.id].append(f"last #{n}")
    for rule, bucket_of in PERIODS:
        count = getattr(rules, rule)
        if not count:
            continue
        kept = 0
        previous: Bucket | None = None
        for item in ordered:
            if kept >= count:
                break
            bucket = bucket_of(item.created_at.astimezone(zone))
            if bucket != previous:
                previous = bucket
                kept += 1
                reasons[item.id].append(f"{rule} #{kept}")
    if rules.within is not None and ordered:
        cutoff = rules.within.before(ordered[0].created_at, zone)
        for item in ordered:
            if item.created_at >= cutoff:
                reasons[item.id].append(f"within {rules.within.text}")
    return [Decision(i.id, i.created_at, bool(reasons[i.id]), tuple(reasons[i.id])) for i in ordered]


def to_prune(decisions: Iterable[Decision]) -> list[Decision]:
    return [d for d in decisions if not d.keep]
