#!/usr/bin/env python3
"""Upload/download throughput of the object-store layer vs the plain `swift` CLI, same data, same server.

    .venv/bin/python scripts/bench/objects_bench.py [--total 256M] [--object-size 64M] [--threads 1]
        [--rounds 2] [--auth-url URL --user U --key K]

Without --auth-url it starts a Swift all-in-one (scripts/swift-aio.sh, devices on tmpfs) on
free ports and stops it afterwards. Data files are random and live on tmpfs (/dev/shm) so the
local disk does not take part. Each measurement is the best of --rounds. Both sides verify
MD5s (the swift CLI by default, the store on every put and whole-object get).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from backends.object.swift.store import SwiftStore  # noqa: E402
from storage.units import parse_size  # noqa: E402

AIO = ROOT / "scripts" / "swift-aio.sh"
SWIFT_CLI = ROOT / ".cache" / "swift-venv" / "bin" / "swift"
CHUNK = 1024 * 1024


def best_of(rounds: int, fn: Callable[[int], None]) -> float:
    times = []
    for r in range(rounds):
        started = time.perf_counter()
        fn(r)
        times.append(time.perf_counter() - started)
    return min(times)


def in_threads(n: int, items: list[Any], work: Callable[[Any, Any], None], make_ctx: Callable[[], Any]) -> None:
    """Run work(ctx, item) over items with n threads, each with its own ctx (store)."""
    lock = threading.Lock()
    queue = list(items)
    errors: list[BaseException] = []

    def runner() -> None:
        ctx = make_ctx()
        while True:
            with lock:
                if not queue:
                    return
                item = queue.pop()
            try:
                work(ctx, item)
            except BaseException as exc:  # noqa: BLE001 - reported after join
                errors.append(exc)
                return

    threads = [threading.Thread(target=runner) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--total", default="256M")
    ap.add_argument("--object-size", default="64M")
    ap.add_argument("--threads", type=int, default=1, help="concurrent objects (swift --object-threads, store clones)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--auth-url")
    ap.add_argument("--user", default="test:tester")
    ap.add_argument("--key", default="testing")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    total, obj_size = parse_size(args.total), parse_size(args.object_size)
    count = max(1, total // obj_size)
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    work = Path(tempfile.mkdtemp(prefix="objbench-", dir=shm))
    aio_dir = work / "aio"
    started_aio = False
    try:
        auth_url = args.auth_url
        if not auth_url:
            out = subprocess.run(
                [str(AIO), "start", "--dir", str(aio_dir), "--devices", str(work / "devices"), "--json"],
                check=True, capture_output=True, text=True,
            )
            started_aio = True
            auth_url = json.loads(out.stdout)["auth_url"]
        env = {**os.environ, "ST_AUTH": auth_url, "ST_USER": args.user, "ST_KEY": args.key}
        data_dir = work / "data"
        data_dir.mkdir()
        for i in range(count):
            with open(data_dir / f"obj{i:03d}", "wb") as fh:
                for _ in range(obj_size // CHUNK):
                    fh.write(os.urandom(CHUNK))
                fh.write(os.urandom(obj_size % CHUNK))
        files = sorted(data_dir.iterdir())
        nbytes = sum(f.stat().st_size for f in files)
        options = {"auth_url": auth_url, "user": args.user, "key": args.key}
        threads = str(args.threads)

        def swift(*a: str, cwd: Path | None = None) -> None:
            subprocess.run([str(SWIFT_CLI), *a], env=env, cwd=cwd, check=True, capture_output=True)

        def raw_upload(r: int) -> None:
            swift("upload", "bench-raw", "--object-threads", threads, "--segment-size", str(2 * obj_size), ".", cwd=data_dir)

        def ours_upload(r: int) -> None:
            def put(store: SwiftStore, path: Path) -> None:
                with path.open("rb") as fh:
                    store.put_object("bench-ours", path.name, fh)

            in_threads(args.threads, files, put, lambda: SwiftStore(options))

        def raw_download(r: int) -> None:
            out = work / f"raw-dl-{r}"
            swift("download", "bench-raw", "--object-threads", threads, "-D", str(out))
            shutil.rmtree(out)

        def ours_download(r: int) -> None:
            out = work / f"ours-dl-{r}"
            out.mkdir()

            def get(store: SwiftStore, path: Path) -> None:
                with store.get_object("bench-ours", path.name) as reader, open(out / path.name, "wb") as fh:
                    while block := reader.read(CHUNK):
                        fh.write(block)

            in_threads(args.threads, files, get, lambda: SwiftStore(options))
            shutil.rmtree(out)

        SwiftStore(options).create_container("bench-ours")
        swift("post", "bench-raw")
        results = {}
        # interleave raw and ours round by round so machine noise hits both alike
        best: dict[str, float] = {}
        for r in range(args.rounds):
            for label, fn in (("raw_up", raw_upload), ("ours_up", ours_upload), ("raw_dl", raw_download), ("ours_dl", ours_download)):
                best[label] = min(best.get(label, float("inf")), best_of(1, lambda _r, fn=fn, r=r: fn(r)))
        t_raw_up, t_ours_up, t_raw_dl, t_ours_dl = best["raw_up"], best["ours_up"], best["raw_dl"], best["ours_dl"]
        mb = nbytes / 1e6
        results = {
            "bytes": nbytes, "objects": count, "object_size": obj_size, "threads": args.threads,
            "upload": {"swift_cli_MBps": mb / t_raw_up, "store_MBps": mb / t_ours_up, "ratio": t_raw_up / t_ours_up},
            "download": {"swift_cli_MBps": mb / t_raw_dl, "store_MBps": mb / t_ours_dl, "ratio": t_raw_dl / t_ours_dl},
        }
        if args.json:
            print(json.dumps(results, indent=2))
        else:
            print(f"{nbytes / 2**20:.0f} MiB in {count} objects of {obj_size / 2**20:.0f} MiB, {args.threads} thread(s), best of {args.rounds}")
            print(f"{'':10} {'swift CLI':>12} {'store layer':>12} {'ratio':>7}")
            for op in ("upload", "download"):
                r = results[op]
                print(f"{op:10} {r['swift_cli_MBps']:>9.0f} MB/s {r['store_MBps']:>8.0f} MB/s {r['ratio']:>6.0%}")
        return 0
    finally:
        if started_aio:
            subprocess.run([str(AIO), "stop", "--dir", str(aio_dir)], check=False, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
