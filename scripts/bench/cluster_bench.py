"""Cluster benchmark: volume create+delete throughput and latency through ONE API replica vs TWO.

    .venv/bin/python scripts/bench/cluster_bench.py [--quick] [--pairs 150] [--clients 8]

Starts, all on 127.0.0.1: a private PostgreSQL (scripts/postgres.sh, in /dev/shm, fsync off),
three `storagectl agent`s with distinct host names (h1, h2, h3) and pool directories
(``[cluster] queue = "procrastinate"``), two `storagectl serve` replicas (host "api", no pool any
host reports: every device call goes to an agent), and two private HAProxies
(scripts/haproxy/haproxy.sh, the project's configuration): ``lb1`` with replica r1 only, ``lb2``
with r1 and r2. Then, in the same run, the same load through lb1, then lb2: ``--clients`` threads,
each creating an 8 MiB volume (POST /volumes, the scheduler places it on one of the 3 hosts) and
deleting it (DELETE /volumes/{name}), until ``--pairs`` pairs are done per side, in the order
one, two, two, one (half the pairs each time, so a change of the machine's load hits both). Prints the load average,
a side-by-side table (pairs/s, create and delete p50/p99, errors, hosts used) and the wall clock;
``--quick`` (40 pairs, 6 clients) stays under 3 minutes. Figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

import storage

ROOT = Path(__file__).resolve().parents[2]
STORAGECTL = str(Path(sys.executable).parent / "storagectl")
HAPROXY = str(ROOT / "scripts/haproxy/haproxy.sh")
HOSTS = ("h1", "h2", "h3")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what: str, check, timeout: float = 90.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"cluster_bench: {what} not seen within {timeout}s")


def config(base: Path, name: str, url: str) -> Path:
    etc = base / f"etc-{name}"
    etc.mkdir(parents=True)
    path = etc / "storage.toml"
    path.write_text(
        f'host_name = "{name}"\ndata_dir = "{base / f"data-{name}"}"\n[catalog]\nurl = "{url}"\n'
        f'[pools.default]\ndriver = "file"\npath = "{base / f"pool-{name}"}"\n'
        '[cluster]\nheartbeat_interval = 1\nservice_down_time = 10\nqueue = "procrastinate"\nremote_call_timeout = 120\n'
    )
    return path


class Figures:
    def __init__(self, label: str) -> None:
        self.label = label
        self.creates: list[float] = []
        self.deletes: list[float] = []
        self.errors: Counter[str] = Counter()
        self.hosts: Counter[str] = Counter()
        self.wall = 0.0

    def summary(self) -> dict:
        done = len(self.deletes)
        return {"label": self.label, "pairs": done, "seconds": round(self.wall, 1),
                "pairs_per_s": round(done / self.wall, 2) if self.wall else 0.0,
                "create_p50_ms": round(pct(self.creates, 50) * 1000), "create_p99_ms": round(pct(self.creates, 99) * 1000),
                "delete_p50_ms": round(pct(self.deletes, 50) * 1000), "delete_p99_ms": round(pct(self.deletes, 99) * 1000),
                "errors": sum(self.errors.values()), "error_kinds": dict(self.errors),
                "hosts": " ".join(f"{h}:{n}" for h, n in sorted(self.hosts.items()))}  # fmt: skip


def load(base_url: str, token: str, label: str, pairs: int, clients: int, fig: Figures) -> None:
    """``pairs`` create+delete pairs by ``clients`` threads through ``base_url``, added to ``fig``."""
    counter = itertools.count()
    lock = threading.Lock()
    creates, deletes, errors, hosts = fig.creates, fig.deletes, fig.errors, fig.hosts

    def worker() -> None:
        with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=300) as c:
            while (i := next(counter)) < pairs:
                name = f"{label}-{i}"
                t0 = time.perf_counter()
                r = c.post("/volumes", json={"name": name, "size": "8M"}, headers={"Idempotency-Key": f"bench-{name}"})
                t1 = time.perf_counter()
                if r.status_code != 201:
                    with lock:
                        errors[f"create {r.status_code}"] += 1
                    continue
                r2 = c.delete(f"/volumes/{name}")
                t2 = time.perf_counter()
                with lock:
                    creates.append(t1 - t0)
                    hosts[r.json().get("host") or "?"] += 1
                    if r2.status_code == 204:
                        deletes.append(t2 - t1)
                    else:
                        errors[f"delete {r2.status_code}"] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    fig.wall += time.perf_counter() - started


def table(rows: list[dict]) -> None:
    keys = [("pairs", "pairs done"), ("seconds", "seconds"), ("pairs_per_s", "pairs/s"),
            ("create_p50_ms", "create p50 ms"), ("create_p99_ms", "create p99 ms"),
            ("delete_p50_ms", "delete p50 ms"), ("delete_p99_ms", "delete p99 ms"), ("errors", "errors"),
            ("hosts", "volumes per host")]  # fmt: skip
    print(f"{'':<18}" + "".join(f"{r['label']:>28}" for r in rows))
    for key, title in keys:
        print(f"{title:<18}" + "".join(f"{str(r[key]):>28}" for r in rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 pairs, 6 clients (under 3 minutes)")
    parser.add_argument("--pairs", type=int, default=150)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    pairs, clients = (40, 6) if args.quick else (args.pairs, args.clients)
    started = time.monotonic()
    load_before = os.getloadavg()
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average before: "
          f"{' '.join(f'{x:.2f}' for x in load_before)}; cores: {os.cpu_count()}; {pairs} pairs, {clients} clients")  # fmt: skip
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    base = Path(tempfile.mkdtemp(prefix="cluster-bench-", dir=shm))
    pg_dir = Path(tempfile.mkdtemp(prefix="cluster-bench-pg-", dir=shm))  # postgres.sh hands it to the postgres user
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORAGE_")}
    procs: list[subprocess.Popen] = []
    lbs = [base / "lb1", base / "lb2"]

    def spawn(name: str, *argv: str) -> None:
        procs.append(subprocess.Popen([STORAGECTL, *argv], env=env, start_new_session=True,
                                      stdout=(base / f"{name}.log").open("wb"), stderr=subprocess.STDOUT))  # fmt: skip

    try:
        out = subprocess.run([str(ROOT / "scripts/postgres.sh"), "start", "--dir", str(pg_dir), "--fast", "--json"],
                             check=False, capture_output=True, text=True, timeout=120)  # fmt: skip
        if out.returncode != 0:
            raise SystemExit(f"cluster_bench: PostgreSQL did not start: {out.stderr[-1000:]}")
        port = json.loads(out.stdout)["port"]
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench")
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/bench"
        api_cfg = config(base, "api", url)
        with storage.open(api_cfg) as st:  # migrates (procrastinate's schema too)
            token = st.tokens.create("admin", name="bench")[1]
        for h in HOSTS:
            spawn(f"agent-{h}", "-c", str(config(base, h, url)), "agent")
        replicas = {"r1": free_port(), "r2": free_port()}
        for r, p in replicas.items():
            spawn(f"api-{r}", "-c", str(api_cfg), "serve", "--port", str(p), "--log-level", "warning")
        lb_ports = []
        for lb, servers in zip(lbs, (["r1"], ["r1", "r2"])):
            lb_ports.append(free_port())
            argv = [HAPROXY, "start", "--dir", str(lb), "--port", str(lb_ports[-1])]
            for s in servers:
                argv += ["--server", f"{s}=127.0.0.1:{replicas[s]}"]
            subprocess.run(argv, check=True, capture_output=True, timeout=60)
        for p in replicas.values():
            wait_until(f"replica :{p}", lambda p=p: httpx.get(f"http://127.0.0.1:{p}/healthz").status_code == 200)
        for lb, servers in zip(lbs, (["r1"], ["r1", "r2"])):
            stat = lambda lb=lb: subprocess.run([HAPROXY, "stat", "--dir", str(lb)], capture_output=True, text=True).stdout  # noqa: E731
            wait_until(f"{lb.name} sees its replicas UP", lambda stat=stat, servers=servers: all(f"{s},UP" in stat() for s in servers))
        auth = {"Authorization": f"Bearer {token}"}
        wait_until("3 hosts up", lambda: sorted(h["name"] for h in httpx.get(
            f"http://127.0.0.1:{lb_ports[0]}/hosts", headers=auth).json() if h["state"] == "up") == list(HOSTS))  # fmt: skip
        setup_s = time.monotonic() - started
        print(f"set up (PostgreSQL, 3 agents, 2 replicas, 2 HAProxies): {setup_s:.1f} s")
        load(f"http://127.0.0.1:{lb_ports[1]}", token, "warmup", clients, clients, Figures("warmup"))  # pools, queues
        # A B B A: each side gets two halves, so a load change during the run (other work on the
        # machine) falls on both sides alike
        figs = {"one-replica": Figures("one-replica"), "two-replicas": Figures("two-replicas")}
        lb_of = {"one-replica": lb_ports[0], "two-replicas": lb_ports[1]}
        for n, side in enumerate(("one-replica", "two-replicas", "two-replicas", "one-replica")):
            half = pairs // 2 if n < 2 else pairs - pairs // 2
            load(f"http://127.0.0.1:{lb_of[side]}", token, f"{side}-{n}", half, clients, figs[side])
        rows = [f.summary() for f in figs.values()]
        table(rows)
        load_after = os.getloadavg()
        wall = time.monotonic() - started
        print(f"load average after: {' '.join(f'{x:.2f}' for x in load_after)}; wall clock: {wall:.1f} s")
        print(json.dumps({"results": rows, "setup_s": round(setup_s, 1), "wall_clock_s": round(wall, 1),
                          "load_before": load_before, "load_after": load_after}))  # fmt: skip
        return 0
    finally:
        for lb in lbs:
            subprocess.run([HAPROXY, "stop", "--dir", str(lb)], check=False, capture_output=True, timeout=30)
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
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
