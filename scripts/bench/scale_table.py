"""Pure parts of the scale benchmark: per-unit cost, marginal cost, a linearity verdict, tables.

No project imports and no I/O: scripts/bench/scale_bench.py measures, this computes and prints,
tests/test_bench_scale.py table-tests it.

A point is (work x, wall times in seconds, peak RSS MiB). "Per unit" is median / x (what the
user pays per GiB or per 1,000 items, start-up included, so it falls as x grows while start-up
dominates). "Marginal" is the cost of the work added between two consecutive points,
(t2 - t1) / (x2 - x1): start-up cancels out, so a curve is linear when its marginal cost stays
flat and superlinear when the marginal cost grows with x.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

GIB = 1 << 30
CPU = "CPU s"  # the extra column with the median user+sys seconds of a point


@dataclass(frozen=True)
class Point:
    x: float  # the work: bytes or items
    walls: tuple[float, ...]  # seconds, one per round
    rss_mib: int = 0  # peak RSS of the measured process (max over rounds)
    extra: dict[str, float] = field(default_factory=dict)  # e.g. cached API time, bytes read

    @property
    def median(self) -> float:
        return statistics.median(self.walls)

    def spread(self) -> str:
        """'median [min-max] s', or just the value for one round."""
        if len(self.walls) == 1:
            return f"{self.walls[0]:.2f} s"
        return f"{self.median:.2f} [{min(self.walls):.2f}-{max(self.walls):.2f}] s"


def per_unit(points: list[Point], unit: float) -> list[float]:
    """Median seconds per unit of work (unit = GIB for s/GiB, 1000 for s per 1,000 items)."""
    return [p.median / (p.x / unit) for p in points]


def marginal(points: list[Point], unit: float) -> list[float | None]:
    """Seconds per unit of the work added since the previous point (None for the first point)."""
    out: list[float | None] = [None]
    for a, b in zip(points, points[1:], strict=False):
        dx = (b.x - a.x) / unit
        out.append((b.median - a.median) / dx if dx > 0 else None)
    return out


def linearity(points: list[Point], *, tolerance: float = 2.0, noise_s: float = 0.25) -> str:
    """A verdict on how cost grows with work: 'flat', 'linear or better', or 'superlinear (...)'.

    Compares the marginal cost of the last step with the average marginal cost of the steps
    before it ((t[-2] - t[0]) / (x[-2] - x[0])): a linear curve (with any fixed start-up cost)
    has them equal, a sublinear one a cheaper last step; a last step dearer than `tolerance`
    times the earlier average is superlinear. Differences under `noise_s` seconds are noise: a
    curve that grows less in total is 'flat', and the earlier average is taken as at least
    noise_s over its span (a start-up dominated beginning does not make every later step look dear).
    """
    pts = sorted(points, key=lambda p: p.x)
    if len(pts) < 2:
        return "one point"
    if pts[-1].median - pts[0].median <= noise_s:
        return "flat"
    if len(pts) == 2:
        return "linear or better"
    span = pts[-2].x - pts[0].x
    earlier = max(pts[-2].median - pts[0].median, noise_s) / span
    a, b = pts[-2], pts[-1]
    last = (b.median - a.median) / (b.x - a.x)
    if last > tolerance * earlier:
        return f"superlinear (last step {last / earlier:.1f}x the earlier marginal cost)"
    return "linear or better"


def memory_verdict(points: list[Point], *, slack_mib: int = 16, ratio: float = 1.25) -> str:
    """How peak RSS behaves at the top of the curve: 'bounded' or 'grows'.

    'bounded' when the last step adds at most `slack_mib` or a factor `ratio` (a pipeline whose
    buffers fill up by the second point and then stay: flat in the work), 'grows' otherwise
    (memory proportional to the work, e.g. a listing held whole). Both show smallest -> largest.
    """
    pts = [p for p in sorted(points, key=lambda p: p.x) if p.rss_mib]
    if len(pts) < 2:
        return "n/a"
    lo, prev, hi = pts[0].rss_mib, pts[-2].rss_mib, pts[-1].rss_mib
    if hi - prev <= slack_mib or hi <= ratio * prev:
        return f"bounded ({lo} -> {hi} MiB)"
    return f"grows ({lo} -> {hi} MiB; last step {prev} -> {hi} MiB)"


def cpu_points(points: list[Point]) -> list[Point]:
    """The same curve with each point's median CPU seconds as its one sample ([] unless every point has them)."""
    if not points or any(CPU not in p.extra for p in points):
        return []
    return [Point(p.x, (float(p.extra[CPU]),), p.rss_mib) for p in points]


def fmt_x(x: float, unit_name: str) -> str:
    if unit_name == "GiB":
        return f"{x / GIB:g} GiB" if x >= GIB else f"{x / (1 << 20):g} MiB"
    return f"{int(x):,}"


def table(title: str, points: list[Point], *, unit: float, unit_name: str, per_label: str,
          per_scale: float = 1.0, extra_cols: tuple[str, ...] = ()) -> list[str]:
    """A markdown table: work, wall median [min-max], per unit, marginal, peak RSS, extra columns; then the verdicts."""
    pts = sorted(points, key=lambda p: p.x)
    pu, mg = per_unit(pts, unit), marginal(pts, unit)
    head = ["work", "wall median [min-max]", per_label, "marginal", "peak RSS", *extra_cols]
    lines = [f"**{title}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p, u, m in zip(pts, pu, mg, strict=True):
        row = [fmt_x(p.x, unit_name), p.spread(), f"{u * per_scale:.2f}", "" if m is None else f"{m * per_scale:.2f}",
               f"{p.rss_mib} MiB" if p.rss_mib else "", *(_cell(p.extra.get(c)) for c in extra_cols)]
        lines.append("| " + " | ".join(row) + " |")
    cpu = cpu_points(pts)
    cpu_verdict = f"; CPU: {linearity(cpu)}" if cpu else ""
    lines += ["", f"Time: {linearity(pts)}{cpu_verdict}; memory: {memory_verdict(pts)}.", ""]
    return lines


def _cell(value: float | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)
