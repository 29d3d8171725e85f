"""Coalescing of identical concurrent reads (single flight, never stale).

When many requests ask for the same listing at once, one computation serves all of them that
arrived before it *started*: a request never receives a result computed from a state older than
its own arrival, so a client that has just changed something always sees its change. Under load
this turns N identical list computations into about two.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Entry:
    started: int = 0  # generation of the last computation started
    finished: int = 0  # generation of the last computation finished
    running: bool = False
    result: Any = None
    error: BaseException | None = None
    waiters: int = field(default=0)


class Coalescer:
    """``get(key, compute)``: run ``compute`` or share a computation that started after this call."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._entries: dict[Hashable, _Entry] = {}

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        with self._cond:
            entry = self._entries.setdefault(key, _Entry())
            needed = entry.started + 1  # a computation already under way started before us: not good enough
            entry.waiters += 1
            try:
                while True:
                    if entry.finished >= needed:
                        if entry.error is not None:
                            raise entry.error
                        return entry.result
                    if not entry.running:
                        entry.running = True
                        entry.started += 1
                        generation = entry.started
                        break
                    self._cond.wait()
            finally:
                entry.waiters -= 1
        result: Any = None
        error: BaseException | None = None
        try:
            result = compute()
        except BaseException as exc:  # shared with the waiters of this generation, then re-raised
            error = exc
        with self._cond:
            entry.running = False
            entry.finished = generation
            entry.result, entry.error = result, error
            if entry.waiters == 0:
                self._entries.pop(key, None)  # nothing to share: do not keep the result alive
            self._cond.notify_all()
        if error is not None:
            raise error
        return result
