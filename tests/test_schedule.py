"""Schedules: parsing, slots in time zones and across DST, due decisions with catch-up-once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storage.errors import InvalidInput
from storage.policy.schedule import (
    MAX_ATTEMPTS_PER_SLOT,
    cron_number_problem,
    SlotState,
    decide,
    latest_slot,
    next_slot,
    parse_schedule,
    parse_timezone,
    slots_between,
)


def z(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


ANCHOR = z("2024-01-01 00:00")


@pytest.mark.parametrize(
    ("text", "kind", "expression"),
    [
        ("0 2 * * *", "cron", "0 2 * * *"),
        ("  */15   * * * 1-5 ", "cron", "*/15 * * * 1-5"),
        ("@daily", "cron", "@daily"),
        ("6h", "interval", "6h"),
        ("every 30m", "interval", "30m"),
        ("1d12h", "interval", "1d12h"),
    ],
)
def test_parse_accepts(text: str, kind: str, expression: str) -> None:
    sched = parse_schedule(text, "Europe/Berlin")
    assert (sched.kind, sched.expression) == (kind, expression)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("61 * * * *", "not a valid cron expression"),
        ("* * * *", "has 4 fields"),
        ("* * * * * *", "has 6 fields"),
        ("@sometimes", "not a known alias"),
        ("30s", "shorter than 1m"),
        ("1mo", "no fixed length"),
        ("", "must not be empty"),
        ("0h", "longer than zero"),
        ("6 hours", "has 2 fields"),
    ],
)
def test_parse_refuses_with_field_and_accepted(text: str, match: str) -> None:
    with pytest.raises(InvalidInput, match=match) as info:
        parse_schedule(text)
    assert info.value.details["field"] == "schedule"
    assert "accepted" in info.value.message


@pytest.mark.parametrize("name", ["Mars/Base", "../../etc/passwd", "", "utc+2"])
def test_unknown_timezone(name: str) -> None:
    with pytest.raises(InvalidInput, match="not a known IANA time zone") as info:
        parse_timezone(name)
    assert info.value.details["field"] == "timezone"


@pytest.mark.parametrize(
    ("expr", "tz", "now", "slot"),
    [
        ("0 2 * * *", "Europe/Berlin", "2024-06-10 01:30", "2024-06-10 00:00"),  # 02:00 CEST
        ("0 2 * * *", "Europe/Berlin", "2024-06-09 23:59", "2024-06-09 00:00"),  # 01:59 local: yesterday's
        ("0 2 * * *", "Europe/Berlin", "2024-06-10 00:00", "2024-06-10 00:00"),  # exactly on the slot
        ("0 2 * * *", "UTC", "2024-06-10 01:59", "2024-06-09 02:00"),
        ("30 2 * * *", "Europe/Berlin", "2024-03-31 12:00", "2024-03-31 01:00"),  # 02:30 missing: 03:00 CEST
        ("30 2 * * *", "Europe/Berlin", "2024-10-27 01:45", "2024-10-27 00:30"),  # fixed hour: first 02:30 only
        ("30 * * * *", "Europe/Berlin", "2024-10-27 01:45", "2024-10-27 01:30"),  # hour '*': both 02:30s
        ("0 0 1 * *", "America/New_York", "2024-03-01 04:59", "2024-02-01 05:00"),  # EST midnight = 05:00Z
        ("0 0 29 2 *", "UTC", "2025-06-01 00:00", "2024-02-29 00:00"),  # leap day only
    ],
)
def test_latest_cron_slot(expr: str, tz: str, now: str, slot: str) -> None:
    assert latest_slot(parse_schedule(expr, tz), z(now), ANCHOR) == z(slot)


def test_fall_back_fixed_hour_job_fires_once() -> None:
    sched = parse_schedule("30 2 * * *", "Europe/Berlin")
    first = next_slot(sched, z("2024-10-26 12:00"), ANCHOR)
    second = next_slot(sched, first, ANCHOR)
    assert (first, second) == (z("2024-10-27 00:30"), z("2024-10-28 01:30"))


def test_interval_slots_count_from_the_anchor() -> None:
    sched = parse_schedule("every 6h")
    anchor = z("2024-01-01 10:07")
    assert latest_slot(sched, z("2024-01-01 10:06"), anchor) is None
    assert latest_slot(sched, z("2024-01-01 10:07"), anchor) == anchor
    assert latest_slot(sched, z("2024-01-02 05:00"), anchor) == z("2024-01-02 04:07")
    assert next_slot(sched, z("2024-01-02 04:07"), anchor) == z("2024-01-02 10:07")
    assert next_slot(sched, z("2023-12-31 00:00"), anchor) == anchor


def test_cron_policy_created_after_todays_slot_waits_for_tomorrow() -> None:
    sched = parse_schedule("0 2 * * *")
    created = z("2024-05-01 10:05")
    d = decide(sched, z("2024-05-01 12:00"), created, SlotState())
    assert not d.due and d.slot is None and d.next_slot == z("2024-05-02 02:00")
    d = decide(sched, z("2024-05-02 02:00"), created, SlotState())
    assert d.due and d.slot == z("2024-05-02 02:00") and d.missed == 0


def test_due_once_per_slot() -> None:
    sched = parse_schedule("0 * * * *")
    state = SlotState(last_done_slot=z("2024-05-01 10:00"))
    assert not decide(sched, z("2024-05-01 10:59"), ANCHOR, state).due
    d = decide(sched, z("2024-05-01 11:00"), ANCHOR, state)
    assert d.due and d.slot == z("2024-05-01 11:00") and d.missed == 0


def test_catch_up_once_after_downtime() -> None:
    sched = parse_schedule("0 2 * * *")
    state = SlotState(last_done_slot=z("2024-05-01 02:00"))
    d = decide(sched, z("2024-05-05 09:00"), ANCHOR, state)
    # slots of 05-02, 05-03, 05-04 were missed; only 05-05's is run
    assert d.due and d.slot == z("2024-05-05 02:00") and d.missed == 3 and "catching up once" in d.reason
    after = SlotState(last_done_slot=d.slot)
    assert not decide(sched, z("2024-05-05 09:01"), ANCHOR, after).due


def test_failed_slot_is_retried_then_given_up() -> None:
    sched = parse_schedule("0 2 * * *")
    slot = z("2024-05-05 02:00")
    prev = z("2024-05-04 02:00")
    for attempts in range(MAX_ATTEMPTS_PER_SLOT):
        state = SlotState(last_done_slot=prev, attempts_in_latest=attempts, latest_attempted_slot=slot)
        d = decide(sched, z("2024-05-05 03:00"), ANCHOR, state)
        assert d.due and d.attempt == attempts + 1
    state = SlotState(last_done_slot=prev, attempts_in_latest=MAX_ATTEMPTS_PER_SLOT, latest_attempted_slot=slot)
    d = decide(sched, z("2024-05-05 03:00"), ANCHOR, state)
    assert not d.due and "waiting for the next slot" in d.reason
    # the next slot starts with a clean count
    d = decide(sched, z("2024-05-06 02:00") + timedelta(minutes=1), ANCHOR, state)
    assert d.due and d.attempt == 1


def test_naive_now_is_refused() -> None:
    with pytest.raises(InvalidInput, match="no time zone"):
        latest_slot(parse_schedule("6h"), datetime(2024, 1, 1), ANCHOR)


@pytest.mark.parametrize(
    ("expr", "tz", "start", "end", "count"),
    [
        ("0 * * * *", "UTC", "2024-05-01 10:00", "2024-05-01 14:00", 3),  # 11, 12, 13 (both ends excluded)
        ("30 2 * * *", "Europe/Berlin", "2024-10-26 00:00", "2024-10-28 12:00", 3),  # 26th, 27th once (not twice), 28th
        ("30 * * * *", "Europe/Berlin", "2024-10-26 22:00", "2024-10-27 03:00", 5),  # 00:30 01:30 02:30 02:30 03:30
        ("30 2 * * *", "Europe/Berlin", "2024-03-30 12:00", "2024-04-01 12:00", 2),  # the 03-31 one at 03:00
        ("* * * * *", "UTC", "2023-01-01 00:00", "2024-01-01 00:00", 1000),  # capped
    ],
)
def test_slots_between_counts_dst_and_caps(expr: str, tz: str, start: str, end: str, count: int) -> None:
    assert slots_between(parse_schedule(expr, tz), z(start), z(end), ANCHOR - timedelta(days=400)) == count


def test_interval_slots_between() -> None:
    sched = parse_schedule("6h")
    anchor = z("2024-01-01 10:00")
    assert slots_between(sched, z("2024-01-01 10:00"), z("2024-01-02 10:00"), anchor) == 3  # 16, 22, 04
    assert slots_between(sched, anchor - timedelta(microseconds=1), z("2024-01-01 16:00"), anchor) == 1  # the anchor
    assert slots_between(sched, z("2023-01-01 00:00"), z("2023-06-01 00:00"), anchor) == 0


def test_missed_count_is_fast_for_frequent_schedules_near_dst() -> None:
    import time

    sched = parse_schedule("* * * * *", "Europe/Berlin")
    began = time.monotonic()
    d = decide(sched, z("2024-03-31 01:00:30"), ANCHOR, SlotState(last_done_slot=z("2024-03-31 00:00")))
    assert d.due and d.missed == 59 and d.slot == z("2024-03-31 01:00")
    d = decide(sched, z("2024-06-01 00:00"), ANCHOR, SlotState(last_done_slot=z("2023-06-01 00:00")))
    assert d.missed == 1000
    assert time.monotonic() - began < 5


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("*/15 * * * *", None),
        ("0 3 * * 1-5", None),
        ("0,30 */6 1 1-12/3 0", None),
        ("*/60 * * * *", None),
        ("*/61 * * * *", "minute step of 61"),
        ("*/99999999999999999999 * * * *", "minute number longer than two digits"),
        ("0 */0 * * *", "hour step of 0"),
        ("0 */25 * * *", "hour step of 25"),
        ("0 0 100 * *", "day of month number longer than two digits"),
        ("0 0 1 */13 *", "month step of 13"),
        ("0 0 * * 1/8", "day of week step of 8"),
    ],
)
def test_cron_numbers_are_bounded_before_croniter(expression: str, problem: str | None) -> None:
    found = cron_number_problem(expression)
    assert (found is None) if problem is None else (found is not None and problem in found)
    if problem is not None:
        with pytest.raises(InvalidInput, match="accepted"):
            parse_schedule(expression, "UTC")
