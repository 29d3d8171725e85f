#!/usr/bin/env python3
"""CLI start-up: wall clock and CPU of whole `storagectl` commands beside peer CLIs.

    .venv/bin/python scripts/bench/startup_bench.py [--rounds 15] [--catalogs 0,1000]
        [--importtime] [--baseline OTHER/.venv/bin/storagectl] [--json]

`storagectl` is the venv's console script (storage/cli/fast.py, which answers these commands
itself and hands any other to storage/cli/main.py); --baseline names another one, e.g. main's.
Rows (each a whole process, start-up included, stdout to /dev/null; rounds interleaved):
  storagectl --help, volume list, volume list --json, backup list, backup list --json;
  volume list and backup list on a terminal (a new pseudo-terminal, 120 x 40: Rich draws the table)
  python -c pass (the interpreter's floor), swift --version (.cache/swift-venv), restic version
  (when installed).
Each row: wall median (min-max) and user+sys CPU median of the child (os.wait4), which a busy
machine disturbs far less than wall. Each catalog is a throw-away SQLite one with N volumes
and N backups (one per --catalogs size) written through the catalog's ORM (listing cost does not
depend on how they got there); `--help` runs once, the listings once per catalog. Children run
without PYTHONDONTWRITEBYTECODE (a test environment may set it; an installed package or a
user's checkout has its .pyc files, so the warm-up run writes them as a user's first run would). --baseline adds the same commands run by another checkout's storagectl (e.g. the
commit before a change), interleaved in the same rounds. --importtime adds `python -X importtime` self-time summed per top-level package.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from scripts.bench.wallclock import import_rows  # noqa: E402

BIN = Path(sys.executable).parent
STORAGECTL = str(BIN / "storagectl")
CASES = [("--help",), ("volume", "list"), ("volume", "list", "--json"), ("backup", "list"), ("backup", "list", "--json")]


def make_catalog(data_dir: Path, volumes: int, backups: int) -> Path:
    import storage
    from storage.backup import records
    from storage.catalog.volumes import VolumeRow

    data_dir.mkdir(parents=True)
    cfg = data_dir / "storage.toml"
    cfg.write_text(f'data_dir = "{data_dir}"\n')
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with storage.open(cfg) as st, st.catalog.session() as s:
        for i in range(volumes):
            s.add(VolumeRow(name=f"vol-{i:05d}", size_bytes=(i + 1) << 20, pool="default", status="available",
                            labels={"bench": "1"}, created_at=t0 + timedelta(seconds=i), updated_at=t0))  # fmt: skip
        for i in range(backups):
            s.add(records.new_row(id=f"00000000-0000-0000-0000-{i:012d}", repository=f"file://{data_dir}/objects/backups",
                                  volume_name=f"vol-{i % max(volumes, 1):05d}", status="available", size_bytes=1 << 30,
                                  stored_bytes=1 << 20, created_at=t0 + timedelta(seconds=i), completed_at=t0))  # fmt: skip
    return cfg


def peers() -> list[tuple[str, list[str]]]:
    rows = [("python -c pass", [sys.executable, "-c", "pass"])]
    swift = ROOT / ".cache" / "swift-venv" / "bin" / "swift"
    if swift.exists():
        rows.append(("swift --version", [str(swift), "--version"]))
    restic = shutil.which("restic")
    if restic:
        rows.append(("restic version", [restic, "version"]))
    return rows


Row = tuple[str, list[str], dict[str, str], bool]  # name, argv, environment, stdout a terminal
TERMINAL_CASES = [("volume", "list"), ("backup", "list")]  # a person at a terminal: Rich draws the table


def _drain(fd: int) -> None:
    while True:
        try:
            if not os.read(fd, 65536):
                return
        except OSError:  # EIO: the command closed the terminal
            return


def run_once(argv: list[str], env: dict[str, str], tty: bool = False) -> tuple[float, float]:
    """Wall seconds and user+sys CPU seconds of one whole process (stdout /dev/null, or a new
    pseudo-terminal of 120 x 40 read meanwhile)."""
    import threading

    primary = secondary = -1
    if tty:
        import fcntl
        import struct
        import termios

        primary, secondary = os.openpty()
        fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        reader = threading.Thread(target=_drain, args=(primary,), daemon=True)
        reader.start()
    t = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=secondary if tty else subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    if tty:
        os.close(secondary)
        reader.join(10)
        os.close(primary)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def bench(rows: list[Row], rounds: int) -> list[dict]:
    walls: dict[str, list[float]] = {name: [] for name, _, _, _ in rows}
    cpus: dict[str, list[float]] = {name: [] for name, _, _, _ in rows}
    for name, argv, env, tty in rows:  # warm-up: page cache, .pyc files
        run_once(argv, env, tty)
    for _ in range(rounds):
        for name, argv, env, tty in rows:
            wall, cpu = run_once(argv, env, tty)
            walls[name].append(wall)
            cpus[name].append(cpu)
    return [
        {
            "command": name, "runs": rounds, "wall_median_s": statistics.median(walls[name]),
            "wall_min_s": min(walls[name]), "wall_max_s": max(walls[name]), "cpu_median_s": statistics.median(cpus[name]),
        }
        for name, _, _, _ in rows
    ]  # fmt: skip


def importtime(args: tuple[str, ...], env: dict[str, str], top: int = 12, python: str = sys.executable,
               module: str = "storage.cli.fast") -> list[tuple[str, float]]:
    """Self import time per top-level package (storage.* per sub-package), in ms, largest first."""
    proc = subprocess.run([python, "-X", "importtime", "-m", module, *args],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, check=True,
                          cwd="/")  # fmt: skip - not the checkout: `-m` would import its storage/ for any python
    per: Counter[str] = Counter()
    for self_us, _cumulative, _depth, name in import_rows(proc.stderr):
        parts = name.split(".")
        per[".".join(parts[:2]) if parts[0] == "storage" else parts[0]] += self_us
    total = sum(per.values()) / 1000
    return [("(total)", total)] + [(k, v / 1000) for k, v in per.most_common(top)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--catalogs", default="0,1000", help="catalog sizes: N volumes and N backups each")
    ap.add_argument("--importtime", action="store_true")
    ap.add_argument("--baseline", help="another storagectl to run the same commands with, as 'baseline' rows")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    sizes = [int(n) for n in a.catalogs.split(",")]
    base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory(prefix="startup-bench-") as tmp:
        envs = {n: {**base, "STORAGE_CONFIG": str(make_catalog(Path(tmp) / f"this-{n}", n, n))} for n in sizes}
        rows: list[Row] = []
        for c in CASES:
            for n in sizes[:1] if c == ("--help",) else sizes:
                rows.append((f"storagectl {' '.join(c)}" + ("" if c == ("--help",) else f" [{n}]"), [STORAGECTL, *c], envs[n], False))
        for c in TERMINAL_CASES:
            for n in sizes:
                rows.append((f"storagectl {' '.join(c)}, terminal [{n}]", [STORAGECTL, *c], envs[n], True))
        if a.baseline:  # its own catalogs: another checkout may migrate one to a schema this one does not know
            base_envs = {n: {**base, "STORAGE_CONFIG": str(make_catalog(Path(tmp) / f"baseline-{n}", n, n))} for n in sizes}
            for c in CASES:
                for n in sizes[:1] if c == ("--help",) else sizes:
                    rows.append((f"baseline {' '.join(c)}" + ("" if c == ("--help",) else f" [{n}]"), [a.baseline, *c], base_envs[n], False))
            for c in TERMINAL_CASES:
                for n in sizes:
                    rows.append((f"baseline {' '.join(c)}, terminal [{n}]", [a.baseline, *c], base_envs[n], True))
        rows += [(name, argv, base, False) for name, argv in peers()]
        result = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"), "load_average_before": os.getloadavg(),
            "cpus": os.cpu_count(), "catalogs": sizes, "rows": bench(rows, a.rounds), "load_average_after": os.getloadavg(),
        }  # fmt: skip
        if a.importtime:
            env = envs[sizes[-1]]
            result["importtime_ms"] = {" ".join(c): importtime(c, env) for c in CASES[:2] + CASES[3:4]}
            if a.baseline and (Path(a.baseline).parent / "python").exists():  # a venv's storagectl
                python = str(Path(a.baseline).parent / "python")
                for c in CASES[:2] + CASES[3:4]:
                    result["importtime_ms"][f"{' '.join(c)} (baseline)"] = importtime(c, base_envs[sizes[-1]], python=python,
                                                                                      module="storage.cli.main")
    if a.json:
        print(json.dumps(result, indent=2))
        return
    la = " / ".join(f"{x:.2f}" for x in result["load_average_before"])
    lb = " / ".join(f"{x:.2f}" for x in result["load_average_after"])
    print(f"{result['date']}  load average {la} before, {lb} after  cpus {result['cpus']}  catalogs [N volumes + N backups]: {sizes}")
    print(f"{'command':40} {'wall median':>12} {'(min - max)':>20} {'user+sys':>10}")
    for r in result["rows"]:
        span = f"({r['wall_min_s'] * 1000:.0f} - {r['wall_max_s'] * 1000:.0f} ms)"
        print(f"{r['command']:40} {r['wall_median_s'] * 1000:9.0f} ms {span:>20} {r['cpu_median_s'] * 1000:7.0f} ms")
    for cmd, per in result.get("importtime_ms", {}).items():
        print(f"\nimporttime, storagectl {cmd}: " + ", ".join(f"{k} {v:.0f}" for k, v in per) + " (ms, self time)")


if __name__ == "__main__":
    main()
