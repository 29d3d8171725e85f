#!/usr/bin/env python3
"""Scale curves: how the wall clock of whole `storagectl` commands grows with the work.

    .venv/bin/python scripts/bench/scale_bench.py [--quick] [--rounds N] [--curves data,sparse,catalog,repo]
        [--json] [--no-write]

Curves (each point: whole commands, start-up included, median [min-max] over --rounds, peak RSS
of the command (GNU time) and its user+sys CPU (the API: the server's per listing), run without
PYTHONDONTWRITEBYTECODE after byte-compiling storage/, as a user's install runs; the per-unit and marginal columns show linearity, see scale_table.py):

* data:    `storagectl backup create VOLUME -r file://...` (a full backup into a new local-dir
           repository on the host's disk) vs data size: a file-pool volume filled with random
           data, 256 MiB .. 4 GiB (--quick: 64 .. 512 MiB);
* sparse:  the same vs volume size at fixed data: a sparse volume of 1 .. 64 GiB (--quick:
           1 .. 16 GiB) with 64 MiB of random data written in 16 x 4 MiB spread over it;
* catalog: `storagectl volume list --json` and the API's GET /volumes (`storagectl serve`, one
           worker) vs catalog size, 100 .. 10,000 volumes inserted through the catalog's ORM.
           Each API sample follows a write to one volume row (the listing cache is keyed on the
           catalog's change counter), so it is the uncached cost; the cached one is printed beside;
* repo:    `backup list --json`, `backup gc`, `backup verify REPO` (quick: chunks exist) vs
           repository size, 10 .. 1,000 backups (--quick: 10 .. 100) of one 4 MiB volume with
           4 KiB changed between backups, made through the library (not one CLI call each).

Prints progress to stderr, then the tables with date, cores and load average; writes docs/benchmarks.md between the scale-bench markers
unless --no-write (or --json, which prints the results as JSON instead). Everything runs under a
temporary directory in /var/tmp, removed at the end; the API server it starts is stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backup_bench import fill_random, volume_path  # noqa: E402
from scale_table import CPU, GIB, Point, table  # noqa: E402
from wallclock import NO_BYTECODE, compile_tree, server_cpu, start_serve, timed  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
STORAGECTL = str(Path(sys.executable).parent / "storagectl")
MIB = 1 << 20
START, END = "<!-- scale-bench:start -->", "<!-- scale-bench:end -->"
CURVES = ("data", "sparse", "catalog", "repo")
POINTS = {  # full, quick, smoke (the test's tiny point)
    "data": ([256 * MIB, 512 * MIB, GIB, 2 * GIB, 4 * GIB], [64 * MIB, 128 * MIB, 256 * MIB, 512 * MIB], [8 * MIB]),
    "sparse": ([GIB, 4 * GIB, 16 * GIB, 64 * GIB], [GIB, 4 * GIB, 16 * GIB], [256 * MIB]),
    "catalog": ([100, 1000, 3000, 10_000], [100, 1000, 3000, 10_000], [20]),
    "repo": ([10, 100, 300, 1000], [10, 30, 100], [3]),
}
SPARSE_DATA = 64 * MIB


def make_cfg(work: Path, name: str) -> Path:
    """A data dir with a file pool on the host's disk (its own catalog, so counts are exact)."""
    data = work / name
    (data / "pool").mkdir(parents=True)
    cfg = data / "storage.toml"
    cfg.write_text(f'data_dir = "{data}"\ndefault_pool = "file"\n[pools.file]\ndriver = "file"\npath = "{data / "pool"}"\n')
    return cfg


def ctl(cfg: Path, *args: str) -> Any:
    return timed([STORAGECTL, "-c", str(cfg), *args])


def backup_point(cfg: Path, work: Path, vol: str, x: float, rounds: int) -> Point:
    walls, cpus, rss, read = [], [], 0, 0.0
    for r in range(rounds):
        repo = work / "stores" / f"repo-{vol}-{r}"  # file://ROOT/CONTAINER: root outside the data dir
        s = ctl(cfg, "backup", "create", vol, "-r", f"file://{repo}", "--json")
        walls.append(s.wall)
        cpus.append(s.cpu)
        rss = max(rss, s.rss_mib)
        read = json.loads(s.out).get("read_bytes", 0) / MIB
        shutil.rmtree(repo, ignore_errors=True)
    return Point(x, tuple(walls), rss, {"MiB read": read, CPU: statistics.median(cpus)})


def curve_data(work: Path, xs: list[int], rounds: int) -> list[Point]:
    import storage

    cfg, points = make_cfg(work, "data"), []
    for x in xs:
        vol = f"d{x // MIB}"
        with storage.open(cfg) as st:
            st.volumes.create(vol, x)
        path = volume_path(cfg, vol)
        fill_random(path, 0, x, seed=x)
        points.append(backup_point(cfg, work, vol, x, rounds))
        print(f"data {x // MIB} MiB: {points[-1].spread()}, load {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
        with storage.open(cfg) as st:
            st.volumes.delete(vol)
    return points


def curve_sparse(work: Path, xs: list[int], rounds: int) -> list[Point]:
    import storage

    cfg, points = make_cfg(work, "sparse"), []
    for x in xs:
        vol = f"s{x // MIB}"
        with storage.open(cfg) as st:
            st.volumes.create(vol, x)
        path = volume_path(cfg, vol)
        data = min(SPARSE_DATA, x // 4)
        piece = data // 16
        for i in range(16):  # 16 pieces spread evenly: holes between them
            fill_random(path, i * (x // 16), piece, seed=x + i)
        point = backup_point(cfg, work, vol, x, rounds)
        point.extra["MiB on disk"] = os.stat(path).st_blocks * 512 / MIB
        points.append(point)
        print(f"sparse {x // MIB} MiB: {point.spread()}, load {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
        with storage.open(cfg) as st:
            st.volumes.delete(vol)
    return points


def add_volume_rows(cfg: Path, start: int, stop: int) -> None:
    import storage
    from storage.catalog.volumes import VolumeRow

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with storage.open(cfg) as st, st.catalog.session() as s:
        for i in range(start, stop):
            s.add(VolumeRow(name=f"vol-{i:05d}", size_bytes=(i + 1) << 20, pool="file", status="available",
                            labels={"bench": "1"}, created_at=t0 + timedelta(seconds=i), updated_at=t0))  # fmt: skip


def touch_volume(cfg: Path, n: int) -> None:
    """One write to a volume row: bumps the catalog's change counter, so the API lists afresh."""
    import sqlalchemy as sa
    import storage
    from storage.catalog.volumes import VolumeRow

    with storage.open(cfg) as st, st.catalog.session() as s:
        s.execute(sa.update(VolumeRow).where(VolumeRow.name == "vol-00000").values(labels={"bench": str(n)}))


def server_rss_mib(pid: int) -> int:
    """VmHWM (peak RSS) of the server process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return 0


def get(url: str, token: str) -> tuple[float, int]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    t = time.monotonic()
    with urllib.request.urlopen(req, timeout=120) as resp:
        body = resp.read()
    return time.monotonic() - t, len(json.loads(body))


def curve_catalog(work: Path, xs: list[int], rounds: int) -> tuple[list[Point], list[Point]]:
    import storage

    cfg = make_cfg(work, "catalog")
    with storage.open(cfg) as st:
        _, token = st.tokens.create("operator", name="scale-bench")
    server, base = start_serve(str(STORAGECTL), cfg, work / "server.log")
    url = f"{base}/volumes"
    marker = f"{cfg}\0serve"  # the server's command line (its CPU per listing: user+sys from /proc)
    cli, api, have = [], [], 0
    try:
        for x in xs:
            add_volume_rows(cfg, have, x)
            have = x
            walls, cpus, rss = [], [], 0
            for _ in range(rounds):
                s = ctl(cfg, "volume", "list", "--json")
                if len(json.loads(s.out)) != x:
                    raise SystemExit(f"volume list returned {len(json.loads(s.out))} volumes, expected {x}")
                walls.append(s.wall)
                cpus.append(s.cpu)
                rss = max(rss, s.rss_mib)
            cli.append(Point(x, tuple(walls), rss, {CPU: statistics.median(cpus)}))
            cold, warm, spent = [], [], []
            for r in range(rounds):
                touch_volume(cfg, r)
                before = server_cpu(marker)
                wall, n = get(url, token)
                spent.append(server_cpu(marker) - before)
                if n != x:
                    raise SystemExit(f"GET /volumes returned {n} volumes, expected {x}")
                cold.append(wall)
                warm.append(get(url, token)[0])
            api.append(Point(x, tuple(cold), server_rss_mib(server.pid),
                             {CPU: statistics.median(spent), "cached s": sorted(warm)[len(warm) // 2]}))
            print(f"catalog {x}: cli {cli[-1].spread()}, api {api[-1].spread()}, load {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    text = (work / "server.log").read_text(errors="replace")
    if "Traceback" in text:
        raise SystemExit(f"the API server logged a traceback: {text[-3000:]}")
    return cli, api


def curve_repo(work: Path, xs: list[int], rounds: int) -> dict[str, list[Point]]:
    import storage

    cfg = make_cfg(work, "repo")
    repo = f"file://{work / 'stores' / 'repo-many'}"
    with storage.open(cfg) as st:
        st.volumes.create("small", 4 * MIB)
    path = volume_path(cfg, "small")
    fill_random(path, 0, 4 * MIB, seed=7)
    rng = random.Random(7)
    out: dict[str, list[Point]] = {"backup list --json": [], "backup gc": [], "backup verify REPO": []}
    made, made_s = 0, 0.0
    for x in xs:
        t, before = time.monotonic(), made
        with storage.open(cfg) as st:
            while made < x:
                fill_random(path, rng.randrange(0, 4 * MIB - 4096) & ~4095, 4096, seed=made)
                st.backups.create("small", repository=repo)
                made += 1
        step_s = time.monotonic() - t
        made_s += step_s
        cmds = {"backup list --json": ("backup", "list", "--json"), "backup gc": ("backup", "gc", repo, "--json"),
                "backup verify REPO": ("backup", "verify", repo, "--json")}  # fmt: skip
        for name, args in cmds.items():
            samples = [ctl(cfg, *args) for _ in range(rounds)]
            if name == "backup list --json" and len(json.loads(samples[0].out)) != x:
                raise SystemExit(f"backup list returned {len(json.loads(samples[0].out))} backups, expected {x}")
            extra = {"library create s each": step_s / (made - before)} if name == "backup list --json" else {}
            extra[CPU] = statistics.median(s.cpu for s in samples)
            out[name].append(Point(x, tuple(s.wall for s in samples), max(s.rss_mib for s in samples), extra))
        print(f"repo {x} backups (made in {made_s:.0f} s): " + ", ".join(f"{k} {v[-1].spread()}" for k, v in out.items())
              + f", load {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)  # fmt: skip
    return out


def run(curves: list[str], which: int, rounds: int) -> dict[str, Any]:
    meta: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(),
                            "load_before": [round(x, 2) for x in os.getloadavg()], "rounds": rounds,
                            "set": ("full", "quick", "smoke")[which]}  # fmt: skip
    results: dict[str, list[Point]] = {}
    work = Path(tempfile.mkdtemp(prefix="scale-bench-", dir="/var/tmp"))
    try:
        if "data" in curves:
            results["backup create vs data size"] = curve_data(work, POINTS["data"][which], rounds)
        if "sparse" in curves:
            results["backup create vs sparse volume size (64 MiB written)"] = curve_sparse(work, POINTS["sparse"][which], rounds)
        if "catalog" in curves:
            cli, api = curve_catalog(work, POINTS["catalog"][which], rounds)
            results["volume list --json vs catalog size"] = cli
            results["API GET /volumes vs catalog size (uncached)"] = api
        if "repo" in curves:
            for name, pts in curve_repo(work, POINTS["repo"][which], rounds).items():
                results[f"{name} vs backups in the repository"] = pts
    finally:
        shutil.rmtree(work, ignore_errors=True)
    meta["load_after"] = [round(x, 2) for x in os.getloadavg()]
    return {"meta": meta, "curves": results}


def render(res: dict[str, Any]) -> list[str]:
    meta, lines = res["meta"], []
    for title, pts in res["curves"].items():
        have = {k for p in pts for k in p.extra}
        if "data size" in title or "sparse" in title:
            extra = (CPU, "MiB read", "MiB on disk") if "sparse" in title else (CPU, "MiB read")
            lines += table(title, pts, unit=GIB, unit_name="GiB", per_label="s per GiB", extra_cols=tuple(c for c in extra if c in have))
        else:
            extra = (CPU, "cached s") if "API" in title else (CPU, "library create s each") if "backup list" in title else (CPU,)
            lines += table(title, pts, unit=1000, unit_name="items", per_label="ms per 1,000", per_scale=1000,
                           extra_cols=tuple(c for c in extra if c in have))  # fmt: skip
    head = (f"`scripts/bench/scale_bench.py{' --quick' if meta['set'] == 'quick' else ''} --rounds {meta['rounds']}`, "
            f"{meta['date']}, {meta['cpus']} cores, load average {meta['load_before']} before and {meta['load_after']} after.")  # fmt: skip
    legend = ("Each figure is a whole command (start-up included), median [min-max] over the rounds. Per unit: median / work "
              "(falls while start-up dominates); marginal: (t2 - t1) / (x2 - x1) between consecutive points, the cost of the "
              "added work with start-up cancelled out (flat marginal = linear). Peak RSS: the command's own (GNU time); for "
              "the API, the server's VmHWM so far. CPU s: the command's user+sys seconds, median (for the API: the server's per "
              "uncached listing); on a shared machine it is the steadier measure of the work, and the CPU verdict is taken on it. Backups go to a new local-dir repository (`file://`) on the host's ext4 "
              "/var/tmp; the volume's data was just written, so it is read from the page cache.")  # fmt: skip
    return [head, "", legend, "", *lines]


def to_json(res: dict[str, Any]) -> dict[str, Any]:
    return {"meta": res["meta"], "curves": {k: [{"x": p.x, "walls": p.walls, "rss_mib": p.rss_mib, **p.extra} for p in v]
                                            for k, v in res["curves"].items()}}  # fmt: skip


def from_json(doc: dict[str, Any]) -> dict[str, Any]:
    keys = ("x", "walls", "rss_mib")
    return {"meta": doc["meta"], "curves": {
        k: [Point(p["x"], tuple(p["walls"]), p["rss_mib"], {n: v for n, v in p.items() if n not in keys}) for p in v]
        for k, v in doc["curves"].items()}}  # fmt: skip


def write_doc(lines: list[str]) -> None:
    doc = ROOT / "docs" / "benchmarks.md"
    text = "\n".join([START, "## Scale curves (wall clock of whole commands vs work)", "", *lines, END]) + "\n"
    old = doc.read_text()
    if START in old and END in old:
        new = old.split(START)[0] + text + old.split(END, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + text
    doc.write_text(new)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the reduced set of points")
    ap.add_argument("--smoke", action="store_true", help="one tiny point per curve (the test's)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds per point (default 3, --quick 2, --smoke 1)")
    ap.add_argument("--curves", default=",".join(CURVES), help=f"comma-separated subset of {','.join(CURVES)}")
    ap.add_argument("--json", action="store_true", help="print the results as JSON (docs are not written)")
    ap.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    ap.add_argument("--save", help="also write the raw results as JSON to this file")
    ap.add_argument("--render", help="measure nothing: render (and write to the docs) the results a --save wrote")
    a = ap.parse_args(argv)
    curves = [c for c in a.curves.split(",") if c]
    bad = [c for c in curves if c not in CURVES]
    if bad:
        ap.error(f"unknown curve(s) {bad}; accepted: {', '.join(CURVES)}")
    which = 2 if a.smoke else 1 if a.quick else 0
    rounds = a.rounds or (1 if a.smoke else 2 if a.quick else 3)
    if not 1 <= rounds <= 20:
        ap.error(f"--rounds {rounds} is not accepted; accepted: 1..20")
    sys.path.insert(0, str(ROOT))
    os.environ.pop(NO_BYTECODE, None)  # every command (and the server) caches bytecode, as in a user's install
    if not a.render:
        compile_tree(ROOT / "storage")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the temporary directory and the server go too
    res = from_json(json.loads(Path(a.render).read_text())) if a.render else run(curves, which, rounds)
    if a.save:
        Path(a.save).write_text(json.dumps(to_json(res), indent=1))
    if a.json:
        print(json.dumps(to_json(res), indent=1))
        return 0
    lines = render(res)
    print("\n".join(lines))
    if not (a.no_write or a.smoke):
        write_doc(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
