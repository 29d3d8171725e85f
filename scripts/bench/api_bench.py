#!/usr/bin/env python3
"""Benchmark of the admin API on a real server: requests per second and p50/p99 latency.

Scenarios (each at --clients concurrent clients, default 1 and 50, closed loop):
  list      GET /volumes with 1,000 volumes in the catalog
  list_etag the same, each client sending If-None-Match with the ETag it last received (a poller)
  healthz   GET /healthz: the floor of this server and client (no auth, no catalog)
  raw_list, raw_list_etag, raw_healthz: the same through a minimal asyncio client
            (scripts/bench/raw_http.py) that costs the shared CPU far less than httpx
  create    POST /volumes then DELETE /volumes/{name} (one create+delete pair is one request each)

    .venv/bin/python scripts/bench/api_bench.py [--volumes 1000] [--seconds 10] [--workers 1]
        [--scenarios list,list_etag,create_delete] [--json]

The server is `storagectl serve` on 127.0.0.1 with a throw-away data dir; the clients are
asyncio + httpx in this process (on the same machine, so they share its CPU). Each row also
gives the CPU per request of the server (its whole process group, every worker) and of this
client process, which says where a difference in throughput goes on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import storage  # noqa: E402
from scripts.bench.raw_http import raw_closed_loop  # noqa: E402

STORAGECTL = str(Path(sys.executable).parent / "storagectl")


def group_cpu_seconds(pgid: int) -> float:
    """user+sys CPU so far of every live process in a process group (the server and its workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields from the state on: state ppid pgrp ... utime(11) stime(12)
            total += int(fields[11]) + int(fields[12])
    return total / tick


def with_cpu(pgid: int, run):  # type: ignore[no-untyped-def]
    """run() with the server's and this client's CPU per request added (ms): where the time goes."""
    import resource

    server0, client0 = group_cpu_seconds(pgid), resource.getrusage(resource.RUSAGE_SELF)
    result = run()
    server1, client1 = group_cpu_seconds(pgid), resource.getrusage(resource.RUSAGE_SELF)
    n = max(result["requests"], 1)
    client = (client1.ru_utime + client1.ru_stime) - (client0.ru_utime + client0.ru_stime)
    result["server_cpu_ms_per_request"] = round((server1 - server0) * 1000 / n, 3)
    result["client_cpu_ms_per_request"] = round(client * 1000 / n, 3)
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1))))
    return ordered[k]


async def closed_loop(url: str, headers: dict, clients: int, seconds: float, request) -> dict:  # type: ignore[no-untyped-def]
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits) as client:

        async def worker(idx: int) -> None:
            nonlocal errors
            n = 0
            while time.perf_counter() < deadline:
                try:
                    for ok, seconds_taken in await request(client, idx, n):
                        latencies.append(seconds_taken)
                        errors += 0 if ok else 1
                except httpx.TransportError as exc:
                    errors += 1
                    print(f"transport error: {exc!r}", file=sys.stderr)
                n += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(clients)))
        elapsed = time.perf_counter() - started
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": errors,
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2) if latencies else None,
        "p99_ms": round(percentile(latencies, 99) * 1000, 2) if latencies else None,
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2) if latencies else None,
    }


async def raw_scenario(port: int, headers: dict, clients: int, seconds: float, path: str, conditional: bool) -> dict:
    started = time.perf_counter()
    latencies, errors = await raw_closed_loop(port, headers, clients, seconds, path, conditional)
    elapsed = time.perf_counter() - started
    return {
        "clients": clients, "requests": len(latencies), "errors": errors, "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2), "p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2),
    }


STATUS_COUNTS: dict[int, int] = {}


async def timed(coro) -> tuple[bool, float]:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    resp = await coro
    STATUS_COUNTS[resp.status_code] = STATUS_COUNTS.get(resp.status_code, 0) + 1
    if resp.status_code >= 400 and len(ERROR_SAMPLES) < 5:
        ERROR_SAMPLES.append(f"{resp.request.method} {resp.status_code} {resp.text[:200]}")
    return resp.status_code < 400, time.perf_counter() - t


ERROR_SAMPLES: list[str] = []


def list_request(expected: int):  # type: ignore[no-untyped-def]
    async def request(client: httpx.AsyncClient, idx: int, n: int) -> list[tuple[bool, float]]:
        t = time.perf_counter()
        resp = await client.get("/volumes")
        ok = resp.status_code == 200
        if n == 0 and ok:  # check the size once per client; parsing every body would load the client side
            ok = len(resp.json()) >= expected
        return [(ok, time.perf_counter() - t)]

    return request


def conditional_list_request(expected: int):  # type: ignore[no-untyped-def]
    etags: dict[int, str] = {}

    async def request(client: httpx.AsyncClient, idx: int, n: int) -> list[tuple[bool, float]]:
        t = time.perf_counter()
        headers = {"If-None-Match": etags[idx]} if idx in etags else {}
        resp = await client.get("/volumes", headers=headers)
        ok = resp.status_code in (200, 304)
        if resp.status_code == 200:
            etags[idx] = resp.headers.get("etag", "")
            if n == 0:
                ok = len(resp.json()) >= expected
        return [(ok, time.perf_counter() - t)]

    return request


def healthz_request():  # type: ignore[no-untyped-def]
    async def request(client: httpx.AsyncClient, idx: int, n: int) -> list[tuple[bool, float]]:
        t = time.perf_counter()
        resp = await client.get("/healthz")
        return [(resp.status_code == 200, time.perf_counter() - t)]

    return request


def create_delete_request(run: str):  # type: ignore[no-untyped-def]
    async def request(client: httpx.AsyncClient, idx: int, n: int) -> list[tuple[bool, float]]:
        name = f"bench-{run}-{idx}-{n}"
        created = await timed(client.post("/volumes", json={"name": name, "size": "1M"}))
        deleted = await timed(client.delete(f"/volumes/{name}"))
        return [created, deleted]

    return request


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--volumes", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0, help="per scenario")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--clients", default="1,50")
    parser.add_argument("--scenarios", default="list,list_etag,create_delete")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="api-bench-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        config = data / "storage.toml"
        config.write_text(f'data_dir = "{data}"\n')
        with storage.open(config) as st:
            _, token = st.tokens.create("operator", name="bench")
            t = time.perf_counter()
            for i in range(args.volumes):
                st.volumes.create(f"seed-{i:05d}", "1M")
            seed_seconds = time.perf_counter() - t
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("STORAGE_")}
        server = subprocess.Popen(
            [STORAGECTL, "-c", str(config), "serve", "--port", str(port), "--workers", str(args.workers), "--log-level", "warning"],
            stdout=subprocess.DEVNULL, stderr=(data / "server.log").open("wb"), env=env, start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            headers = {"Authorization": f"Bearer {token}"}
            results: dict = {"volumes": args.volumes, "server_workers": args.workers, "cpus": os.cpu_count(),
                             "seed_seconds": round(seed_seconds, 1), "scenarios": {}}
            for clients in (int(c) for c in args.clients.split(",")):
                asyncio.run(closed_loop(url, headers, clients, 1.0, list_request(args.volumes)))  # warm-up
                scenarios = {
                    "list": lambda: list_request(args.volumes),
                    "list_etag": lambda: conditional_list_request(args.volumes),
                    "create_delete": lambda: create_delete_request(f"c{clients}"),
                    "healthz": healthz_request,
                }
                raw = {"raw_list": ("/volumes", False), "raw_list_etag": ("/volumes", True), "raw_healthz": ("/healthz", False)}
                for name in args.scenarios.split(","):
                    if name in raw:
                        path, conditional = raw[name]
                        results["scenarios"][f"{name}_{clients}"] = with_cpu(server.pid, lambda: asyncio.run(
                            raw_scenario(port, headers, clients, args.seconds, path, conditional)))
                        continue
                    results["scenarios"][f"{name}_{clients}"] = with_cpu(server.pid, lambda: asyncio.run(
                        closed_loop(url, headers, clients, args.seconds, scenarios[name]())))
                print(json.dumps({k: v for k, v in results["scenarios"].items() if k.endswith(f"_{clients}")}), file=sys.stderr)
                if server.poll() is not None:
                    raise SystemExit(f"the server exited with {server.returncode}")
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(30)
            log = (data / "server.log").read_text(errors="replace")
            if "Traceback" in log or "ERROR" in log:
                print(log[-3000:], file=sys.stderr)
    results["create_delete_statuses"] = {str(k): v for k, v in sorted(STATUS_COUNTS.items())}
    results["error_samples"] = ERROR_SAMPLES
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"{args.volumes} volumes, {args.workers} server worker(s), {os.cpu_count()} CPUs")
        print(f"{'scenario':<20}{'clients':>8}{'requests':>10}{'errors':>8}{'rps':>9}{'p50 ms':>9}{'p99 ms':>9}"
              f"{'server CPU ms/req':>19}{'client CPU ms/req':>19}")
        for name, r in results["scenarios"].items():
            print(f"{name:<20}{r['clients']:>8}{r['requests']:>10}{r['errors']:>8}{r['rps']:>9}{r['p50_ms']:>9}{r['p99_ms']:>9}"
                  f"{r['server_cpu_ms_per_request']:>19}{r['client_cpu_ms_per_request']:>19}")
        print("create/delete statuses:", results["create_delete_statuses"])
        for sample in ERROR_SAMPLES:
            print("  error:", sample)
    return 0


if __name__ == "__main__":
    sys.exit(main())
