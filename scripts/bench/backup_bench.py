#!/usr/bin/env python3
"""Backup benchmark: storage vs restic vs plain `swift upload/download`, on one local Swift.

    .venv/bin/python scripts/bench/backup_bench.py [--size 1G] [--sparse-size 8G] [--no-write]

Starts the Swift all-in-one (scripts/swift-aio.sh) in a temp dir, installs restic from apt if
missing, builds a reflink (xfs) file pool on a loop device, and measures on the same data:
full backup, incremental after ten random 1 MiB overwrites, restore, a sparse volume, a clone,
and peak RSS of our backup/restore processes. Prints ratios and writes docs/benchmarks.md
(the section between the backup-bench markers). Everything it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VENV_PY = ROOT / ".venv" / "bin" / "python"
STORAGECTL = ROOT / ".venv" / "bin" / "storagectl"
SWIFT_CLI = ROOT / ".cache" / "swift-venv" / "bin" / "swift"
MIB = 1024 * 1024
START, END = "<!-- backup-bench:start -->", "<!-- backup-bench:end -->"


def run(cmd: list[str], env: dict[str, str] | None = None, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, text=True, capture_output=True, env={**os.environ, **(env or {})}, **kw)


def ours(cfg: Path, *args: str) -> tuple[float, int, dict[str, Any]]:
    """storagectl in a child: (wall, peak RSS MiB, JSON). Peak RSS via wait4 on the child."""
    t0 = time.monotonic()
    # this checkout's code (a worktree shares the main checkout's venv, whose storagectl points elsewhere)
    cmd = [sys.executable, "-m", "storage.cli.main", "-c", str(cfg), *args, "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=str(ROOT))
    out = proc.stdout.read() if proc.stdout else b""
    err = proc.stderr.read() if proc.stderr else b""
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    if status:
        raise SystemExit(f"storagectl {' '.join(args)} failed: {err.decode()[-2000:]}")
    return wall, int(usage.ru_maxrss / 1024), json.loads(out)


def backup_seconds(doc: dict[str, Any]) -> float:
    from datetime import datetime

    start = datetime.fromisoformat(doc["created_at"])
    end = datetime.fromisoformat(doc["completed_at"])
    return (end - start).total_seconds()


def ensure_restic() -> str:
    found = shutil.which("restic")
    if found:
        return found
    subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "--no-install-recommends", "restic"], check=True)
    return shutil.which("restic") or "restic"


def restic_json_summary(out: str) -> dict[str, Any]:
    for line in reversed(out.splitlines()):
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if doc.get("message_type") == "summary":
            return doc
    return {}


def fill_random(path: str, offset: int, length: int, seed: int) -> None:
    rng = random.Random(seed)
    fd = os.open(path, os.O_WRONLY)
    try:
        done = 0
        while done < length:
            n = min(64 * MIB, length - done)
            os.pwrite(fd, rng.randbytes(n), offset + done)
            done += n
        os.fsync(fd)
    finally:
        os.close(fd)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1G")
    ap.add_argument("--sparse-size", default="8G")
    ap.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from storage.units import parse_size

    size = parse_size(args.size)
    sparse_size = parse_size(args.sparse_size)
    restic = ensure_restic()
    results: dict[str, Any] = {"size": size, "sparse_size": sparse_size, "cpus": os.cpu_count(),
                               "load_before": round(os.getloadavg()[0], 2)}
    with ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="backup-bench-", dir="/var/tmp"))
        stack.callback(shutil.rmtree, work, True)
        # -- Swift all-in-one, devices on tmpfs --------------------------------------------
        devices = Path(tempfile.mkdtemp(prefix="bench-swift-", dir="/dev/shm"))
        stack.callback(shutil.rmtree, devices, True)
        aio = ROOT / "scripts" / "swift-aio.sh"
        run([str(aio), "install"])
        state = json.loads(run([str(aio), "start", "--dir", str(work / "swift"), "--devices", str(devices), "--json"]).stdout)
        stack.callback(subprocess.run, [str(aio), "stop", "--dir", str(work / "swift")], check=False)
        sw_env = {"ST_AUTH": state["auth_url"], "ST_USER": f"{state['account']}:{state['user']}", "ST_KEY": state["key"]}
        # -- reflink pool: xfs on a loop device ---------------------------------------------
        img = work / "xfs.img"
        with open(img, "wb") as f:
            f.truncate(size * 3 + sparse_size + 2 * 1024 * MIB)
        run(["mkfs.xfs", "-q", "-m", "reflink=1", str(img)])
        dev = run(["losetup", "--find", "--show", str(img)]).stdout.strip()
        stack.callback(subprocess.run, ["losetup", "--detach", dev], check=False)
        mnt = work / "mnt"
        mnt.mkdir()
        run(["mount", "-t", "xfs", dev, str(mnt)])
        stack.callback(subprocess.run, ["umount", str(mnt)], check=False)
        data_dir = work / "data"
        data_dir.mkdir()
        cfg = work / "storage.toml"
        cfg.write_text(
            f'data_dir = "{data_dir}"\n[pools.default]\ndriver = "file"\npath = "{mnt}/pool"\n'
            f'[object_stores.swift]\ntype = "swift"\nauth_url = "{state["auth_url"]}"\n'
            f'user = "{sw_env["ST_USER"]}"\nkey = "{state["key"]}"\n'
        )
        import storage

        st = stack.enter_context(storage.open(cfg))
        dense = st.volumes.create("dense", size)
        backend = st.host.volume_backend(dense.pool)
        with backend.open_volume(dense.id) as path:
            dense_path = path
        fill_random(dense_path, 0, size, seed=1)
        repo = "swift://swift@bench-ours"
        print(f"data: {size / MIB:.0f} MiB random in {dense_path}", flush=True)

        # -- full backup ----------------------------------------------------------------------
        wall, rss, doc = ours(cfg, "backup", "create", "dense", "-r", repo)
        results["ours_full_s"] = backup_seconds(doc)
        results["ours_full_wall_s"] = wall
        results["ours_backup_rss_mib"] = rss
        results["ours_full_uploaded"] = doc["stored_bytes"]
        renv = {**sw_env, "RESTIC_PASSWORD": "bench", "RESTIC_REPOSITORY": "swift:bench-restic:/", "RESTIC_CACHE_DIR": str(work / "restic-cache")}
        run([restic, "init"], env=renv)
        t0 = time.monotonic()
        out = run([restic, "backup", "--json", dense_path], env=renv).stdout
        results["restic_full_s"] = time.monotonic() - t0
        results["restic_full_added"] = restic_json_summary(out).get("data_added")
        t0 = time.monotonic()
        run([str(SWIFT_CLI), "upload", "--object-name", "dense.img", "bench-plain", dense_path], env=sw_env)
        results["plain_upload_s"] = time.monotonic() - t0
        print(f"full: ours {results['ours_full_s']:.1f}s restic {results['restic_full_s']:.1f}s plain {results['plain_upload_s']:.1f}s", flush=True)

        # -- incremental after ten random 1 MiB overwrites --------------------------------------
        rng = random.Random(42)
        for i in range(10):
            fill_random(dense_path, rng.randrange(0, size - MIB), MIB, seed=100 + i)
        wall, rss, doc = ours(cfg, "backup", "create", "dense", "-r", repo)
        results["ours_incr_s"] = backup_seconds(doc)
        results["ours_incr_uploaded"] = doc["stored_bytes"]
        results["ours_incr_read"] = doc["read_bytes"]
        results["ours_backup_rss_mib"] = max(results["ours_backup_rss_mib"], rss)
        latest = doc["id"]
        t0 = time.monotonic()
        out = run([restic, "backup", "--json", dense_path], env=renv).stdout
        results["restic_incr_s"] = time.monotonic() - t0
        results["restic_incr_added"] = restic_json_summary(out).get("data_added")
        print(f"incremental: ours {results['ours_incr_s']:.2f}s {results['ours_incr_uploaded'] / MIB:.1f} MiB, restic {results['restic_incr_s']:.1f}s {(results['restic_incr_added'] or 0) / MIB:.1f} MiB", flush=True)

        # -- restore ---------------------------------------------------------------------------
        target = work / "restore.img"
        wall, rss, doc = ours(cfg, "backup", "restore", latest, "--to-path", str(target))
        results["ours_restore_s"] = doc["seconds"]
        results["ours_restore_rss_mib"] = rss
        same = subprocess.run(["cmp", "-s", str(target), dense_path])
        results["ours_restore_identical"] = same.returncode == 0
        target.unlink()
        rdir = work / "restic-restore"
        t0 = time.monotonic()
        run([restic, "restore", "latest", "--target", str(rdir)], env=renv)
        results["restic_restore_s"] = time.monotonic() - t0
        shutil.rmtree(rdir, ignore_errors=True)
        t0 = time.monotonic()
        run([str(SWIFT_CLI), "download", "bench-plain", "dense.img", "-o", str(target)], env=sw_env)
        results["plain_download_s"] = time.monotonic() - t0
        target.unlink()
        print(f"restore: ours {results['ours_restore_s']:.1f}s restic {results['restic_restore_s']:.1f}s plain {results['plain_download_s']:.1f}s", flush=True)

        # -- sparse volume with the same amount of (new) data, into a fresh repository -------------
        sparse = st.volumes.create("sparse", sparse_size)
        with backend.open_volume(sparse.id) as path:
            sparse_path = path
        pieces = 16
        for i in range(pieces):
            fill_random(sparse_path, i * (sparse_size // pieces), size // pieces, seed=500 + i)
        wall, rss, doc = ours(cfg, "backup", "create", "sparse", "-r", "swift://swift@bench-sparse")
        results["ours_sparse_s"] = backup_seconds(doc)
        wall, rss, doc = ours(cfg, "backup", "create", "dense", "-r", "swift://swift@bench-dense2")
        results["ours_dense_fresh_s"] = backup_seconds(doc)
        print(f"sparse {sparse_size / MIB:.0f} MiB: {results['ours_sparse_s']:.1f}s vs dense {results['ours_dense_fresh_s']:.1f}s", flush=True)

        # -- clone of an already backed-up volume --------------------------------------------------
        st.volumes.clone("dense", "dense-clone")
        wall, rss, doc = ours(cfg, "backup", "create", "dense-clone", "-r", repo)
        results["ours_clone_uploaded"] = doc["stored_bytes"]
        results["ours_clone_s"] = backup_seconds(doc)
        print(f"clone: uploaded {doc['stored_bytes']} bytes", flush=True)
        st.close()

    report(results, write=not args.no_write)


def report(r: dict[str, Any], *, write: bool) -> None:
    size_mib = r["size"] / MIB
    changed = 10 * MIB
    rows = [
        ("full backup", f"{r['ours_full_s']:.1f} s ({size_mib / r['ours_full_s']:.0f} MiB/s)",
         f"{r['restic_full_s']:.1f} s", f"{r['plain_upload_s']:.1f} s (swift upload)",
         f"{r['restic_full_s'] / r['ours_full_s']:.2f}x restic; {r['plain_upload_s'] / r['ours_full_s'] * 100:.0f}% of plain", ">= 2x; >= 80%"),
        ("incremental (10 x 1 MiB)", f"{r['ours_incr_s']:.2f} s, {r['ours_incr_uploaded'] / MIB:.1f} MiB up, {r['ours_incr_read'] / MIB:.0f} MiB read",
         f"{r['restic_incr_s']:.1f} s, {(r['restic_incr_added'] or 0) / MIB:.1f} MiB up", "",
         f"{r['restic_incr_s'] / r['ours_incr_s']:.1f}x restic; {r['ours_incr_uploaded'] / changed:.2f}x changed bytes", ">= 5x; <= 2.5x"),
        ("restore", f"{r['ours_restore_s']:.1f} s (identical: {r['ours_restore_identical']})", f"{r['restic_restore_s']:.1f} s",
         f"{r['plain_download_s']:.1f} s (swift download)",
         f"{r['restic_restore_s'] / r['ours_restore_s']:.2f}x restic; {r['plain_download_s'] / r['ours_restore_s'] * 100:.0f}% of plain", ">= 2x; >= 80%"),
        (f"sparse {r['sparse_size'] / MIB / 1024:.0f} GiB with {size_mib / 1024:.0f} GiB data", f"{r['ours_sparse_s']:.1f} s", "", "",
         f"{r['ours_sparse_s'] / r['ours_dense_fresh_s']:.2f}x the dense {size_mib / 1024:.0f} GiB ({r['ours_dense_fresh_s']:.1f} s)", "<= 1.3x"),
        ("clone of a backed-up volume", f"{r['ours_clone_uploaded']} bytes up in {r['ours_clone_s']:.1f} s", "", "",
         f"{r['ours_clone_uploaded'] / r['size'] * 100:.3f}% of its size", "< 1%"),
        ("peak RSS", f"backup {r['ours_backup_rss_mib']} MiB, restore {r['ours_restore_rss_mib']} MiB", "", "", "", "< 300 MiB"),
    ]
    lines = [
        START,
        "## Backup engine vs restic vs plain Swift",
        "",
        f"`scripts/bench/backup_bench.py`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {r['cpus']} cores, load "
        f"average {r.get('load_before', '?')} before and {os.getloadavg()[0]:.2f} after the run, Swift all-in-one on 127.0.0.1 (devices on tmpfs), {size_mib:.0f} MiB of random data on a reflink (xfs) "
        "file pool; our times are the service's own (catalog created_at -> completed_at, restore seconds), restic and "
        "swift CLI times are wall clock of the command.",
        "",
        "| case | storage | restic | plain | ratio | target |",
        "|---|---|---|---|---|---|",
        *[f"| {' | '.join(row)} |" for row in rows],
        "",
        "```json",
        json.dumps(r, indent=1, default=str),
        "```",
        END,
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if write:
        doc = ROOT / "docs" / "benchmarks.md"
        old = doc.read_text() if doc.exists() else "# Benchmarks\n\n"
        if START in old and END in old:
            new = old.split(START)[0] + text + "\n" + old.split(END, 1)[1].lstrip("\n")
        else:
            new = old.rstrip("\n") + "\n\n" + text
        doc.write_text(new)


if __name__ == "__main__":
    main()
