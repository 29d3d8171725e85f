#!/usr/bin/env python3
"""Backup benchmark, wall clock of whole commands: `storagectl` vs `restic` vs plain `swift`.

    .venv/bin/python scripts/bench/backup_bench.py [--size 1G] [--rounds 3] [--pools ext4,xfs] [--no-write]
        [--cases full,incremental,restore]

With ``--cases restore`` the backups are made once, untimed (round 0), and every round restores
them; that table goes between its own markers (backup-bench-restore) in docs/benchmarks.md.

Starts a Swift all-in-one (scripts/swift-aio.sh, devices on tmpfs) and, per pool (a file pool on
the host's ext4 /var/tmp; a file pool on xfs with reflink on a loop device), fills one volume
with random data, then in interleaved rounds (the order of the tools rotates each round) runs
on the same bytes against the same Swift:

* full backup: `storagectl backup create` into a new plain and a new encrypted repository,
  `restic backup` into a new restic repository (Swift backend), `swift upload`;
* incremental after ten random 1 MiB overwrites: `storagectl backup create` and `restic backup`
  again into the round's repositories;
* restore of that last backup to a new file: `storagectl backup restore --to-path`, `restic
  restore`, `swift download`.

Each figure is the wall clock of the whole command (start-up included), median [min-max] over
the rounds, with the command's user+sys CPU per GiB and the Swift servers' CPU per GiB beside it
(CPU time is what a busy machine disturbs least). The service's own timing is printed beside,
never as the headline. Records date, cores and load average; writes docs/benchmarks.md between
the backup-bench markers unless --no-write. Everything it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wallclock import NO_BYTECODE, Series, compile_tree, import_rows, process_cpu, rotated, start_serve, timed, user_env  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
STORAGECTL = ROOT / ".venv" / "bin" / "storagectl"
SWIFT_CLI = ROOT / ".cache" / "swift-venv" / "bin" / "swift"
MIB = 1024 * 1024
START, END = "<!-- backup-bench:start -->", "<!-- backup-bench:end -->"
RESTORE_START, RESTORE_END = "<!-- backup-bench-restore:start -->", "<!-- backup-bench-restore:end -->"
OURS = ("storagectl plain", "storagectl encrypted")
BEFORE = ("baseline plain", "baseline encrypted")  # --baseline: another storagectl's restores, same rounds
API = ("api plain",)  # --api: the same backup asked of a running `storagectl serve` (scripts/bench/api_backup.py)
API_CLIENT = Path(__file__).resolve().parent / "api_backup.py"


def run(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, text=True, capture_output=True, env={**os.environ, **(env or {})})
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}{proc.stdout[-500:]}")
    return proc


def ensure_restic() -> str:
    found = shutil.which("restic")
    if found:
        return found
    subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "--no-install-recommends", "restic"], check=True)
    return shutil.which("restic") or "restic"


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


def service_seconds(doc: dict[str, Any]) -> float:
    if "seconds" in doc:
        return float(doc["seconds"])
    return (datetime.fromisoformat(doc["completed_at"]) - datetime.fromisoformat(doc["created_at"])).total_seconds()


class Bench:
    def __init__(self, args: argparse.Namespace, size: int, work: Path, sw_env: dict[str, str], swift_dir: str, restic: str) -> None:
        self.args, self.size, self.work, self.sw_env, self.swift_dir, self.restic = args, size, work, sw_env, swift_dir, restic
        self.series: dict[tuple[str, str, str], Series] = {}
        self.notes: dict[str, Any] = {}
        self.cases = set(args.cases.split(","))
        self.made: dict[str, tuple[dict[str, str], dict[str, str], int]] = {}  # pool -> (latest ids, restic env, round)
        self.api: tuple[str, Path, int] | None = None  # --api: (base URL, token file, server pid)

    def timing(self, op: str) -> bool:
        return op in self.cases

    def s(self, pool: str, op: str, tool: str) -> Series:
        return self.series.setdefault((pool, op, tool), Series())

    def ours(self, cfg: Path, *args: str, exe: str | None = None) -> tuple[Any, dict[str, Any]]:
        sample = timed([exe or self.args.storagectl, "-c", str(cfg), *args, "--json"], swift_marker=self.swift_dir)
        return sample, json.loads(sample.out)

    def via_api(self, volume: str, repo: str) -> tuple[Any, dict[str, Any]]:
        """The backup asked of the running server: the client command's wall clock; its CPU plus the server's meanwhile."""
        assert self.api is not None
        url, token_file, pid = self.api
        before = process_cpu(pid)
        sample = timed([sys.executable, str(API_CLIENT), url, str(token_file), volume, repo], swift_marker=self.swift_dir)
        sample.cpu += process_cpu(pid) - before
        return sample, json.loads(sample.out)

    def restic_env(self, container: str) -> dict[str, str]:
        return {**self.sw_env, "RESTIC_PASSWORD": "bench", "RESTIC_REPOSITORY": f"swift:{container}:/",
                "RESTIC_CACHE_DIR": str(self.work / "restic-cache")}

    def round(self, pool: str, cfg: Path, volume: str, path: str, key: Path, r: int) -> None:
        tools = [*OURS, "restic", "swift"]
        key_args = {OURS[0]: [], OURS[1]: ["-k", str(key)]}
        floor, _doc = self.ours(cfg, "backup", "list")  # start-up + catalog: what every command pays before any data
        self.s(pool, "start-up floor", "storagectl").add(floor)
        if self.args.baseline:
            floor, _doc = self.ours(cfg, "backup", "list", exe=self.args.baseline)
            self.s(pool, "start-up floor", "baseline").add(floor)
        if pool not in self.made or self.timing("full") or self.timing("incremental"):
            self.made[pool] = self.backups(pool, cfg, volume, path, key, r)
        latest, renv, made_in = self.made[pool]
        if self.timing("restore"):
            self.restores(pool, cfg, path, r, latest, renv, made_in, key_args)
        if made_in == r and (self.timing("full") or self.timing("incremental")):  # the next round makes its own
            self.drop_round(pool, r)

    def drop_round(self, pool: str, r: int) -> None:
        """Delete this round's containers and upload: the bench's Swift keeps its devices on tmpfs
        (RAM), which would otherwise hold about 5 x the volume size per round."""
        for container in [f"bench-{pool}-{t.split()[-1]}-{r}" for t in OURS] + [f"bench-restic-{pool}-{r}", f"bench-{pool}-api-{r}"]:
            subprocess.run([str(SWIFT_CLI), "delete", container], env={**os.environ, **self.sw_env}, capture_output=True)
        subprocess.run([str(SWIFT_CLI), "delete", f"bench-plain-{pool}", f"vol-{r}"], env={**os.environ, **self.sw_env}, capture_output=True)

    def backups(self, pool: str, cfg: Path, volume: str, path: str, key: Path, r: int) -> tuple[dict[str, str], dict[str, str], int]:
        """Full backups, ten 1 MiB writes, incrementals (timed when those cases are asked for)."""
        baseline = BEFORE if self.args.baseline else ()
        api = API if self.api else ()
        tools = [*OURS, "restic", "swift", *baseline, *api]
        repos = {t: f"swift://swift@bench-{pool}-{t.split()[-1]}-{r}" for t in OURS}
        repos.update({t: f"swift://swift@bench-{pool}-baseline-{t.split()[-1]}-{r}" for t in baseline})
        repos.update({t: f"swift://swift@bench-{pool}-api-{r}" for t in api})
        renv = self.restic_env(f"bench-restic-{pool}-{r}")
        run([self.restic, "init"], env=renv)
        key_args = {OURS[0]: [], OURS[1]: ["-k", str(key)], BEFORE[0]: [], BEFORE[1]: ["-k", str(key)]}
        latest: dict[str, str] = {}
        timed_full = self.timing("full")
        for tool in rotated(tools, r):  # -- full backup
            if tool in api:
                sample, doc = self.via_api(volume, repos[tool])
                if timed_full:
                    self.s(pool, "full", tool).add(sample, service_seconds(doc))
                continue
            if tool in baseline:  # the same backup by another storagectl (--baseline), same rounds
                if timed_full:
                    sample, doc = self.ours(cfg, "backup", "create", volume, "-r", repos[tool], *key_args[tool], exe=self.args.baseline)
                    self.s(pool, "full", tool).add(sample, service_seconds(doc))
                else:
                    self.ours(cfg, "backup", "create", volume, "-r", repos[tool], *key_args[tool], exe=self.args.baseline)
                continue
            if not timed_full:
                if tool in OURS:
                    self.ours(cfg, "backup", "create", volume, "-r", repos[tool], *key_args[tool])
                elif tool == "restic":
                    run([self.restic, "backup", "--json", path], env=renv)
                continue
            if tool in OURS:
                sample, doc = self.ours(cfg, "backup", "create", volume, "-r", repos[tool], *key_args[tool])
                self.s(pool, "full", tool).add(sample, service_seconds(doc))
                self.notes[f"{pool} full {tool} stored MiB"] = round(doc["stored_bytes"] / MIB, 1)
            elif tool == "restic":
                self.s(pool, "full", tool).add(timed([self.restic, "backup", "--json", path], env=renv, swift_marker=self.swift_dir))
            else:
                self.s(pool, "full", tool).add(timed([str(SWIFT_CLI), "upload", "--object-name", f"vol-{r}", f"bench-plain-{pool}", path],
                                                     env=self.sw_env, swift_marker=self.swift_dir))
        rng = random.Random(1000 + r)
        for i in range(10):
            fill_random(path, rng.randrange(0, self.size - MIB), MIB, seed=10_000 * r + i)
        for tool in rotated([*tools[:3], *baseline, *api], r):  # -- incremental
            if tool in api:
                sample, doc = self.via_api(volume, repos[tool])
                if self.timing("incremental"):
                    self.s(pool, "incremental", tool).add(sample, service_seconds(doc))
            elif tool in baseline:
                sample, doc = self.ours(cfg, "backup", "create", volume, "-r", repos[tool], *key_args[tool], exe=self.args.baseline)
                if self.timing("incremental"):
                    self.s(pool, "incremental", tool).add(sample, service_seconds(doc))
            elif tool in OURS:
                sample, doc = self.ours(cfg, "backup", "create", volume, "-r", repos[tool], *key_args[tool])
                if self.timing("incremental"):
                    self.s(pool, "incremental", tool).add(sample, service_seconds(doc))
                latest[tool] = doc["id"]
                self.notes[f"{pool} incremental {tool} read / stored MiB"] = f"{doc['read_bytes'] / MIB:.0f} / {doc['stored_bytes'] / MIB:.1f}"
            else:
                out = timed([self.restic, "backup", "--json", path], env=renv, swift_marker=self.swift_dir)
                if self.timing("incremental"):
                    self.s(pool, "incremental", tool).add(out)
                summary = [json.loads(x) for x in out.out.splitlines() if '"summary"' in x]
                if summary:
                    self.notes[f"{pool} incremental restic added MiB"] = round(summary[-1].get("data_added", 0) / MIB, 1)
        run([str(SWIFT_CLI), "upload", "--object-name", f"vol-{r}", f"bench-plain-{pool}", path], env=self.sw_env)
        return latest, renv, r

    def where_the_time_goes(self, pool: str, cfg: Path, volume: str, path: str) -> None:
        """One more incremental (plain, a repository of its own, after ten more 1 MiB writes) under
        ``python -X importtime``: its wall clock split into imports, the service's own time and the rest."""
        repo = f"swift://swift@bench-{pool}-why"
        run([self.args.storagectl, "-c", str(cfg), "backup", "create", volume, "-r", repo, "--json"])
        rng = random.Random(99)
        for i in range(10):
            fill_random(path, rng.randrange(0, self.size - MIB), MIB, seed=99_000 + i)
        python = str(Path(self.args.storagectl).parent / "python")
        t0 = time.monotonic()
        proc = subprocess.run([python, "-X", "importtime", self.args.storagectl, "-c", str(cfg), "backup", "create", volume,
                               "-r", repo, "--json"], capture_output=True, text=True, env=user_env())
        wall = time.monotonic() - t0
        if proc.returncode:
            raise SystemExit(f"the importtime incremental failed: {proc.stderr[-2000:]}")
        imports = sum(cumulative for _self, cumulative, depth, _name in import_rows(proc.stderr) if depth == 0) / 1e6
        own = service_seconds(json.loads(proc.stdout))
        self.notes[f"{pool} incremental plain, where the time goes"] = (
            f"{wall:.2f} s wall under -X importtime = {imports:.2f} s imports (top-level modules, cumulative) + "
            f"{own:.2f} s the service's own (snapshot, changed ranges, read, upload, manifest) + {wall - imports - own:.2f} s the rest "
            "(interpreter, argument parsing, catalog, repository lock, base snapshot)")
        subprocess.run([str(SWIFT_CLI), "delete", f"bench-{pool}-why"], env={**os.environ, **self.sw_env}, capture_output=True)

    def restores(self, pool: str, cfg: Path, path: str, r: int, latest: dict[str, str], renv: dict[str, str], made_in: int,
                 key_args: dict[str, list[str]]) -> None:
        tools = [*OURS, "restic", "swift", *(BEFORE if self.args.baseline else ())]
        target = self.work / "restore-target"
        for tool in rotated(tools, r):  # -- restore (to a new file on the host's ext4)
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            if tool in BEFORE:  # the same restore by another storagectl (--baseline), in the same rounds
                ours = OURS[BEFORE.index(tool)]
                sample, doc = self.ours(cfg, "backup", "restore", latest[ours], "--to-path", str(target), *key_args[ours],
                                        exe=self.args.baseline)
                self.s(pool, "restore", tool).add(sample, service_seconds(doc))
            elif tool in OURS:
                sample, doc = self.ours(cfg, "backup", "restore", latest[tool], "--to-path", str(target), *key_args[tool])
                self.s(pool, "restore", tool).add(sample, service_seconds(doc))
                if r == made_in:
                    self.notes[f"{pool} restore {tool} identical"] = subprocess.run(["cmp", "-s", str(target), path]).returncode == 0
            elif tool == "restic":
                self.s(pool, "restore", tool).add(timed([self.restic, "restore", "latest", "--target", str(target)], env=renv,
                                                        swift_marker=self.swift_dir))
            else:
                self.s(pool, "restore", tool).add(timed([str(SWIFT_CLI), "download", f"bench-plain-{pool}", f"vol-{made_in}", "-o", str(target)],
                                                        env=self.sw_env, swift_marker=self.swift_dir))
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()


def start_api(stack: ExitStack, cfg: Path, work: Path, storagectl: str) -> tuple[str, Path, int]:
    """`storagectl serve` on the bench's configuration, an operator token in a 0600 file; stopped at the end."""
    import storage

    with storage.open(cfg) as st:
        _, token = st.tokens.create("operator", name="backup-bench")
    token_file = work / "api.token"
    token_file.touch(mode=0o600)
    token_file.write_text(token)
    server, url = start_serve(storagectl, cfg, work / "api.log")
    stack.callback(lambda: (server.terminate(), server.wait(30)))
    return url, token_file, server.pid


def setup_pool(stack: ExitStack, kind: str, work: Path, size: int) -> Path:
    """The directory of a file pool: on the host's ext4, or on an xfs (reflink) image on a loop device."""
    if kind == "ext4":
        fs = run(["stat", "-f", "-c", "%T", str(work)]).stdout.strip()
        if fs not in ("ext2/ext3", "ext4"):
            raise SystemExit(f"{work} is on {fs}, not ext4; pass --pools xfs or run where /var/tmp is ext4")
        return work / "ext4pool"
    img = work / "xfs.img"
    with open(img, "wb") as f:
        f.truncate(size * 4 + 2 * 1024 * MIB)
    run(["mkfs.xfs", "-q", "-m", "reflink=1", str(img)])
    dev = run(["losetup", "--find", "--show", str(img)]).stdout.strip()
    stack.callback(subprocess.run, ["losetup", "--detach", dev], check=False)
    mnt = work / "xfs"
    mnt.mkdir()
    run(["mount", "-t", "xfs", dev, str(mnt)])
    stack.callback(subprocess.run, ["umount", str(mnt)], check=False)
    return mnt / "pool"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1G")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pools", default="ext4,xfs")
    ap.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    ap.add_argument("--baseline", help="another storagectl (e.g. /work/main/.venv/bin/storagectl) whose backups of the same "
                    "volume (repositories of its own) and restores of the same backups are timed in the same rounds "
                    "(its rows say baseline)")
    ap.add_argument("--cases", default="full,incremental,restore", help="which rows to time (restore alone: backups made once, untimed)")
    ap.add_argument("--storagectl", default=str(STORAGECTL), help="the storagectl to measure (e.g. another checkout's, for before/after)")
    ap.add_argument("--api", action="store_true", help="also time the same full and incremental backups (plain repository) asked of "
                    "a running `storagectl serve` by scripts/bench/api_backup.py: no start-up, the server's CPU counted")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.pop(NO_BYTECODE, None)  # every command caches bytecode, as in a user's install
    compile_tree(ROOT / "storage")
    from storage.units import parse_size

    size = parse_size(args.size)
    pools = [p for p in args.pools.split(",") if p]
    restic = ensure_restic()
    meta: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(),
                            "load_before": [round(x, 2) for x in os.getloadavg()], "size_mib": size // MIB, "rounds": args.rounds,
                            "restic": run([restic, "version"]).stdout.split(" compiled")[0].strip()}
    with ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="backup-bench-", dir="/var/tmp"))
        stack.callback(shutil.rmtree, work, True)
        devices = Path(tempfile.mkdtemp(prefix="bench-swift-", dir="/dev/shm"))
        stack.callback(shutil.rmtree, devices, True)
        aio = ROOT / "scripts" / "swift-aio.sh"
        run([str(aio), "install"])
        swift_dir = work / "swift"
        state = json.loads(run([str(aio), "start", "--dir", str(swift_dir), "--devices", str(devices), "--json"]).stdout)
        stack.callback(subprocess.run, [str(aio), "stop", "--dir", str(swift_dir)], check=False)
        sw_env = {"ST_AUTH": state["auth_url"], "ST_USER": f"{state['account']}:{state['user']}", "ST_KEY": state["key"]}
        pool_dirs = {kind: setup_pool(stack, kind, work, size) for kind in pools}
        data_dir = work / "data"
        data_dir.mkdir()
        cfg = work / "storage.toml"
        cfg.write_text(
            f'data_dir = "{data_dir}"\ndefault_pool = "{pools[0]}"\n'
            + "".join(f'[pools.{k}]\ndriver = "file"\npath = "{d}"\n' for k, d in pool_dirs.items())
            + f'[object_stores.swift]\ntype = "swift"\nauth_url = "{state["auth_url"]}"\n'
            f'user = "{sw_env["ST_USER"]}"\nkey = "{state["key"]}"\n'
        )
        key = work / "bench.key"
        run([str(STORAGECTL), "-c", str(cfg), "backup", "key", "create", str(key)])
        bench = Bench(args, size, work, sw_env, str(swift_dir), restic)
        if args.api:
            bench.api = start_api(stack, cfg, work, args.storagectl)
        for kind in pools:
            run([str(STORAGECTL), "-c", str(cfg), "volume", "create", f"vol-{kind}", str(size), "--pool", kind])
            path = volume_path(cfg, f"vol-{kind}")
            fill_random(path, 0, size, seed=1)
            for r in range(args.rounds):
                bench.round(kind, cfg, f"vol-{kind}", path, key, r)
                print(f"{kind}: round {r + 1}/{args.rounds} done, load {os.getloadavg()[0]:.2f}", flush=True)
            if bench.timing("incremental"):
                bench.where_the_time_goes(kind, cfg, f"vol-{kind}", path)
    meta["load_after"] = [round(x, 2) for x in os.getloadavg()]
    report(bench, meta, pools, size, write=not args.no_write)


def volume_path(cfg: Path, name: str) -> str:
    """The file behind a file-pool volume (the bench writes its data there, as a guest would)."""
    import storage

    with storage.open(cfg) as st:
        vol = st.volumes.get(name)
        with st.host.volume_backend(vol.pool).open_volume(vol.id) as path:
            return str(path)


def report(bench: Bench, meta: dict[str, Any], pools: list[str], size: int, *, write: bool) -> None:
    gib = size
    rows = []
    for pool in pools:
        for who in ("storagectl", "baseline"):
            floor = bench.series.get((pool, "start-up floor", who))
            if floor:
                rows.append([pool, "`storagectl backup list` (start-up floor)", "" if who == "storagectl" else "(baseline)",
                             floor.spread(), f"{statistics.median(x.cpu for x in floor.samples):.2f} s", "", "", "", "", "", ""])
        for op in ("full", "incremental", "restore"):
            if not bench.timing(op):
                continue
            restic = bench.series.get((pool, op, "restic"))
            swift = bench.series.get((pool, op, "swift"))
            for tool in (*OURS, *BEFORE, *API):
                if (pool, op, tool) not in bench.series:
                    continue
                ours = bench.series[(pool, op, tool)]
                ratio = f"{restic.wall / ours.wall:.2f}x restic" if restic else ""
                if swift:
                    ratio += f"; {swift.wall / ours.wall * 100:.0f}% of swift"
                rows.append([
                    pool, op, tool.split()[-1] + (" (baseline)" if tool in BEFORE else " (via the API)" if tool in API else ""), ours.spread(), f"{ours.cpu_per_gib(gib):.1f} + {ours.server_per_gib(gib):.1f}",
                    restic.spread() if restic else "", f"{restic.cpu_per_gib(gib):.1f} + {restic.server_per_gib(gib):.1f}" if restic else "",
                    swift.spread() if swift else "", f"{swift.cpu_per_gib(gib):.1f} + {swift.server_per_gib(gib):.1f}" if swift else "",
                    ratio, f"{ours.own()}, {ours.rss} MiB",
                ])
    start, end = (RESTORE_START, RESTORE_END) if bench.cases == {"restore"} else (START, END)
    lines = [
        start,
        "## Restores vs restic vs plain `swift download` (wall clock of whole commands)" if bench.cases == {"restore"}
        else "## Backup engine vs restic vs plain Swift (wall clock of whole commands)",
        "",
        f"`scripts/bench/backup_bench.py --size {meta['size_mib']}M --rounds {meta['rounds']} --pools {','.join(pools)}"
        f"{' --cases ' + ','.join(sorted(bench.cases)) if bench.cases != {'full', 'incremental', 'restore'} else ''}`, {meta['date']}, {meta['cpus']} cores, "
        f"load average {meta['load_before']} before and {meta['load_after']} after, {meta['restic']}, Swift all-in-one on 127.0.0.1 "
        f"(devices on tmpfs), {meta['size_mib']} MiB of random data in a file-pool volume; pools: `ext4` = the host's ext4 "
        "(no reflink: every backup reads the whole volume), `xfs` = xfs with reflink on a loop device (changed ranges). "
        "Times: wall clock of the whole command, median [min-max] over interleaved rounds. CPU: user+sys s/GiB of the "
        "command + of the Swift servers meanwhile (the start-up floor row: CPU seconds of the command). The volume is detached "
        "(an attached one is read through a snapshot, a full copy on ext4). Restores go to a new file on the host's ext4.",
        "",
        "| pool | case | repo | storagectl | CPU | restic | CPU | swift CLI | CPU | ratio | beside: service's own time, peak RSS |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *[f"| {' | '.join(row)} |" for row in rows],
        "",
        "```json",
        json.dumps({**meta, "notes": bench.notes}, indent=1, default=str),
        "```",
        end,
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if write:
        doc = ROOT / "docs" / "benchmarks.md"
        old = doc.read_text() if doc.exists() else "# Benchmarks\n\n"
        if start in old and end in old:
            new = old.split(start)[0] + text + "\n" + old.split(end, 1)[1].lstrip("\n")
        else:
            new = old.rstrip("\n") + "\n\n" + text
        doc.write_text(new)


if __name__ == "__main__":
    main()
