"""Helpers for policy and runner tests: a controllable clock and event collection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storage.policy.events import EventCollector


def z(text: str) -> datetime:
    """'2024-05-01 10:00' as an aware UTC time."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class FakeClock:
    """A clock the test moves by hand; pass it as PolicyService.clock or run(clock=...)."""

    def __init__(self, start: str | datetime) -> None:
        self.now = z(start) if isinstance(start, str) else start

    def __call__(self) -> datetime:
        return self.now

    def set(self, when: str | datetime) -> None:
        self.now = z(when) if isinstance(when, str) else when

    def advance(self, **delta: float) -> None:
        self.now = self.now + timedelta(**delta)


class Crash(BaseException):
    """Raised from an event sink to stop a runner mid-run like a crash (not a StorageError)."""


def crash_after(kind: str, count: int = 1) -> EventCollector:
    """An event collector that raises Crash after the ``count``-th event of ``kind``."""
    collector = EventCollector()
    seen = [0]

    def forward(event: dict) -> None:
        if event["event"] == kind:
            seen[0] += 1
            if seen[0] >= count:
                raise Crash(f"simulated crash after {kind} #{count}")

    collector.forward.append(forward)
    return collector
