#!/usr/bin/env python3
"""Instant access benchmark, wall clock of whole commands: `backup serve` (NBD) vs a full restore.

    .venv/bin/python scripts/bench/nbd_bench.py [--size 1G] [--rounds 3] [--no-write]

Backs up one image (random data in three quarters of it, holes in the rest) into a local file
repository, then in interleaved rounds measures:

* restore: `storagectl backup restore ID --to-path FILE` (the only way to read anything before);
* serve, time to first byte: from starting `storagectl backup serve ID --json` until `qemu-io`
  has read the first 512 bytes over nbd:// (start-up, repository open, lock, nbdkit, one chunk);
* serve, one 4 KiB read at a random offset: the same from start, with the 4 KiB read instead;
  and the `qemu-io` command alone on the running export;
* serve, sequential read of the whole export: `qemu-img convert nbd://... FILE` (skips the
  holes through NBD block status, as the restore skips them) on the running export.

Each figure is the wall clock of the whole command(s), median [min-max] over the rounds. Records
date, cores and load average; writes docs/benchmarks.md between the nbd-bench markers unless
--no-write. Everything it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wallclock import rotated  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
STORAGECTL = str(ROOT / ".venv" / "bin" / "storagectl")
MIB = 1024 * 1024
START, END = "<!-- nbd-bench:start -->", "<!-- nbd-bench:end -->"


def run(cmd: list[str]) -> float:
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}{proc.stdout[-500:]}")
    return wall


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_image(path: Path, size: int) -> None:
    """Random data in the first three quarters of every 64 MiB, holes in the last quarter."""
    block = 64 * MIB
    rng = random.Random(1)
    with open(path, "wb") as f:
        f.truncate(size)
        for base in range(0, size, block):
            f.seek(base)
            left = min(block * 3 // 4, size - base)
            while left > 0:
                n = min(8 * MIB, left)
                f.write(rng.randbytes(n))
                left -= n


def serve_round(config: Path, backup_id: str, size: int, what: str, out: Path) -> dict[str, float]:
    """Start an export, do `what` (first, random or sequential), stop it; the walls it measured."""
    port = free_port()
    uri = f"nbd://127.0.0.1:{port}/{backup_id}"
    t0 = time.monotonic()
    proc = subprocess.Popen([STORAGECTL, "-c", str(config), "backup", "serve", backup_id, "--port", str(port), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"serve failed: {proc.stderr.read() if proc.stderr else ''}")
        json.loads(line)
        ready = time.monotonic() - t0
        got: dict[str, float] = {"ready": ready}
        if what == "first":
            run(["qemu-io", "-r", "-f", "raw", "-c", "read 0 512", uri])
            got["first"] = time.monotonic() - t0
        elif what == "random":
            data_blocks = [b for b in range(0, size - 4096, 4096) if (b % (64 * MIB)) < 48 * MIB]
            offset = random.Random(time.time_ns()).choice(data_blocks)
            alone = run(["qemu-io", "-r", "-f", "raw", "-c", f"read {offset} 4096", uri])
            got["random"] = time.monotonic() - t0
            got["random_alone"] = alone
        else:
            # -t writeback: flushed at the end, like the restore's fsync (convert's default cache is unsafe)
            got["sequential"] = run(["qemu-img", "convert", "-t", "writeback", "-f", "raw", "-O", "raw", uri, str(out)])
            out.unlink()
        return got
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


def spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f} s"
    return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}] s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="1G", help="image size (M or G)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workdir", default="/var/tmp", help="where the image, repository and restores go")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    size = int(args.size[:-1]) * (1024 if args.size[-1].upper() == "G" else 1) * MIB
    meta = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "cores": os.cpu_count(),
            "load_before": [round(x, 2) for x in os.getloadavg()]}
    work = Path(tempfile.mkdtemp(prefix="nbd-bench-", dir=args.workdir))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up (finally) when stopped
    try:
        data = work / "data"
        data.mkdir()
        config = data / "storage.toml"
        config.write_text(f'data_dir = "{data}"\n')
        image = work / "image.raw"
        make_image(image, size)
        t0 = time.monotonic()
        proc = subprocess.run([STORAGECTL, "-c", str(config), "backup", "create", str(image), "--json"], capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(proc.stderr)
        backup_id = json.loads(proc.stdout)["id"]
        print(f"backup of {size // MIB} MiB: {time.monotonic() - t0:.1f} s", flush=True)
        results: dict[str, list[float]] = {}
        kinds = ["restore", "first", "random", "sequential"]
        for r in range(args.rounds):
            for kind in rotated(kinds, r):
                out = work / "out.raw"
                if kind == "restore":
                    wall = run([STORAGECTL, "-c", str(config), "backup", "restore", backup_id, "--to-path", str(out), "--json"])
                    out.unlink()
                    results.setdefault("restore", []).append(wall)
                else:
                    for key, value in serve_round(config, backup_id, size, kind, out).items():
                        results.setdefault(key, []).append(value)
            print(f"round {r + 1}/{args.rounds}: {({k: round(v[-1], 2) for k, v in results.items()})}, "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)
        meta["load_after"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    restore = statistics.median(results["restore"])
    rows = [
        ("full restore (`backup restore --to-path`), then anything can be read", results["restore"], ""),
        ("serve: start until the export accepts connections", results["ready"], ""),
        ("serve: start until the first 512 bytes are read (`qemu-io`)", results["first"],
         f"{restore / statistics.median(results['first']):.1f}x sooner than the restore"),
        ("serve: start until one 4 KiB block at a random offset is read", results["random"],
         f"{restore / statistics.median(results['random']):.1f}x sooner than the restore"),
        ("the 4 KiB `qemu-io` read alone, export running", results["random_alone"], ""),
        ("sequential read of the whole export (`qemu-img convert -t writeback nbd://...` to a file), export running", results["sequential"],
         f"{statistics.median(results['sequential']) / restore:.2f}x the restore's time"),
    ]
    text = "\n".join([
        START,
        "## Instant access: `backup serve` over NBD vs a full restore (wall clock of whole commands)",
        "",
        f"`scripts/bench/nbd_bench.py --size {args.size} --rounds {args.rounds}`, {meta['date']}, {meta['cores']} cores, "
        f"load average {meta['load_before']} before and {meta['load_after']} after (other engineers' suites running), "
        f"{size // MIB} MiB image (random data in 3/4, holes in 1/4) backed up into a local file repository "
        "(the host's ext4); restores and copies go to a file on the same disk. Median [min-max] over interleaved rounds; "
        "every `serve` figure includes `storagectl` start-up, opening the repository, the lock and nbdkit's start.",
        "",
        "| what | wall clock | vs restore |",
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
