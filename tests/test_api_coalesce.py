"""The read coalescer: shares computations, never hands out a result older than the request."""

from __future__ import annotations

import threading
import time

import pytest

from api.coalesce import Coalescer


def test_concurrent_calls_share_one_computation() -> None:
    co = Coalescer()
    calls = []
    gate = threading.Event()

    def compute() -> int:
        calls.append(1)
        gate.wait(5)
        return len(calls)

    results: list[int] = []
    first = threading.Thread(target=lambda: results.append(co.get("k", compute)))
    first.start()
    time.sleep(0.1)  # the first computation is running; these arrive after it started
    others = [threading.Thread(target=lambda: results.append(co.get("k", compute))) for _ in range(20)]
    for t in others:
        t.start()
    time.sleep(0.2)
    gate.set()
    for t in [first, *others]:
        t.join(10)
    assert len(calls) == 2  # the first, and one more for everybody who came while it ran
    assert results.count(1) == 1 and results.count(2) == 20


def test_never_returns_a_result_computed_before_the_call() -> None:
    co = Coalescer()
    state = {"value": 0}
    started = threading.Event()
    release = threading.Event()

    def slow_read() -> int:
        seen = state["value"]
        started.set()
        release.wait(5)
        return seen

    out: list[int] = []
    t = threading.Thread(target=lambda: out.append(co.get("k", slow_read)))
    t.start()
    started.wait(5)
    state["value"] = 1  # a write lands after that read began
    later: list[int] = []
    t2 = threading.Thread(target=lambda: later.append(co.get("k", lambda: state["value"])))
    t2.start()
    time.sleep(0.1)
    release.set()
    t.join(5)
    t2.join(5)
    assert out == [0] and later == [1]


def test_errors_are_shared_and_keys_are_separate() -> None:
    co = Coalescer()
    with pytest.raises(ValueError):
        co.get("a", lambda: (_ for _ in ()).throw(ValueError("boom")))
    assert co.get("a", lambda: 1) == 1 and co.get("b", lambda: 2) == 2
