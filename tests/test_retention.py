"""Retention tables: hand-computed keep/prune decisions (restic `forget` semantics)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.errors import InvalidInput
from storage.policy.durations import parse_duration
from storage.policy.retention import Item, Rules, decide, to_prune


def z(text: str) -> datetime:
    """'2024-03-05 10:00' as UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def run(stamps: list[str], rules: Rules, tz: str = "UTC") -> dict[str, tuple[str, ...] | None]:
    """Decisions keyed by the stamp text: the reasons when kept, None when pruned."""
    items = [Item(s, z(s)) for s in stamps]
    return {d.id: (d.reasons if d.keep else None) for d in decide(items, rules, tz)}


TABLE = [
    pytest.param(
        ["2024-03-05 10:00", "2024-03-05 08:00", "2024-03-04 23:00", "2024-03-03 01:00", "2024-03-01 12:00"],
        Rules(last=3),
        "UTC",
        {
            "2024-03-05 10:00": ("last #1",),
            "2024-03-05 08:00": ("last #2",),
            "2024-03-04 23:00": ("last #3",),
            "2024-03-03 01:00": None,
            "2024-03-01 12:00": None,
        },
        id="last-3",
    ),
    pytest.param(
        # no item on 03-02: empty days do not use up the count
        ["2024-03-05 10:00", "2024-03-05 08:00", "2024-03-04 23:00", "2024-03-03 01:00", "2024-03-01 12:00"],
        Rules(daily=3),
        "UTC",
        {
            "2024-03-05 10:00": ("daily #1",),
            "2024-03-05 08:00": None,
            "2024-03-04 23:00": ("daily #2",),
            "2024-03-03 01:00": ("daily #3",),
            "2024-03-01 12:00": None,
        },
        id="daily-3-gap",
    ),
    pytest.param(
        # 2024-12-30 (Mon) is ISO week 2025-W01; 2024-12-29 (Sun) is 2024-W52; 12-23 is W52; 12-22 is W51
        ["2025-01-05 12:00", "2024-12-30 09:00", "2024-12-29 18:00", "2024-12-23 10:00", "2024-12-22 10:00"],
        Rules(weekly=2, monthly=2),
        "UTC",
        {
            "2025-01-05 12:00": ("weekly #1", "monthly #1"),
            "2024-12-30 09:00": ("monthly #2",),
            "2024-12-29 18:00": ("weekly #2",),
            "2024-12-23 10:00": None,
            "2024-12-22 10:00": None,
        },
        id="iso-week-across-new-year",
    ),
    pytest.param(
        ["2025-01-05 12:00", "2024-12-30 09:00", "2024-12-29 18:00", "2023-06-01 00:00", "2022-12-31 23:59"],
        Rules(yearly=3),
        "UTC",
        {
            "2025-01-05 12:00": ("yearly #1",),
            "2024-12-30 09:00": ("yearly #2",),  # calendar year, not the ISO week year
            "2024-12-29 18:00": None,
            "2023-06-01 00:00": ("yearly #3",),
            "2022-12-31 23:59": None,
        },
        id="yearly-calendar-year",
    ),
    pytest.param(
        ["2024-03-01 00:30", "2024-02-29 23:30", "2024-02-29 08:00", "2024-02-28 12:00", "2024-01-31 23:59",
         "2023-12-31 23:59"],
        Rules(monthly=3, daily=2),
        "UTC",
        {
            "2024-03-01 00:30": ("daily #1", "monthly #1"),
            "2024-02-29 23:30": ("daily #2", "monthly #2"),
            "2024-02-29 08:00": None,
            "2024-02-28 12:00": None,
            "2024-01-31 23:59": ("monthly #3",),
            "2023-12-31 23:59": None,
        },
        id="leap-day-month-ends-utc",
    ),
    pytest.param(
        # Same instants in New York (UTC-5): 03-01 00:30Z is Feb 29 19:30 local; 01-31 23:59Z is Jan 31
        ["2024-03-01 00:30", "2024-02-29 23:30", "2024-02-29 08:00", "2024-02-28 12:00", "2024-01-31 23:59",
         "2023-12-31 23:59"],
        Rules(monthly=3, daily=2),
        "America/New_York",
        {
            "2024-03-01 00:30": ("daily #1", "monthly #1"),
            "2024-02-29 23:30": None,
            "2024-02-29 08:00": None,
            "2024-02-28 12:00": ("daily #2",),
            "2024-01-31 23:59": ("monthly #2",),
            "2023-12-31 23:59": ("monthly #3",),
        },
        id="leap-day-month-ends-new-york",
    ),
    pytest.param(
        # Berlin falls back on 2024-10-27: 00:15Z=02:15+02, 01:15Z=02:15+01 -> one local hour "02"
        ["2024-10-27 02:15", "2024-10-27 01:45", "2024-10-27 01:15", "2024-10-27 00:45", "2024-10-27 00:15",
         "2024-10-26 23:30"],
        Rules(hourly=3),
        "Europe/Berlin",
        {
            "2024-10-27 02:15": ("hourly #1",),  # 03:15 CET
            "2024-10-27 01:45": ("hourly #2",),  # 02:45 CET, same wall-clock hour as the CEST 02:xx
            "2024-10-27 01:15": None,
            "2024-10-27 00:45": None,
            "2024-10-27 00:15": None,
            "2024-10-26 23:30": ("hourly #3",),  # 01:30 CEST
        },
        id="dst-fall-back-hourly-berlin",
    ),
    pytest.param(
        ["2024-10-27 02:15", "2024-10-27 01:45", "2024-10-27 01:15", "2024-10-27 00:45", "2024-10-27 00:15",
         "2024-10-26 23:30"],
        Rules(hourly=3),
        "UTC",
        {
            "2024-10-27 02:15": ("hourly #1",),
            "2024-10-27 01:45": ("hourly #2",),
            "2024-10-27 01:15": None,
            "2024-10-27 00:45": ("hourly #3",),
            "2024-10-27 00:15": None,
            "2024-10-26 23:30": None,
        },
        id="same-instants-hourly-utc",
    ),
    pytest.param(
        # Berlin springs forward on 2024-03-31 (a 23-hour day: 03-30 23:00Z .. 03-31 22:00Z)
        ["2024-03-31 22:30", "2024-03-31 21:30", "2024-03-30 23:30", "2024-03-30 22:30"],
        Rules(daily=3),
        "Europe/Berlin",
        {
            "2024-03-31 22:30": ("daily #1",),  # Apr 1 00:30 CEST
            "2024-03-31 21:30": ("daily #2",),  # Mar 31 23:30 CEST
            "2024-03-30 23:30": None,  # Mar 31 00:30 CET: same day
            "2024-03-30 22:30": ("daily #3",),  # Mar 30 23:30 CET
        },
        id="dst-spring-forward-daily-berlin",
    ),
    pytest.param(
        ["2024-06-10 12:00", "2024-06-09 00:00", "2024-06-08 12:00", "2024-06-08 11:59"],
        Rules(within=parse_duration("2d")),
        "UTC",
        {
            "2024-06-10 12:00": ("within 2d",),
            "2024-06-09 00:00": ("within 2d",),
            "2024-06-08 12:00": ("within 2d",),  # exactly at the edge: kept
            "2024-06-08 11:59": None,
        },
        id="within-2d-edge",
    ),
    pytest.param(
        # one month before Mar 31 2024 is Feb 29 (clamped to the month end)
        ["2024-03-31 10:00", "2024-02-29 10:00", "2024-02-29 09:59"],
        Rules(within=parse_duration("1mo")),
        "UTC",
        {"2024-03-31 10:00": ("within 1mo",), "2024-02-29 10:00": ("within 1mo",), "2024-02-29 09:59": None},
        id="within-1mo-leap-month-end",
    ),
    pytest.param(
        # 1d in Berlin across spring-forward is 23 elapsed hours: cutoff Mar 30 12:00 CET = 11:00Z
        ["2024-03-31 10:00", "2024-03-30 11:00", "2024-03-30 10:59"],
        Rules(within=parse_duration("1d")),
        "Europe/Berlin",
        {"2024-03-31 10:00": ("within 1d",), "2024-03-30 11:00": ("within 1d",), "2024-03-30 10:59": None},
        id="within-1d-dst-berlin",
    ),
    pytest.param(
        ["2024-03-31 10:00", "2024-03-30 11:00", "2024-03-30 10:59"],
        Rules(within=parse_duration("1d")),
        "UTC",
        {"2024-03-31 10:00": ("within 1d",), "2024-03-30 11:00": ("within 1d",), "2024-03-30 10:59": ("within 1d",)},
        id="within-1d-utc",
    ),
    pytest.param(
        ["2024-05-02 03:00", "2024-05-02 01:00", "2024-05-01 03:00", "2024-04-20 03:00"],
        Rules(last=1, daily=2, monthly=2),
        "UTC",
        {
            "2024-05-02 03:00": ("last #1", "daily #1", "monthly #1"),
            "2024-05-02 01:00": None,
            "2024-05-01 03:00": ("daily #2",),
            "2024-04-20 03:00": ("monthly #2",),
        },
        id="rules-count-independently",
    ),
    pytest.param(
        ["2024-05-02 03:00", "2020-01-01 00:00"],
        Rules(keep_all=True),
        "UTC",
        {"2024-05-02 03:00": ("keep-all",), "2020-01-01 00:00": ("keep-all",)},
        id="keep-all",
    ),
]


@pytest.mark.parametrize(("stamps", "rules", "tz", "expected"), TABLE)
def test_retention_table(stamps: list[str], rules: Rules, tz: str, expected: dict) -> None:
    assert run(stamps, rules, tz) == expected


def test_order_of_input_does_not_matter_and_output_is_newest_first() -> None:
    stamps = ["2024-01-01 00:00", "2024-01-03 00:00", "2024-01-02 00:00"]
    decisions = decide([Item(s, z(s)) for s in stamps], Rules(last=2))
    assert [d.id for d in decisions] == ["2024-01-03 00:00", "2024-01-02 00:00", "2024-01-01 00:00"]
    assert [d.id for d in to_prune(decisions)] == ["2024-01-01 00:00"]
    assert to_prune(decisions)[0].reason == "matched no keep rule"


def test_empty_input() -> None:
    assert decide([], Rules(daily=1)) == []


@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
def test_bad_counts_name_the_rule(bad: object) -> None:
    with pytest.raises(InvalidInput, match="keep-daily .* at least 1"):
        Rules(daily=bad)  # type: ignore[arg-type]


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(InvalidInput, match="without a time zone"):
        decide([Item("a", datetime(2024, 1, 1))], Rules(last=1))


stamps_strategy = st.lists(
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2026, 1, 1), timezones=st.just(UTC)),
    min_size=1,
    max_size=40,
    unique=True,
)


@settings(max_examples=150, deadline=None)
@given(
    stamps=stamps_strategy,
    counts=st.tuples(*[st.one_of(st.none(), st.integers(1, 6)) for _ in range(6)]),
    tz=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]),
)
def test_properties(stamps: list[datetime], counts: tuple, tz: str) -> None:
    last, hourly, daily, weekly, monthly, yearly = counts
    rules = Rules(last=last, hourly=hourly, daily=daily, weekly=weekly, monthly=monthly, yearly=yearly)
    items = [Item(str(i), t) for i, t in enumerate(stamps)]
    decisions = decide(items, rules, tz)
    assert len(decisions) == len(items)
    if not rules.empty:
        # the newest item is always kept, and no rule keeps more than its count
        assert decisions[0].keep
        for name, count in zip(("last", "hourly", "daily", "weekly", "monthly", "yearly"), counts):
            used = sum(1 for d in decisions for r in d.reasons if r.startswith(f"{name} #"))
            assert used <= (count or 0)
    assert decide(list(reversed(items)), rules, tz) == decisions
