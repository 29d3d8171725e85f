"""A three-node OpenStack Swift ring in network namespaces, for failure drills (issue 13).

Run with the Swift venv's Python (``scripts/swift-ring.sh`` does); needs root (``ip netns``)::

    ring.py start [--dir DIR] [--devices ROOT] [--port PROXY_PORT] [--json]
    ring.py stop | status [--json] | replicate [--json]          [--dir DIR]
    ring.py kill-node N | start-node N                          [--dir DIR]

Each storage node i (1..3) is a network namespace on a bridge (``netns.py``: one /28 of
198.18.0.0/24) running its account (6202), container (6201) and object (6200) servers and an
rsync daemon (873, the replicators' transport) on its own address, with its own devices dir
ROOT/n<i> holding one device d<i>. Rings: part power 8, replicas = 3, one device per node, each
node its own zone, so every object has a copy on every node. memcached and the proxy (tempauth,
users as in ``aio.py``) run on the host at 127.0.0.1. ``kill-node`` SIGKILLs one node's servers
and rsync (the namespace stays: connections to it are refused at once); ``start-node`` starts
them again; ``replicate`` runs each node's object, container and account replicators once, all nodes in
parallel (not the object updater: the container replicator already brings every container
replica the rows it missed). ``stop`` kills everything (also any process left in
the namespaces) and deletes the namespaces, veths and bridge.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aio  # noqa: E402
import netns  # noqa: E402

PORTS = {"object": 6200, "container": 6201, "account": 6202}
RSYNC_PORT = 873
NODES = 3
DEFAULT_DIR = Path(__file__).resolve().parents[2] / ".cache" / "swift-ring"
# The proxy skips a node that failed more than error_suppression_limit times for
# error_suppression_interval seconds (default 60): a restarted node is used again only then.
# 2 s here so drills can fail a second node soon after the first came back; start-node waits it out.
ERROR_SUPPRESSION_SECONDS = 2
PROXY_TUNING = f"error_suppression_interval = {ERROR_SUPPRESSION_SECONDS}\nerror_suppression_limit = 10\n"
REPLICATION = ("object-replicator", "container-replicator", "account-replicator")


def node_key(i: int) -> str:
    return f"n{i}"


def write_configs(etc: Path, run: Path, plan: netns.Plan, devices: Path) -> None:
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "swift.conf").write_text(
        "[swift-hash]\nswift_hash_path_suffix = ring-suffix\nswift_hash_path_prefix = ring-prefix\n\n"
        "[storage-policy:0]\nname = Policy-0\ndefault = yes\n\n[swift-constraints]\n"
    )
    for node in plan.nodes:
        conf_dir = etc / node_key(node.index)
        conf_dir.mkdir(exist_ok=True)
        node_run = run / node_key(node.index)
        node_run.mkdir(parents=True, exist_ok=True)
        devdir = devices / node_key(node.index)
        (devdir / f"d{node.index}").mkdir(parents=True, exist_ok=True)
        for kind, port in PORTS.items():
            daemons = {"object": ("object-replicator", "object-updater", "object-auditor")}.get(kind, (f"{kind}-replicator",))
            (conf_dir / f"{kind}-server.conf").write_text(
                f"[DEFAULT]\nbind_ip = {node.ip}\nbind_port = {port}\nswift_dir = {etc}\ndevices = {devdir}\n"
                f"mount_check = false\nworkers = 0\nlog_level = INFO\nlog_name = n{node.index}-{kind}\n"
                f"recon_cache_path = {node_run}\nuser = {pwd.getpwuid(os.geteuid()).pw_name}\n\n"
                f"[pipeline:main]\npipeline = healthcheck {kind}-server\n\n"
                f"[app:{kind}-server]\nuse = egg:swift#{kind}\n\n"
                "[filter:healthcheck]\nuse = egg:swift#healthcheck\n\n"
                + "".join(f"[{d}]\nrsync_timeout = 60\nconcurrency = 1\n\n" for d in daemons)
            )
        modules = "".join(
            f"[{kind}]\npath = {devdir}\nread only = false\nlock file = {node_run}/rsync-{kind}.lock\n"
            "max connections = 4\n\n"
            for kind in PORTS
        )
        (conf_dir / "rsyncd.conf").write_text(
            f"uid = root\ngid = root\nuse chroot = no\naddress = {node.ip}\nport = {RSYNC_PORT}\n"
            f"pid file = {node_run}/rsyncd.pid\nlog file = {run.parent}/logs/n{node.index}-rsyncd.log\n\n" + modules
        )


def build_rings(etc: Path, plan: netns.Plan) -> None:
    from swift.common.ring import RingBuilder

    for kind, port in PORTS.items():
        builder = RingBuilder(8, NODES, 1)
        for node in plan.nodes:
            builder.add_dev({
                "id": node.index - 1, "region": 1, "zone": node.index, "ip": node.ip, "port": port,
                "replication_ip": node.ip, "replication_port": port, "device": f"d{node.index}",
                "weight": 100.0, "meta": "",
            })
        builder.rebalance()
        builder.save(str(etc / f"{kind}.builder"))
        builder.get_ring().save(str(etc / f"{kind}.ring.gz"))


def _node(state: dict, i: int) -> netns.Node:
    if str(i) not in state["nodes"]:
        raise SystemExit(f"swift-ring: node {i} is not accepted; accepted: 1 to {len(state['nodes'])}")
    return netns.Node(**state["nodes"][str(i)]["node"])


def ours(pid: int, marker: str) -> bool:
    """pid is a live process whose command line holds marker (a path or port of this ring): a pid
    recorded earlier may have been reused by something else since."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, ValueError):
        return False
    return marker in cmdline and aio._pid_alive(pid)


def start_node(base: Path, state: dict, i: int) -> None:
    node, entry = _node(state, i), state["nodes"][str(i)]
    etc = base / "etc" / node_key(i)
    if os.path.exists(f"{base}/run/{node_key(i)}/rsyncd.pid"):
        os.unlink(f"{base}/run/{node_key(i)}/rsyncd.pid")  # a killed rsync leaves it; a new one refuses to start
    for kind in PORTS:
        if not ours(entry["pids"].get(kind, 0), str(etc)):
            argv = [str(aio.BIN / f"swift-{kind}-server"), str(etc / f"{kind}-server.conf"), "--verbose"]
            entry["pids"][kind] = aio.spawn(base, f"n{i}-{kind}", netns.exec_argv(node, argv))
    if not ours(entry["pids"].get("rsync", 0), str(etc)):
        rsync = shutil.which("rsync") or "rsync"
        argv = [rsync, "--daemon", "--no-detach", f"--config={etc / 'rsyncd.conf'}"]
        entry["pids"]["rsync"] = aio.spawn(base, f"n{i}-rsync", netns.exec_argv(node, argv))


def _port_open(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=1):
            return True
    except OSError:
        return False


def node_health(state: dict, i: int) -> dict[str, bool]:
    node = _node(state, i)
    health = {kind: aio.http_ok(f"http://{node.ip}:{port}/healthcheck") for kind, port in PORTS.items()}
    health["rsync"] = _port_open(node.ip, RSYNC_PORT)
    return health


def wait_node(base: Path, state: dict, i: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(node_health(state, i).values()):
            return
        for kind, pid in state["nodes"][str(i)]["pids"].items():
            if not aio._pid_alive(pid):
                raise SystemExit(f"swift-ring: node {i} {kind} exited at start; see {base}/logs/n{i}-{kind}.log")
        time.sleep(0.1)
    raise SystemExit(f"swift-ring: node {i} not healthy after {timeout:.0f}s; see {base}/logs")


def wait_proxy(state: dict, timeout: float = 60.0) -> None:
    """Until the proxy answers its healthcheck and tempauth gives a token."""
    deadline = time.monotonic() + timeout
    auth = {"X-Auth-User": f"test:{state['user']}", "X-Auth-Key": state["key"]}
    while time.monotonic() < deadline:
        if aio.http_ok(state["auth_url"], auth):
            return
        for name, pid in state["pids"].items():
            if not aio._pid_alive(pid):
                raise SystemExit(f"swift-ring: {name} exited at start; see {state['dir']}/logs/{name}.log")
        time.sleep(0.1)
    raise SystemExit(f"swift-ring: proxy not healthy after {timeout:.0f}s; see {state['dir']}/logs/proxy.log")


def kill_node(state: dict, i: int) -> None:
    """SIGKILL node i's servers and rsync at once (no SIGTERM first: a crash, not a shutdown);
    forgets their pids. Only processes of this ring (their command line names its config dir)."""
    entry = state["nodes"][str(_node(state, i).index)]
    marker = str(Path(state["dir"]) / "etc" / node_key(i))
    pids = [pid for pid in entry["pids"].values() if ours(pid, marker)]
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in pids:
        aio.kill_group(pid, timeout=5)  # reap
    entry["pids"] = {}


def count_objects(devdir: Path) -> int:
    """Object replicas (``.data`` files) held on a node's devices."""
    return sum(1 for _ in devdir.glob("*/objects*/*/*/*/*.data"))


def _lock() -> int:
    lock_dir = Path("/run/lock") if Path("/run/lock").is_dir() else Path(tempfile.gettempdir())
    fd = os.open(lock_dir / "swift-ring.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def load_state(base: Path) -> dict:
    return aio.load_state(base, "swift-ring")


save_state = aio.save_state


def cmd_start(args: argparse.Namespace) -> dict:
    if os.geteuid() != 0:
        raise SystemExit("swift-ring: needs root (ip netns, bridges, veths)")
    base = Path(args.dir).absolute()
    if (base / "state.json").exists():
        cmd_stop(args)
    base.mkdir(parents=True, exist_ok=True)
    devices = Path(args.devices).absolute() if args.devices else base / "devices"
    memcached = shutil.which("memcached")
    if memcached is None or shutil.which("rsync") is None:
        raise SystemExit("swift-ring: memcached and rsync are needed (apt install memcached rsync)")
    fd = _lock()
    try:
        plan = netns.plan(netns.pick_slot(*netns.used_on_host(), nodes=NODES), NODES)
        ports = {"proxy": args.port or aio.free_port(), "memcached": aio.free_port()}
        password = aio.USERS["tester"][0]
        state: dict = {
            "dir": str(base), "devices": str(devices), "slot": plan.slot, "bridge": plan.bridge,
            "bridge_ip": plan.bridge_ip, "prefix": plan.prefix, "ports": ports, "pids": {},
            "nodes": {str(n.index): {"node": vars(n), "devices": str(devices / node_key(n.index)), "pids": {}}
                      for n in plan.nodes},
            "auth_url": f"http://{aio.HOST}:{ports['proxy']}/auth/v1.0",
            "storage_url": f"http://{aio.HOST}:{ports['proxy']}/v1/AUTH_test",
            "account": "test", "user": "tester", "key": password,
            "reader_user": "reader", "reader_key": aio.USERS["reader"][0],
        }
        save_state(base, state)  # before anything exists: stop can always clean up
        netns.create(plan)
    finally:
        os.close(fd)
    try:
        etc = base / "etc"
        write_configs(etc, base / "run", plan, devices)
        build_rings(etc, plan)
        user = ["-u", "root"] if os.geteuid() == 0 else []
        state["pids"]["memcached"] = aio.spawn(
            base, "memcached", [memcached, "-l", aio.HOST, "-p", str(ports["memcached"]), "-U", "0", "-m", "64", *user]
        )
        for node in plan.nodes:
            start_node(base, state, node.index)
        (etc / "proxy-server.conf").write_text(
            aio.proxy_conf(etc, aio.HOST, ports["proxy"], ports["memcached"], PROXY_TUNING)
        )
        state["pids"]["proxy"] = aio.spawn(base, "proxy", [str(aio.BIN / "swift-proxy-server"), str(etc / "proxy-server.conf"), "--verbose"])
        save_state(base, state)
        for node in plan.nodes:
            wait_node(base, state, node.index)
        wait_proxy(state)
    except BaseException:
        cmd_stop(args)
        raise
    return state


def _plan(state: dict) -> netns.Plan:
    nodes = tuple(netns.Node(**entry["node"]) for _, entry in sorted(state["nodes"].items()))
    return netns.Plan(state["slot"], state["bridge"], state["bridge_ip"], state["prefix"], nodes)


def cmd_stop(args: argparse.Namespace) -> None:
    base = Path(args.dir).absolute()
    path = base / "state.json"
    if not path.exists():
        return
    state = json.loads(path.read_text())
    for i in state["nodes"]:
        kill_node(state, int(i))
    markers = {"memcached": f" {state['ports']['memcached']} ", "proxy": str(base / "etc")}
    for name, pid in state["pids"].items():
        if ours(pid, markers.get(name, str(base))):
            aio.kill_group(pid)
    plan = _plan(state)
    for node in plan.nodes:  # anything else still in a namespace (a replicator run, say) keeps it alive
        out = subprocess.run(["ip", "netns", "pids", node.netns], capture_output=True, text=True, timeout=30, check=False)
        for pid in out.stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
    left = netns.destroy(plan)
    path.unlink()
    if left:
        raise SystemExit(f"swift-ring: could not delete {left}")


def cmd_kill_node(args: argparse.Namespace) -> dict:
    base = Path(args.dir).absolute()
    state = load_state(base)
    killed = sorted(state["nodes"][str(_node(state, args.node).index)]["pids"])
    kill_node(state, args.node)
    save_state(base, state)
    return {"node": args.node, "killed": killed}


def cmd_start_node(args: argparse.Namespace) -> dict:
    base = Path(args.dir).absolute()
    state = load_state(base)
    _node(state, args.node)
    started = time.monotonic()
    start_node(base, state, args.node)
    save_state(base, state)
    wait_node(base, state, args.node)
    time.sleep(ERROR_SUPPRESSION_SECONDS)  # the proxy may still skip the node for that long
    return {"node": args.node, "seconds": round(time.monotonic() - started, 2)}


def _replicate_node(base: Path, state: dict, i: int) -> dict:
    """Node i's replicators once, one after the other (one process each: a Swift daemon's setup
    takes over the process's stdio, so two cannot share one)."""
    node = _node(state, i)
    etc = base / "etc" / node_key(i)
    runner = [sys.executable, str(Path(__file__).resolve().parent / "daemon.py"), str(base / "etc")]
    result: dict = {"seconds": 0.0, "failed": []}
    started = time.monotonic()
    with open(base / "logs" / f"n{i}-replicate.log", "ab") as log:
        for daemon in REPLICATION:
            conf = etc / f"{daemon.split('-')[0]}-server.conf"
            argv = netns.exec_argv(node, [*runner, f"swift-{daemon}", str(conf), "once", "--verbose"])
            try:
                rc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    timeout=300, check=False).returncode
            except subprocess.TimeoutExpired:
                rc = -1
            if rc != 0:
                result["failed"].append(f"{daemon} exit {rc}")
    result["seconds"] = round(time.monotonic() - started, 2)
    return result


def cmd_replicate(args: argparse.Namespace) -> dict:
    base = Path(args.dir).absolute()
    state = load_state(base)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=NODES) as pool:
        runs = {i: pool.submit(_replicate_node, base, state, int(i)) for i in state["nodes"]}
        result = {"nodes": {i: f.result() for i, f in runs.items()}}
    result["seconds"] = round(time.monotonic() - started, 2)
    failed = {i: r["failed"] for i, r in result["nodes"].items() if r["failed"]}
    if failed:
        raise SystemExit(f"swift-ring: replication failed on {failed}; see {base}/logs/n*-replicate.log")
    return result


def cmd_status(args: argparse.Namespace) -> dict:
    state = load_state(Path(args.dir).absolute())
    for i, entry in state["nodes"].items():
        marker = str(Path(state["dir"]) / "etc" / f"n{i}")
        entry["running"] = {kind: ours(entry["pids"].get(kind, 0), marker) for kind in (*PORTS, "rsync")}
        entry["healthy"] = node_health(state, int(i))
        entry["objects"] = count_objects(Path(entry["devices"]))
    state["running"] = {name: aio._pid_alive(pid) for name, pid in state["pids"].items()}
    state["healthy"] = aio.http_ok(f"http://{aio.HOST}:{state['ports']['proxy']}/healthcheck")
    return state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="swift-ring", description="Three-node Swift ring in network namespaces")
    parser.add_argument("command", choices=["start", "stop", "status", "kill-node", "start-node", "replicate"])
    parser.add_argument("node", nargs="?", type=int, help="node number (kill-node, start-node)")
    parser.add_argument("--dir", default=os.environ.get("SWIFT_RING_DIR", str(DEFAULT_DIR)))
    parser.add_argument("--port", type=int, default=0, help="proxy port (default: a free one)")
    parser.add_argument("--devices", default=None, help="root of the nodes' devices dirs (default DIR/devices)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.command in ("kill-node", "start-node") and args.node is None:
        parser.error(f"{args.command} needs a node number (1 to {NODES})")
    if args.command == "stop":
        cmd_stop(args)
        return 0
    handlers = {"start": cmd_start, "status": cmd_status, "kill-node": cmd_kill_node, "start-node": cmd_start_node,
                "replicate": cmd_replicate}
    result = handlers[args.command](args)
    if args.json:
        print(json.dumps(result))
    elif args.command == "status":
        for i, entry in result["nodes"].items():
            node = entry["node"]
            up = ", ".join(f"{k} {'up' if v else 'DOWN'}" for k, v in entry["healthy"].items())
            print(f"node {i} {node['ip']:15} {node['netns']:8} {up}; {entry['objects']} objects")
        print(f"proxy healthy: {result['healthy']}  auth URL: {result['auth_url']}")
    elif args.command == "start":
        print(f"auth URL: {result['auth_url']}  (user test:{result['user']}); nodes "
              + ", ".join(e["node"]["ip"] for e in result["nodes"].values()))
        print(f"state:    {result['dir']}/state.json, {result['dir']}/state.env")
    else:
        print(json.dumps(result))
    if args.command == "status":
        return 0 if result["healthy"] and all(all(e["healthy"].values()) for e in result["nodes"].values()) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
