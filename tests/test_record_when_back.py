"""record_when_back: an operation's closing write waits a bounded time for the catalog."""

from __future__ import annotations

import pytest

from storage.catalog.failures import record_when_back
from storage.errors import CatalogUnavailable, Conflict


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize("failures,budget,expected_calls,ok", [
    (0, 10.0, 1, True),      # the catalog is there: one write
    (3, 10.0, 4, True),      # back after 1.5 s: written then
    (19, 10.0, 20, True),    # back just inside the budget
    (50, 10.0, 21, False),   # never back within it (tries at 0, 0.5 ... 10 s): the typed error is raised
    (1, 0.0, 1, False),      # no budget: no wait
])
def test_retries_only_while_unavailable_and_within_budget(failures: int, budget: float, expected_calls: int, ok: bool) -> None:
    clock, calls = Clock(), []

    def write() -> str:
        calls.append(clock.now)
        if len(calls) <= failures:
            raise CatalogUnavailable("catalog database x is unavailable; retry later")
        return "done"

    if ok:
        assert record_when_back(write, budget=budget, poll=0.5, sleep=clock.sleep, clock=clock) == "done"
    else:
        with pytest.raises(CatalogUnavailable):
            record_when_back(write, budget=budget, poll=0.5, sleep=clock.sleep, clock=clock)
    assert len(calls) == expected_calls


def test_other_errors_are_not_retried() -> None:
    calls = []

    def write() -> None:
        calls.append(1)
        raise Conflict("someone else won")

    with pytest.raises(Conflict):
        record_when_back(write, sleep=lambda s: pytest.fail("slept"))
    assert calls == [1]
