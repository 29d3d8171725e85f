"""Durations for schedules (``6h``) and ``keep-within`` (``1y2mo3d``): pure parsing and arithmetic.

Grammar: one or more ``<number><unit>`` terms, e.g. ``90m``, ``1d12h``, ``2w``, ``1y6mo``.
Units: ``y`` years, ``mo`` months, ``w`` weeks, ``d`` days, ``h`` hours, ``min`` or ``m`` minutes,
``s`` seconds. restic's ``--keep-within`` reads ``m`` as *months*, so retention durations refuse a
bare ``m`` (:func:`bare_minute_terms`) and ask for ``mo`` or ``min``; schedules keep ``30m``.
Every duration is bounded (digits per term, ``bounds.DURATION_SECONDS_MAX`` in all).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from storage.bounds import DURATION_SECONDS_MAX, DURATION_TEXT_MAX, short_repr
from storage.errors import InvalidInput

ACCEPTED_DURATIONS = (
    "one or more NUMBER+UNIT terms with units y (years), mo (months), w (weeks), d (days), "
    "h (hours), min or m (minutes), s (seconds); e.g. 6h, 90min, 1d12h, 2w, 1y6mo; at most 100 years"
)
_TERM_RE = re.compile(r"([0-9]+)(min|mo|y|w|d|h|m|s)", re.ASCII)
_FULL_RE = re.compile(r"^(?:[0-9]{1,20}(?:min|mo|y|w|d|h|m|s))+$", re.ASCII)
_APPROX_SECONDS = {"y": 366 * 86400, "mo": 31 * 86400}  # upper estimates for the bound


def bare_minute_terms(text: str) -> list[str]:
    """The terms of a duration written with a bare ``m`` (``2m``, ``1d30m``): ambiguous in retention.

    restic users mean months by ``m``; here ``m`` would be minutes. Pure; ``[]`` when none.
    """
    raw = str(text).strip().lower().replace(" ", "")
    return [number + unit for number, unit in _TERM_RE.findall(raw) if unit == "m"]


def bare_minute_message(text: str, field: str) -> str | None:
    """The refusal for a retention duration with a bare ``m``, offering ``mo`` and ``min``; None if fine."""
    terms = bare_minute_terms(text)
    if not terms:
        return None
    number = terms[0][:-1]
    return (
        f"{field} {text!r} is ambiguous: 'm' means minutes here but months in restic; "
        f"write {number}mo for {number} months or {number}min for {number} minutes"
    )


@dataclass(frozen=True)
class Duration:
    """A calendar-aware duration: years/months/days are calendar units, the rest is elapsed time."""

    text: str
    years: int = 0
    months: int = 0
    days: int = 0  # weeks are folded into days
    seconds: int = 0  # hours, minutes and seconds

    @property
    def is_fixed(self) -> bool:
        """True when the length does not depend on the calendar (no years or months)."""
        return self.years == 0 and self.months == 0

    def as_timedelta(self) -> timedelta:
        if not self.is_fixed:
            raise InvalidInput(f"duration {self.text!r} has calendar units (y, mo) and no fixed length")
        return timedelta(days=self.days, seconds=self.seconds)

    def before(self, moment: datetime, tz: tzinfo | None = None) -> datetime:
        """``moment`` minus this duration: calendar units on the wall clock of ``tz``, then elapsed time.

        Months are clamped to the end of the shorter month (Mar 31 - 1mo = Feb 29 in a leap year),
        unlike Go's AddDate used by restic, which normalises Feb 31 to Mar 2.
        """
        zone = tz or moment.tzinfo or ZoneInfo("UTC")
        local = moment.astimezone(zone).replace(tzinfo=None)
        total_months = local.year * 12 + (local.month - 1) - (self.years * 12 + self.months)
        year, month = divmod(total_months, 12)
        month += 1
        day = min(local.day, calendar.monthrange(year, month)[1])
        shifted = local.replace(year=year, month=month, day=day) - timedelta(days=self.days)
        aware = shifted.replace(tzinfo=zone)
        return aware - timedelta(seconds=self.seconds)


def parse_duration(
    text: str, *, field: str = "duration", fixed: bool = False, retention: bool = False
) -> Duration:
    """Parse ``1d12h`` etc.; ``fixed=True`` refuses calendar units (y, mo); ``retention=True`` refuses
    a bare ``m`` (:func:`bare_minute_message`). Zero and more than ~100 years are refused."""
    if not isinstance(text, str) or len(text) > DURATION_TEXT_MAX:
        raise InvalidInput(
            f"{field} {short_repr(text)} is not a duration; accepted: {ACCEPTED_DURATIONS}", field=field
        )
    raw = text.strip().lower().replace(" ", "")
    if not raw or not _FULL_RE.match(raw):
        raise InvalidInput(f"{field} {text!r} is not a duration; accepted: {ACCEPTED_DURATIONS}", field=field)
    if retention and (message := bare_minute_message(text, field)):
        raise InvalidInput(message, field=field)
    years = months = days = seconds = 0
    for number, unit in _TERM_RE.findall(raw):
        n = int(number)
        if unit == "y":
            years += n
        elif unit == "mo":
            months += n
        elif unit == "w":
            days += 7 * n
        elif unit == "d":
            days += n
        elif unit == "h":
            seconds += 3600 * n
        elif unit in ("m", "min"):
            seconds += 60 * n
        else:
            seconds += n
    duration = Duration(text=raw, years=years, months=months, days=days, seconds=seconds)
    if years * _APPROX_SECONDS["y"] + months * _APPROX_SECONDS["mo"] + days * 86400 + seconds > DURATION_SECONDS_MAX:
        raise InvalidInput(f"{field} {text!r} is too long; accepted: {ACCEPTED_DURATIONS}", field=field)
    if years == months == days == seconds == 0:
        raise InvalidInput(f"{field} {text!r} must be longer than zero; accepted: {ACCEPTED_DURATIONS}", field=field)
    if fixed and not duration.is_fixed:
        raise InvalidInput(
            f"{field} {text!r} uses years or months, which have no fixed length; "
            "accepted here: units w, d, h, m, s (e.g. 6h, 1d, 2w)",
            field=field,
        )
    return duration
