"""Schedules and due-slot decisions (pure).

A schedule is either a 5-field cron expression (or ``@hourly``, ``@daily``, ``@weekly``,
``@monthly``, ``@yearly``) evaluated on the wall clock of an IANA time zone, or a fixed interval
(``6h``, ``every 30m``) counted from an anchor (the policy's creation time).

Slots: the moments a schedule fires. The runner asks :func:`decide` whether the newest slot at
or before *now* still needs a run. After downtime only that newest slot is run: missed older
slots are counted, not replayed ("catch up once"). A slot that failed is retried on the next
runner call, up to :data:`MAX_ATTEMPTS_PER_SLOT` attempts; then it waits for the next slot.

DST: a cron time that does not exist on a spring-forward day fires at the first valid time
after the gap (02:30 -> 03:00). On a fall-back day a fixed-hour job (hour field not ``*``) fires
once, at the first occurrence of the repeated wall-clock time; a job whose hour field is ``*``
fires in both repeated hours (Vixie cron behaves the same way).
"""

from __future__ import annotations

import re

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from croniter.croniter import CroniterError

from storage.errors import InvalidInput
from storage.bounds import SCHEDULE_MAX, TIMEZONE_MAX, short_repr
from storage.policy.durations import parse_duration

MAX_ATTEMPTS_PER_SLOT = 3
MISSED_SCAN_LIMIT = 1000  # missed slots are counted up to this many
_ALIASES = {"@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually"}
ACCEPTED_SCHEDULES = (
    "a 5-field cron expression (minute hour day-of-month month day-of-week, e.g. '0 2 * * *'), "
    "@hourly/@daily/@weekly/@monthly/@yearly, or an interval such as 6h, 30m, 1d, 'every 12h' (at least 1m)"
)


def parse_timezone(name: str) -> ZoneInfo:
    """An IANA zone such as ``Europe/Berlin`` or ``UTC``; InvalidInput naming the field otherwise."""
    try:
        if not isinstance(name, str) or not name or len(name) > TIMEZONE_MAX or name.startswith(("/", ".")) or ".." in name:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        raise InvalidInput(
            f"timezone {short_repr(name)} is not a known IANA time zone; accepted: IANA names such as UTC, Europe/Berlin, America/New_York, Asia/Tokyo",
            field="timezone",
        ) from None


@dataclass(frozen=True)
class Schedule:
    expression: str  # normalised: the cron expression or the interval text
    timezone: str
    interval: timedelta | None = None  # set for interval schedules

    @property
    def kind(self) -> str:
        return "interval" if self.interval is not None else "cron"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def describe(self) -> str:
        if self.interval is not None:
            return f"every {self.expression}"
        return f"cron '{self.expression}' ({self.timezone})"


def parse_schedule(text: str, timezone: str = "UTC") -> Schedule:
    parse_timezone(timezone)
    if not isinstance(text, str) or len(text) > SCHEDULE_MAX:
        raise InvalidInput(
            f"schedule {short_repr(text)} is not accepted; accepted: at most {SCHEDULE_MAX} characters of "
            f"{ACCEPTED_SCHEDULES}", field="schedule",
        )
    raw = " ".join(str(text or "").split())
    if not raw:
        raise InvalidInput(f"schedule must not be empty; accepted: {ACCEPTED_SCHEDULES}", field="schedule")
    interval_text = raw.removeprefix("every ").strip()
    if " " not in interval_text and not interval_text.startswith("@") and interval_text[:1].isdigit() \
            and not interval_text.isdigit():
        duration = parse_duration(interval_text, field="schedule", fixed=True)
        interval = duration.as_timedelta()
        if interval < timedelta(minutes=1):
            raise InvalidInput(f"schedule {text!r} is shorter than 1m; accepted: {ACCEPTED_SCHEDULES}", field="schedule")
        return Schedule(expression=duration.text, timezone=timezone, interval=interval)
    lowered = raw.lower()
    if lowered.startswith("@"):
        if lowered not in _ALIASES:
            raise InvalidInput(f"schedule {text!r} is not a known alias; accepted: {ACCEPTED_SCHEDULES}", field="schedule")
        return Schedule(expression=lowered, timezone=timezone)
    if len(raw.split(" ")) != 5:
        raise InvalidInput(
            f"schedule {text!r} has {len(raw.split(' '))} fields; accepted: {ACCEPTED_SCHEDULES}", field="schedule"
        )
    problem = cron_number_problem(raw)
    if problem:
        raise InvalidInput(f"schedule {short_repr(text)} {problem}; accepted: {ACCEPTED_SCHEDULES}", field="schedule")
    try:
        croniter(raw, datetime(2024, 1, 1, tzinfo=UTC)).get_next(datetime)
    except (CroniterError, ValueError, KeyError, OverflowError) as exc:
        raise InvalidInput(
            f"schedule {text!r} is not a valid cron expression ({exc}); accepted: {ACCEPTED_SCHEDULES}",
            field="schedule",
        ) from None
    return Schedule(expression=raw, timezone=timezone)


_CRON_FIELDS = (("minute", 60), ("hour", 24), ("day of month", 31), ("month", 12), ("day of week", 7))


def cron_number_problem(expression: str) -> str | None:
    """Pure: what is wrong with the numbers of a five-field cron expression, or None.

    croniter accepts a step longer than its field (``*/99999999999999999999``) and silently runs
    once per range; refuse it, and any number of more than two digits, before it reaches croniter.
    """
    for (field, span), part in zip(_CRON_FIELDS, expression.split(" "), strict=False):
        for token in part.split(","):
            numbers = [n for n in re.split(r"[^0-9]+", token) if n]
            if any(len(n) > 2 for n in numbers):
                return f"has a {field} number longer than two digits"
            step = token.split("/", 1)[1] if "/" in token else ""
            if step.isdigit() and not 1 <= int(step) <= span:
                return f"has a {field} step of {step}; accepted: 1 to {span}"
    return None


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise InvalidInput(f"time {moment.isoformat()} has no time zone", field="now")
    return moment


def _fixed_hour(schedule: Schedule) -> bool:
    if schedule.expression.startswith("@"):
        return schedule.expression != "@hourly"
    return schedule.expression.split(" ")[1] != "*"


_DST_MARGIN = timedelta(hours=3)  # more than any DST shift (at most 2h, Antarctica/Troll)


def _instants(naive: datetime, zone: ZoneInfo, fixed_hour: bool) -> list[datetime]:
    """The UTC instants at which the wall-clock time ``naive`` happens in ``zone``.

    Usually one; two on a fall-back night (one for a fixed-hour job); for a time skipped by a
    spring-forward jump, the instant of the jump.
    """
    first = naive.replace(tzinfo=zone, fold=0)
    second = naive.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return [first.astimezone(UTC)]
    a, b = first.astimezone(UTC), second.astimezone(UTC)
    if a.astimezone(zone).replace(tzinfo=None) == naive:  # ambiguous: happens twice
        return [a] if fixed_hour else sorted({a, b})
    lo, hi = min(a, b), max(a, b)  # skipped: find the jump between them (offset changes)
    before = lo.astimezone(zone).utcoffset()
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(zone).utcoffset() == before:
            lo = mid
        else:
            hi = mid
    return [hi.replace(microsecond=0)]


def _steady(zone: ZoneInfo, moment: datetime) -> bool:
    """True when the zone's UTC offset is the same throughout ``moment`` +- the DST margin."""
    return (moment - _DST_MARGIN).astimezone(zone).utcoffset() == (moment + _DST_MARGIN).astimezone(zone).utcoffset()


def _cron_prev(schedule: Schedule, now: datetime) -> datetime:
    """The newest cron slot at or before ``now`` (UTC), walking wall-clock times with croniter."""
    zone, fixed = schedule.zone, _fixed_hour(schedule)
    naive_now = now.astimezone(zone).replace(tzinfo=None)
    if _steady(zone, now):  # no DST change near: the wall clock maps one to one
        wall = croniter(schedule.expression, naive_now + timedelta(seconds=1)).get_prev(datetime)
        if wall >= naive_now - _DST_MARGIN:
            return wall.replace(tzinfo=zone).astimezone(UTC)
    it = croniter(schedule.expression, naive_now + _DST_MARGIN + timedelta(seconds=1))
    best: datetime | None = None
    while True:
        wall = it.get_prev(datetime)
        for instant in _instants(wall, zone, fixed):
            if instant <= now and (best is None or instant > best):
                best = instant
        if best is not None and wall < naive_now - _DST_MARGIN:
            return best


def _cron_next(schedule: Schedule, after: datetime) -> datetime:
    """The first cron slot strictly after ``after`` (UTC)."""
    zone, fixed = schedule.zone, _fixed_hour(schedule)
    naive_after = after.astimezone(zone).replace(tzinfo=None)
    if _steady(zone, after):
        wall = croniter(schedule.expression, naive_after).get_next(datetime)
        if wall <= naive_after + _DST_MARGIN:
            return wall.replace(tzinfo=zone).astimezone(UTC)
    it = croniter(schedule.expression, naive_after - _DST_MARGIN - timedelta(seconds=1))
    best: datetime | None = None
    while True:
        wall = it.get_next(datetime)
        if best is not None and wall > naive_after + _DST_MARGIN:
            return best
        for instant in _instants(wall, zone, fixed):
            if instant > after and (best is None or instant < best):
                best = instant


def latest_slot(schedule: Schedule, now: datetime, anchor: datetime) -> datetime | None:
    """The newest slot at or before ``now`` and not before ``anchor``; None when there is none yet."""
    now, anchor = _aware(now).astimezone(UTC), _aware(anchor).astimezone(UTC)
    if now < anchor:
        return None
    if schedule.interval is not None:
        steps = (now - anchor) // schedule.interval
        return anchor + steps * schedule.interval
    slot = _cron_prev(schedule, now)
    return slot if slot >= anchor else None


def next_slot(schedule: Schedule, after: datetime, anchor: datetime) -> datetime:
    """The first slot strictly after ``after`` (and not before ``anchor``)."""
    after, anchor = _aware(after).astimezone(UTC), _aware(anchor).astimezone(UTC)
    if schedule.interval is not None:
        if after < anchor:
            return anchor
        steps = (after - anchor) // schedule.interval + 1
        return anchor + steps * schedule.interval
    start = max(after, anchor - timedelta(seconds=1))
    return _cron_next(schedule, start)


def slots_between(schedule: Schedule, start: datetime, end: datetime, anchor: datetime) -> int:
    """How many slots (not before ``anchor``) lie strictly between ``start`` and ``end``; counted
    up to MISSED_SCAN_LIMIT."""
    start, end, anchor = (_aware(t).astimezone(UTC) for t in (start, end, anchor))
    if end <= start:
        return 0
    if schedule.interval is not None:
        step = schedule.interval
        first = 0 if start < anchor else (start - anchor) // step + 1  # first k with anchor + k*step > start
        last = -((anchor - end) // step) - 1  # last k with anchor + k*step < end
        return max(0, min(MISSED_SCAN_LIMIT, last - first + 1))
    zone, fixed = schedule.zone, _fixed_hour(schedule)
    naive_end = end.astimezone(zone).replace(tzinfo=None)
    begin = max(start, anchor - timedelta(seconds=1))  # nothing before the anchor counts
    it = croniter(schedule.expression, begin.astimezone(zone).replace(tzinfo=None) - _DST_MARGIN)
    count = 0
    while count < MISSED_SCAN_LIMIT:
        wall = it.get_next(datetime)
        if wall > naive_end + _DST_MARGIN:
            break
        count += sum(1 for t in _instants(wall, zone, fixed) if start < t < end and t >= anchor)
    return min(count, MISSED_SCAN_LIMIT)


@dataclass(frozen=True)
class SlotState:
    """What the catalog knows about scheduled runs of one policy."""

    last_done_slot: datetime | None = None  # newest slot with a successful (or given-up) run
    attempts_in_latest: int = 0  # failed attempts already made for the newest slot
    latest_attempted_slot: datetime | None = None


@dataclass(frozen=True)
class DueDecision:
    due: bool
    slot: datetime | None
    reason: str
    missed: int = 0  # older slots skipped by catching up once
    next_slot: datetime | None = None
    attempt: int = 1


def decide(schedule: Schedule, now: datetime, anchor: datetime, state: SlotState) -> DueDecision:
    """Is a scheduled run due now, for which slot, and why (pure)."""
    now = _aware(now).astimezone(UTC)
    slot = latest_slot(schedule, now, anchor)
    upcoming = next_slot(schedule, now, anchor)
    if slot is None:
        return DueDecision(False, None, "no slot since the policy was created", next_slot=upcoming)
    if state.last_done_slot is not None and state.last_done_slot >= slot:
        return DueDecision(False, slot, f"slot {slot.isoformat()} already done", next_slot=upcoming)
    attempts = state.attempts_in_latest if state.latest_attempted_slot == slot else 0
    if attempts >= MAX_ATTEMPTS_PER_SLOT:
        return DueDecision(
            False, slot, f"slot {slot.isoformat()} failed {attempts} times; waiting for the next slot", next_slot=upcoming
        )
    since = state.last_done_slot if state.last_done_slot is not None else anchor - timedelta(microseconds=1)
    missed = slots_between(schedule, since, slot, anchor)
    reason = f"slot {slot.isoformat()} is due"
    if missed:
        reason += f" (catching up once for {missed} missed slot{'s' if missed != 1 else ''})"
    if attempts:
        reason += f" (retry {attempts + 1} of {MAX_ATTEMPTS_PER_SLOT})"
    return DueDecision(True, slot, reason, missed=missed, next_slot=upcoming, attempt=attempts + 1)
