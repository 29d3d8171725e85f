"""scripts/bench/scale_bench.py: the pure table/linearity parts, table-tested, and one tiny smoke run.

The smoke run (one point per curve: an 8 MiB full backup, a 256 MiB sparse volume, 20 catalog
rows listed by the CLI and by a real `storagectl serve`, 3 backups listed, collected and verified)
takes about 20 s: it is whole `storagectl` commands, start-up included.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts" / "bench"))

from scale_table import CPU, GIB, Point, cpu_points, linearity, marginal, memory_verdict, per_unit, table  # noqa: E402


def pts(*pairs: tuple[float, float], rss: tuple[int, ...] = ()) -> list[Point]:
    return [Point(x, (t,), rss[i] if rss else 0) for i, (x, t) in enumerate(pairs)]


def test_per_unit_and_marginal() -> None:
    p = pts((GIB, 3.0), (2 * GIB, 5.0), (4 * GIB, 9.0))
    assert per_unit(p, GIB) == [3.0, 2.5, 2.25]
    assert marginal(p, GIB) == [None, 2.0, 2.0]
    assert marginal(pts((100, 1.0), (1100, 1.5)), 1000) == [None, 0.5]


@pytest.mark.parametrize(
    ("pairs", "verdict"),
    [
        (((100, 1.0), (1000, 1.1), (10_000, 1.2)), "flat"),  # start-up dominated: grows 0.2 s
        (((1, 2.0), (2, 4.0), (4, 8.0)), "linear or better"),  # t = 2x
        (((1, 2.0), (2, 3.0), (4, 5.0), (8, 9.0)), "linear or better"),  # fixed cost + linear
        (((1, 1.0), (10, 2.0), (100, 3.0)), "linear or better"),  # logarithmic
        (((1, 1.0), (2, 1.5), (4, 3.0), (8, 20.0)), "superlinear"),  # the last step jumps
        (((10, 1.0), (100, 2.0), (1000, 200.0)), "superlinear"),  # quadratic-ish
        (((1, 1.0), (2, 9.0)), "linear or better"),  # two points: nothing to compare the last step with
        (((1, 1.0),), "one point"),
    ],
)
def test_linearity(pairs: tuple[tuple[float, float], ...], verdict: str) -> None:
    assert linearity(pts(*pairs)).startswith(verdict)


def test_linearity_ignores_point_order() -> None:
    assert linearity(pts((4, 8.0), (1, 2.0), (2, 4.0))) == "linear or better"


@pytest.mark.parametrize(
    ("rss", "verdict"),
    [
        ((100, 110, 120), "bounded"),
        ((144, 207, 221, 224), "bounded"),  # buffers fill up by the second point, then stay
        ((35, 41, 52, 92), "grows"),  # a listing held whole
        ((100, 300, 900), "grows"),
        ((0, 0, 0), "n/a"),
    ],
)
def test_memory_verdict(rss: tuple[int, ...], verdict: str) -> None:
    assert memory_verdict(pts(*((i + 1, float(i + 1)) for i in range(len(rss))), rss=rss)).startswith(verdict)


def test_table_rows_and_verdicts() -> None:
    p = [Point(2 * GIB, (5.0, 4.0, 6.0), 200, {"MiB read": 2048.0}), Point(GIB, (3.0,), 190, {"MiB read": 1024.0})]
    lines = table("backup vs size", p, unit=GIB, unit_name="GiB", per_label="s per GiB", extra_cols=("MiB read",))
    assert lines[2] == "| work | wall median [min-max] | s per GiB | marginal | peak RSS | MiB read |"
    assert lines[4] == "| 1 GiB | 3.00 s | 3.00 |  | 190 MiB | 1024.00 |"  # sorted by work
    assert lines[5] == "| 2 GiB | 5.00 [4.00-6.00] s | 2.50 | 2.00 | 200 MiB | 2048.00 |"
    assert lines[-2] == "Time: linear or better; memory: bounded (190 -> 200 MiB)."
    items = table("list", pts((100, 1.0), (1000, 1.9)), unit=1000, unit_name="items", per_label="ms per 1,000", per_scale=1000)
    assert items[5] == "| 1,000 | 1.90 s | 1900.00 | 1000.00 |  |"


def test_cpu_verdict_beside_the_wall_clocks() -> None:
    """On a shared machine the wall clock can look superlinear while the CPU spent grows linearly: both verdicts are printed."""
    p = [Point(1000, (2.0,), 50, {CPU: 1.0}), Point(2000, (3.0,), 50, {CPU: 1.5}), Point(3000, (9.0,), 50, {CPU: 2.0})]
    assert [q.walls for q in cpu_points(p)] == [(1.0,), (1.5,), (2.0,)]
    lines = table("t", p, unit=1000, unit_name="items", per_label="ms per 1,000", per_scale=1000, extra_cols=(CPU,))
    assert lines[-2].startswith("Time: superlinear (last step 6.0x the earlier marginal cost); CPU: linear or better; memory: bounded")
    assert cpu_points([Point(1, (1.0,)), Point(2, (2.0,), 0, {CPU: 1.0})]) == []  # only when every point has it
    assert "CPU:" not in table("t", pts((1, 1.0), (2, 2.0)), unit=1, unit_name="items", per_label="s")[-2]


def test_measured_commands_cache_bytecode(monkeypatch: pytest.MonkeyPatch) -> None:
    """A user's install caches bytecode: the benchmarks' commands never run with PYTHONDONTWRITEBYTECODE."""
    from wallclock import timed, user_env

    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    assert "PYTHONDONTWRITEBYTECODE" not in user_env({"X": "1"}) and user_env({"X": "1"})["X"] == "1"
    out = timed([sys.executable, "-c", "import sys; print(sys.dont_write_bytecode)"]).out
    assert out.strip() == "False"


def test_smoke_run_every_curve(tmp_path: Path) -> None:
    """One tiny point per curve through the real commands (about 20 s), as JSON."""
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench" / "scale_bench.py"), "--smoke", "--json"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    doc = json.loads(proc.stdout)  # progress goes to stderr: stdout is the JSON alone
    curves = doc["curves"]
    assert len(curves) == 7
    for name, points in curves.items():
        assert len(points) == 1, name
        assert points[0]["walls"][0] > 0 and points[0]["rss_mib"] > 0, name
    assert curves["backup create vs data size"][0]["MiB read"] == 8
    sparse = curves["backup create vs sparse volume size (64 MiB written)"][0]
    assert sparse["x"] == 256 << 20 and sparse["MiB on disk"] < 256
    assert curves["API GET /volumes vs catalog size (uncached)"][0]["x"] == 20
    assert doc["meta"]["set"] == "smoke" and len(doc["meta"]["load_before"]) == 3


def test_bad_curve_is_refused() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench" / "scale_bench.py"), "--curves", "data,disks"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2 and "unknown curve(s) ['disks']; accepted: data, sparse, catalog, repo" in proc.stderr


def test_saved_results_render_the_same() -> None:
    import scale_bench

    res = {"meta": {"set": "quick", "rounds": 2, "date": "d", "cpus": 2, "load_before": [1, 2, 3], "load_after": [1, 2, 3]},
           "curves": {"backup create vs data size": [Point(GIB, (3.0, 4.0), 190, {"MiB read": 1024.0})],
                      "backup gc vs backups in the repository": [Point(10, (1.0,), 90)]}}  # fmt: skip
    saved = json.loads(json.dumps(scale_bench.to_json(res)))
    assert scale_bench.render(scale_bench.from_json(saved)) == scale_bench.render(res)


def test_peak_rss_is_the_commands_own_not_this_process() -> None:
    """wait4's ru_maxrss of a child includes the parent's RSS at the fork; timed() must not report that."""
    from wallclock import rss_kib, timed

    ballast = bytearray(200 << 20)
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    small = timed(["/bin/true"])
    big = timed([sys.executable, "-c", "b = bytearray(100 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1"])
    assert small.rss_mib < 50, small.rss_mib
    assert 100 <= big.rss_mib < 190, big.rss_mib
    assert rss_kib("Command exited with non-zero status 1\n2048\n") == 2048
    del ballast
