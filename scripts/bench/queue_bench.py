"""Work-queue benchmark: a no-op task's round trip through procrastinate and an agent.

    .venv/bin/python scripts/bench/queue_bench.py [--rounds 200] [--calls 100]

Starts a private PostgreSQL (scripts/postgres.sh, in /dev/shm, fsync off), one `storagectl agent`
([cluster] queue = "procrastinate") and one `storagectl serve` on 127.0.0.1, then measures:
- **noop round trip**: ``st.jobs.submit("noop")`` (the catalog row + the procrastinate defer, what
  an API route does) -> the agent's worker picks it up (LISTEN/NOTIFY) and runs it -> the job is
  seen ``succeeded`` by ``GET /jobs/{id}`` through the API (polled every 2 ms); p50/p99/mean;
- **remote host call**: ``st.host.pool_capabilities("default")`` through ``RemoteHost`` (what each
  device step of a volume create/extend/delete costs in a cluster); p50/p99;
- for scale, the same noop in process on a SQLite catalog (the single-host default);
- the wall clock of the whole run. Prints the load average first; figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

import storage

ROOT = Path(__file__).resolve().parents[2]
STORAGECTL = str(Path(sys.executable).parent / "storagectl")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def summary(name: str, seconds: list[float]) -> dict:
    ms = [s * 1000 for s in seconds]
    out = {"name": name, "n": len(ms), "p50_ms": round(pct(ms, 50), 2), "p99_ms": round(pct(ms, 99), 2),
           "mean_ms": round(statistics.mean(ms), 2), "max_ms": round(max(ms), 2)}  # fmt: skip
    print(f"{name:<34} n={out['n']:<4} p50 {out['p50_ms']:>8.2f} ms   p99 {out['p99_ms']:>8.2f} ms   "
          f"mean {out['mean_ms']:>8.2f} ms   max {out['max_ms']:>8.2f} ms")  # fmt: skip
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what: str, check, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"queue_bench: {what} not seen within {timeout}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args()
    started = time.monotonic()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; cores: {os.cpu_count()}")
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    base = Path(tempfile.mkdtemp(prefix="queue-bench-", dir=shm))
    pg_dir = Path(tempfile.mkdtemp(prefix="queue-bench-pg-", dir=shm))  # postgres.sh hands it to the postgres user
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORAGE_")}
    procs: list[subprocess.Popen] = []
    try:
        out = subprocess.run([str(ROOT / "scripts/postgres.sh"), "start", "--dir", str(pg_dir), "--fast", "--json"],
                             check=False, capture_output=True, text=True, timeout=120)  # fmt: skip
        if out.returncode != 0:
            raise SystemExit(f"queue_bench: PostgreSQL did not start: {out.stderr[-1000:]}")
        port = json.loads(out.stdout)["port"]
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench")
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/bench"
        config = base / "storage.toml"
        config.write_text(
            f'host_name = "bench-host"\ndata_dir = "{base / "data"}"\n[catalog]\nurl = "{url}"\n'
            '[cluster]\nheartbeat_interval = 1\nservice_down_time = 10\nqueue = "procrastinate"\n'
        )
        with storage.open(config) as st:  # migrates (procrastinate's schema too)
            token = st.tokens.create("admin", name="bench")[1]
        procs.append(subprocess.Popen([STORAGECTL, "-c", str(config), "agent"], env=env, start_new_session=True,
                                      stdout=(base / "agent.log").open("wb"), stderr=subprocess.STDOUT))  # fmt: skip
        api_port = free_port()
        procs.append(subprocess.Popen([STORAGECTL, "-c", str(config), "serve", "--port", str(api_port), "--log-level", "warning"],
                                      env=env, start_new_session=True, stdout=(base / "api.log").open("wb"),
                                      stderr=subprocess.STDOUT))  # fmt: skip
        api = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        wait_until("the API", lambda: api.get("/healthz").status_code == 200)
        wait_until("the agent up", lambda: api.get("/hosts/bench-host").json().get("state") == "up")
        results = []
        with storage.open(config) as st:
            def noop_round_trip() -> float:
                t0 = time.perf_counter()
                job = st.jobs.submit("noop", params={})
                while api.get(f"/jobs/{job.id}").json()["state"] in ("queued", "running"):
                    time.sleep(0.002)
                return time.perf_counter() - t0

            for _ in range(5):  # warm-up: pools, the worker's first fetch
                noop_round_trip()
            results.append(summary("noop round trip (queue + agent + API)", [noop_round_trip() for _ in range(args.rounds)]))

            def host_call() -> float:
                t0 = time.perf_counter()
                st.host.pool_capabilities("default")
                return time.perf_counter() - t0

            host_call()
            results.append(summary("remote host call (RemoteHost)", [host_call() for _ in range(args.calls)]))
            assert {j.queue for j in st.jobs.list(kind="noop", limit=10)} == {"shared"}
        local_cfg = base / "local.toml"
        local_cfg.write_text(f'data_dir = "{base / "local"}"\n')
        with storage.open(local_cfg) as st:
            def local_round_trip() -> float:
                t0 = time.perf_counter()
                job = st.jobs.submit("noop", params={})
                st.jobs.wait(job.id, 30)
                return time.perf_counter() - t0

            local_round_trip()
            results.append(summary("noop in process (SQLite, no queue)", [local_round_trip() for _ in range(args.rounds)]))
        print(f"wall clock: {time.monotonic() - started:.1f} s")
        print(json.dumps({"results": results, "wall_clock_s": round(time.monotonic() - started, 1)}))
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
        subprocess.run([str(ROOT / "scripts/postgres.sh"), "stop", "--dir", str(pg_dir), "--purge"], check=False,
                       capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(pg_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
