#!/usr/bin/env python3
"""Live restore benchmark, wall clock of whole commands: `backup restore --new-volume X --live` vs a plain restore.

    .venv/bin/python scripts/bench/live_bench.py [--size 1G] [--rounds 3] [--no-write]

Backs up one image (random data in three quarters of every 64 MiB, holes in the rest) into a
local file repository, then in interleaved rounds measures:

* plain: `storagectl backup restore ID --new-volume X` (the volume is usable when it returns);
* live, usable: from starting `storagectl backup restore ID --new-volume X --live --json` until
  `qemu-io` has read the first 512 bytes of the new volume over nbd:// (start-up, volume creation,
  repository open, nbdkit, one chunk fetched on demand);
* live, a 4 KiB write then a 4 KiB read at a random offset, export running (`qemu-io`, one command);
* live, restored: from the start until the command (`--until-restored`) exits, the volume
  `available` (the background copy competing with those requests).

Each figure is the wall clock of the whole command(s), median [min-max] over the rounds. Records
date, cores and load average; writes docs/benchmarks.md between the live-bench markers unless
--no-write. Everything it starts is stopped and deleted at the end.
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
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nbd_bench import free_port, make_image, run, spread  # noqa: E402
from wallclock import rotated  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
STORAGECTL = str(ROOT / ".venv" / "bin" / "storagectl")
MIB = 1024 * 1024
START, END = "<!-- live-bench:start -->", "<!-- live-bench:end -->"


def live_round(config: Path, backup_id: str, size: int, name: str) -> dict[str, float]:
    port = free_port()
    t0 = time.monotonic()
    proc = subprocess.Popen([STORAGECTL, "-c", str(config), "backup", "restore", backup_id, "--new-volume", name, "--live",
                             "--port", str(port), "--until-restored", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"live restore failed: {proc.stderr.read() if proc.stderr else ''}")
        uri = json.loads(line)["uri"]
        got = {"ready": time.monotonic() - t0}
        run(["qemu-io", "-f", "raw", "-c", "read 0 512", uri])
        got["first"] = time.monotonic() - t0
        offset = random.Random(time.time_ns()).randrange(size // 2, size - 4096) // 4096 * 4096
        got["rw_alone"] = run(["qemu-io", "-f", "raw", "-c", f"write -P 0x5a {offset} 4096", "-c", f"read -P 0x5a {offset} 4096", uri])
        for _line in proc.stdout:  # progress lines until the last one (restored)
            pass
        if proc.wait(timeout=3600):
            raise SystemExit(f"live restore failed ({proc.returncode}): {proc.stderr.read() if proc.stderr else ''}")
        got["restored"] = time.monotonic() - t0
        return got
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="1G", help="image size (M or G)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workdir", default="/var/tmp", help="where the image, repository and volumes go")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    size = int(args.size[:-1]) * (1024 if args.size[-1].upper() == "G" else 1) * MIB
    meta = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "cores": os.cpu_count(),
            "load_before": [round(x, 2) for x in os.getloadavg()]}
    work = Path(tempfile.mkdtemp(prefix="live-bench-", dir=args.workdir))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        data = work / "data"
        data.mkdir()
        config = data / "storage.toml"
        config.write_text(f'data_dir = "{data}"\n')
        image = work / "image.raw"
        make_image(image, size)
        proc = subprocess.run([STORAGECTL, "-c", str(config), "backup", "create", str(image), "--json"], capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(proc.stderr)
        backup_id = json.loads(proc.stdout)["id"]
        image.unlink()
        results: dict[str, list[float]] = {}
        for r in range(args.rounds):
            for kind in rotated(["plain", "live"], r):
                name = f"{kind}{r}"
                if kind == "plain":
                    results.setdefault("plain", []).append(
                        run([STORAGECTL, "-c", str(config), "backup", "restore", backup_id, "--new-volume", name, "--json"]))
                else:
                    for key, value in live_round(config, backup_id, size, name).items():
                        results.setdefault(key, []).append(value)
                run([STORAGECTL, "-c", str(config), "volume", "delete", name])
            print(f"round {r + 1}/{args.rounds}: {({k: round(v[-1], 2) for k, v in results.items()})}, "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)
        meta["load_after"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    plain = statistics.median(results["plain"])
    rows = [
        ("plain restore into a new volume (`backup restore --new-volume`): usable when it returns", results["plain"], ""),
        ("live: start until the export accepts connections", results["ready"], ""),
        ("live: start until the first 512 bytes of the new volume are read (`qemu-io`): usable", results["first"],
         f"{plain / statistics.median(results['first']):.1f}x sooner than the plain restore"),
        ("live: a 4 KiB write and read back at a random offset (`qemu-io`), export running", results["rw_alone"], ""),
        ("live: start until the volume is fully restored and `available` (`--until-restored` exits)", results["restored"],
         f"{statistics.median(results['restored']) / plain:.2f}x the plain restore's time"),
    ]
    text = "\n".join([
        START,
        "## Live restore: `backup restore --live` vs a plain restore (wall clock of whole commands)",
        "",
        f"`scripts/bench/live_bench.py --size {args.size} --rounds {args.rounds}`, {meta['date']}, {meta['cores']} cores, "
        f"load average {meta['load_before']} before and {meta['load_after']} after (other engineers' suites running), "
        f"{size // MIB} MiB image (random data in 3/4, holes in 1/4) backed up into a local file repository; the new "
        "volumes are files of the default file pool on the same disk. Median [min-max] over interleaved rounds; every "
        "figure includes `storagectl` start-up, the volume's creation, opening the repository and (live) nbdkit's start.",
        "",
        "| what | wall clock | vs plain restore |",
        "|---|---|---|",
        *[f"| {name} | {spread(values)} | {note} |" for name, values, note in rows],
        END,
    ])
    print(text)
    if not args.no_write:
        doc = ROOT / "docs" / "benchmarks.md"
        old = doc.read_text()
        if START in old and END in old:
            new = old.split(START)[0] + text + "\n" + old.split(END, 1)[1].lstrip("\n")
        else:
            new = old.rstrip("\n") + "\n\n" + text + "\n"
        doc.write_text(new)


if __name__ == "__main__":
    main()
