"""Table tests of the input-bounds layer: storage.bounds, sizes, durations and the bare-'m' trap."""

from __future__ import annotations

import math

import pytest

from storage import bounds
from storage.errors import InvalidInput
from storage.policy.durations import bare_minute_message, bare_minute_terms, parse_duration
from storage.policy.schedule import parse_schedule, parse_timezone
from storage.units import parse_size


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", 1), ("1M", 2**20), (" 10G ", 10 * 2**30), ("1.5G", 3 * 2**29), ("8P", 2**53), (2**53, 2**53),
        ("1KB", 1000), ("0.5K", 512), ("99999999999999999999", None), ("9P", None), (2**63, None), (2**53 + 1, None),
        (True, None), (False, None), ("true", None), ("８M", None), ("١٠M", None), ("9" * 5000, None),
        ("9" * 25 + ".5P", None), ("1e400", None), ("inf", None), ("nan", None), ("-1", None), ("0", None),
        (0, None), (-5, None), (1.5, None), (None, None), ("1" + " " * 40 + "M", None), ("10X", None),
    ],
)
def test_parse_size(value: object, expected: int | None) -> None:
    if expected is None:
        with pytest.raises(InvalidInput) as info:
            parse_size(value)  # type: ignore[arg-type]
        assert len(info.value.message) < 1000  # never echoes a huge input
    else:
        assert parse_size(value) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "terms"),
    [("2m", ["2m"]), ("1d30m", ["30m"]), ("2mo", []), ("2min", []), ("90s", []), ("1y2mo3w", []), ("5m5m", ["5m", "5m"]),
     ("2 M", ["2m"]), ("", [])],
)
def test_bare_minute_terms(text: str, terms: list[str]) -> None:
    assert bare_minute_terms(text) == terms


@pytest.mark.parametrize(
    ("text", "offers"),
    [("2m", ("2mo", "2min")), ("1d30m", ("30mo", "30min")), ("2mo", None), ("15min", None), ("6h", None)],
)
def test_bare_minute_message_offers_both_readings(text: str, offers: tuple[str, str] | None) -> None:
    message = bare_minute_message(text, "keep_within")
    if offers is None:
        assert message is None
    else:
        assert message is not None and all(o in message for o in offers) and "restic" in message


@pytest.mark.parametrize(
    ("text", "retention", "seconds", "error"),
    [
        ("2m", False, 120, None), ("2m", True, None, "2min"), ("2min", True, 120, None), ("90min", False, 5400, None),
        ("100y", True, None, None), ("101y", True, None, "too long"), ("1201mo", True, None, "too long"),
        ("99999999999999999999h", False, None, "too long"), ("99999999999999d", True, None, "too long"),
        ("９h", False, None, "not a duration"), ("1" * 100 + "h", False, None, "not a duration"),
        ("0h", False, None, "longer than zero"), ("", False, None, "not a duration"),
    ],
)
def test_parse_duration_bounds(text: str, retention: bool, seconds: int | None, error: str | None) -> None:
    if error is not None:
        with pytest.raises(InvalidInput, match=error):
            parse_duration(text, retention=retention)
        return
    duration = parse_duration(text, retention=retention)
    if seconds is not None:
        assert duration.seconds == seconds


@pytest.mark.parametrize(
    ("text", "ok"),
    [("every 30m", True), ("every 30min", True), ("every 99999999999999999999h", False), ("* " * 200, False), ("@daily", True)],
)
def test_schedule_bounds(text: str, ok: bool) -> None:
    if ok:
        parse_schedule(text)
    else:
        with pytest.raises(InvalidInput):
            parse_schedule(text)


@pytest.mark.parametrize("zone", ["Z" * 10000, "Europe/" + "x" * 100, "", "../etc/passwd", "\x00"])
def test_timezone_bounds(zone: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_timezone(zone)
    assert len(info.value.message) < 500


@pytest.mark.parametrize(
    ("value", "ok"),
    [(1, True), (10, True), ("10", True), (" 7 ", True), (0, False), (11, False), (True, False), (1.0, False),
     ("１", False), ("9" * 5000, False), pytest.param(10**5000, False, id="10**5000"), (None, False), ("1e3", False)],
)
def test_check_int(value: object, ok: bool) -> None:
    if ok:
        assert 1 <= bounds.check_int(value, field="n", lo=1, hi=10) <= 10
    else:
        with pytest.raises(InvalidInput) as info:
            bounds.check_int(value, field="n", lo=1, hi=10)
        assert "from 1 to 10" in info.value.message and len(info.value.message) < 300


@pytest.mark.parametrize(
    ("value", "ok"),
    [(50, True), (100, True), (0, False), (math.nan, False), (math.inf, False), (True, False), ("50", False)],
)
def test_check_float(value: object, ok: bool) -> None:
    if ok:
        bounds.check_float(value, field="p", lo=0, hi=100, lo_open=True)
    else:
        with pytest.raises(InvalidInput):
            bounds.check_float(value, field="p", lo=0, hi=100, lo_open=True)


@pytest.mark.parametrize(
    ("labels", "ok"),
    [
        ({"a": "1"}, True), ({f"k{i}": "v" for i in range(64)}, True), ({f"k{i}": "v" for i in range(65)}, False),
        ({"k" * 63: "v"}, True), ({"k" * 64: "v"}, False), ({"k": "v" * 255}, True), ({"k": "v" * 256}, False),
        ({"bad key": "v"}, False), ({"k": 1}, False), ({1: "v"}, False), ([("k", "v")], False), (None, True),
    ],
)
def test_check_labels(labels: object, ok: bool) -> None:
    if ok:
        bounds.check_labels(labels)  # type: ignore[arg-type]
    else:
        with pytest.raises(InvalidInput) as info:
            bounds.check_labels(labels)  # type: ignore[arg-type]
        assert "at most 64 labels" in info.value.message


@pytest.mark.parametrize(
    ("meta", "ok"),
    [
        ({"k": "v"}, True), ({"k": "v" * 256}, True), ({"k": "v" * 257}, False), ({"k" * 129: "v"}, False),
        ({f"k{i}": "v" for i in range(90)}, True), ({f"k{i}": "v" for i in range(91)}, False),
        ({f"k{i}": "v" * 200 for i in range(30)}, False),  # 6,000+ bytes in all
        ({"": "v"}, False), ({"k": 1}, False),
    ],
)
def test_check_object_metadata(meta: dict, ok: bool) -> None:
    if ok:
        assert bounds.check_object_metadata(meta) == meta
    else:
        with pytest.raises(InvalidInput):
            bounds.check_object_metadata(meta)


def test_short_repr_survives_huge_values() -> None:
    assert "bits" in bounds.short_repr(10**5000)
    assert len(bounds.short_repr("x" * 10**6)) < 100
