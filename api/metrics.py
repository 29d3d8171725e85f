"""Prometheus text exposition (format 0.0.4), written by hand, and request statistics.

``RequestStats`` counts requests by method, route template and status and keeps a latency
histogram; ``MetricsMiddleware`` (pure ASGI, so streaming bodies pass through untouched) feeds
it. ``render(families)`` turns ``Family`` values into the exposition text.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class Family:
    name: str
    kind: str  # counter | gauge | histogram
    help: str
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)  # (suffix, labels, value)

    def add(self, value: float, suffix: str = "", **labels: Any) -> "Family":
        self.samples.append((suffix, {k: str(v) for k, v in labels.items()}, float(value)))
        return self


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return str(int(value)) if float(value).is_integer() else repr(value)


def render(families: Iterable[Family]) -> str:
    lines: list[str] = []
    for fam in families:
        lines.append(f"# HELP {fam.name} {fam.help}")
        lines.append(f"# TYPE {fam.name} {fam.kind}")
        for suffix, labels, value in fam.samples:
            label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            lines.append(f"{fam.name}{suffix}{{{label_text}}} {_number(value)}" if label_text else f"{fam.name}{suffix} {_number(value)}")
    return "\n".join(lines) + "\n"


class RequestStats:
    """Thread-safe request counters and a latency histogram per route template."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, str], int] = defaultdict(int)
        self._buckets: dict[tuple[str, str], list[int]] = {}
        self._sums: dict[tuple[str, str], float] = defaultdict(float)
        self._totals: dict[tuple[str, str], int] = defaultdict(int)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._counts[(method, route, str(status))] += 1
            key = (method, route)
            buckets = self._buckets.setdefault(key, [0] * len(LATENCY_BUCKETS))
            for i, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    buckets[i] += 1
            self._sums[key] += seconds
            self._totals[key] += 1

    def families(self) -> list[Family]:
        requests = Family("storage_api_requests_total", "counter", "HTTP requests by method, route and status")
        latency = Family("storage_api_request_duration_seconds", "histogram", "HTTP request latency")
        with self._lock:
            for (method, route, status), n in sorted(self._counts.items()):
                requests.add(n, method=method, route=route, status=status)
            for key, buckets in sorted(self._buckets.items()):
                method, route = key
                for bound, n in zip(LATENCY_BUCKETS, buckets):
                    latency.add(n, "_bucket", method=method, route=route, le=_number(bound))
                latency.add(self._totals[key], "_bucket", method=method, route=route, le="+Inf")
                latency.add(self._sums[key], "_sum", method=method, route=route)
                latency.add(self._totals[key], "_count", method=method, route=route)
        return [requests, latency]


class MetricsMiddleware:
    """Times every HTTP request and records it under its route template (not the raw path)."""

    def __init__(self, app: Any, stats: RequestStats) -> None:
        self.app = app
        self.stats = stats

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_wrapper(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.stats.observe(scope.get("method", "?"), template, status[0], time.perf_counter() - start)
