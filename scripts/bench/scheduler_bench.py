"""Scheduler benchmark: time to place a volume with 100 hosts registered (synthetic candidates).

    .venv/bin/python scripts/bench/scheduler_bench.py [--hosts 100] [--pools 2] [--rounds 2000]

Measures, in one run:
- per decision: ``storage.scheduler.place`` over HOSTS x POOLS synthetic candidates (a tenth of the
  hosts down or disabled, three zones, labels, thin and thick pools, some full), p50/p99/mean, and
  the same plus the explanation serialised to JSON (what ``--explain --json`` adds);
- whole command: a fresh interpreter that imports the scheduler, builds the candidates, decides and
  prints the explanation as JSON (what a CLI call pays on top of its own start-up), median of 10;
- for scale, the real ``storagectl volume create NAME 8M --explain --json`` on a one-host file pool
  (whole command, catalog and all), median of 5.
Prints the load average before the run; figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from storage.scheduler import Candidate, Hints, PlacementRequest, place

GiB = 1024**3
STORAGECTL = str(Path(sys.executable).parent / "storagectl")


def synthetic(hosts: int, pools: int, seed: int = 12) -> list[Candidate]:
    rnd = random.Random(seed)
    out = []
    for h in range(hosts):
        for p in range(pools):
            total = rnd.choice((2, 4, 8, 16)) * 1024 * GiB
            thin = rnd.random() < 0.6
            prov = int(total * rnd.uniform(0.1, 1.9 if thin else 1.0))
            out.append(Candidate(
                host=f"storage-{h:03d}", pool=f"pool{p}", driver="lvm", total_bytes=total,
                free_bytes=max(0, total - (prov if not thin else prov // 3)), provisioned_bytes=prov,
                overcommit_ratio=2.0 if thin else 1.0,
                capabilities={"thin": thin, "snapshots": True, "online_extend": True, "copy_method": "cow" if thin else "copy",
                              "size_granularity": 4 * 1024 * 1024},
                availability_zone=f"az{h % 3 + 1}", labels={"tier": rnd.choice(("gold", "silver"))},
                up=rnd.random() > 0.05, disabled=rnd.random() < 0.05, disabled_reason="maintenance",
            ))  # fmt: skip
    return out


REQUEST = PlacementRequest(100 * GiB, Hints(availability_zone="az2", labels={"tier": "gold"}, capabilities={"thin": True}))


def once(hosts: int, pools: int) -> None:
    """The whole-command case: decide once and print the explanation."""
    decision = place(synthetic(hosts, pools), REQUEST)
    sys.stdout.write(json.dumps(decision.to_dict()) + "\n")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def per_decision(hosts: int, pools: int, rounds: int) -> None:
    cands = synthetic(hosts, pools)
    decision = place(cands, REQUEST)
    survivors = sum(1 for v in decision.verdicts if v.refused_by is None)
    print(f"{hosts} hosts x {pools} pools = {len(cands)} candidates; {survivors} pass the filters; chosen {decision.chosen and decision.chosen.name}")
    for label, fn in (
        ("decision", lambda: place(cands, REQUEST)),
        ("decision + JSON explanation", lambda: json.dumps(place(cands, REQUEST).to_dict())),
    ):
        for _ in range(20):
            fn()
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1000)
        print(f"  {label:<30} p50 {percentile(times, 0.5):7.3f} ms  p99 {percentile(times, 0.99):7.3f} ms  "
              f"mean {statistics.fmean(times):7.3f} ms  ({rounds} rounds)")


def wall(cmd: list[str], runs: int, env: dict[str, str] | None = None) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), min(times)


def whole_command(hosts: int, pools: int) -> None:
    med, low = wall([sys.executable, __file__, "--once", "--hosts", str(hosts), "--pools", str(pools)], 10)
    print(f"whole command, fresh interpreter, {hosts} x {pools} synthetic: median {med:.0f} ms (min {low:.0f} ms, 10 runs)")
    med, low = wall([sys.executable, "-c", "import storage.scheduler"], 10)
    print(f"  of which python start-up + import storage.scheduler: median {med:.0f} ms (min {low:.0f} ms)")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "storage.toml"
        cfg.write_text(f'data_dir = "{tmp}"\n')
        env = {k: v for k, v in os.environ.items() if not k.startswith("STORAGE_")}
        subprocess.run([STORAGECTL, "-c", str(cfg), "volume", "list"], check=True, capture_output=True, env=env)  # catalog
        times = []
        for i in range(5):
            t = time.perf_counter()
            out = subprocess.run([STORAGECTL, "-c", str(cfg), "volume", "create", f"b{i}", "8M", "--explain", "--json"],
                                 check=True, capture_output=True, env=env).stdout
            times.append((time.perf_counter() - t) * 1000)
            assert json.loads(out)["placement"]["chosen"]["pool"] == "default"
        print(f"storagectl volume create 8M --explain --json (1 host, 1 file pool): median {statistics.median(times):.0f} ms "
              f"(min {min(times):.0f} ms, 5 runs)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--pools", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2000)
    ap.add_argument("--once", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.once:
        once(args.hosts, args.pools)
        return
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, load average {os.getloadavg()}")
    per_decision(args.hosts, 1, args.rounds)
    per_decision(args.hosts, args.pools, args.rounds)
    per_decision(10 * args.hosts, 1, max(100, args.rounds // 10))
    whole_command(args.hosts, args.pools)


if __name__ == "__main__":
    main()
