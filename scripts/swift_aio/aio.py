"""An all-in-one OpenStack Swift on 127.0.0.1 for development and tests.

Run with the Swift venv's Python (``scripts/swift-aio.sh`` does)::

    aio.py start  [--dir DIR] [--port PROXY_PORT] [--devices DEVDIR] [--json]
    aio.py status [--dir DIR] [--json]
    aio.py stop   [--dir DIR]
    aio.py proxy-stop | proxy-start [--dir DIR]   (kill / restart only the proxy, same port)

``start`` writes configs under DIR/etc, builds the rings in-process (part power 8, one
replica, one device), starts memcached and the account, container, object and proxy
servers and the object updater (``--verbose``, logs in DIR/logs, absolute paths, each in its own session), waits
until they are healthy and tempauth answers, then writes DIR/state.json and DIR/state.env
and prints the auth URL and the S3 endpoint. Users (tempauth, account ``test``):
``test:tester`` / ``testing`` (.admin) and ``test:reader`` / ``reading`` (no admin).
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HOST = "127.0.0.1"
SERVERS = ("account", "container", "object")
DEFAULT_DIR = Path(__file__).resolve().parents[2] / ".cache" / "swift-aio"
BIN = Path(sys.executable).parent
USERS = {"tester": ("testing", ".admin"), "reader": ("reading", "")}
# An object PUT updates its container listing synchronously only within container_update_timeout
# (Swift's default 1 s); a slower container server (a loaded machine) leaves the update in
# async_pending, which only the object updater sends. Both, so a listing catches up within seconds.
OBJECT_APP_EXTRA = "container_update_timeout = 10\n"
UPDATER_SECTION = "\n[object-updater]\ninterval = 2\nconcurrency = 1\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def write_configs(base: Path, ports: dict[str, int], devices: Path) -> None:
    etc = base / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "swift.conf").write_text(
        "[swift-hash]\nswift_hash_path_suffix = aio-suffix\nswift_hash_path_prefix = aio-prefix\n\n"
        "[storage-policy:0]\nname = Policy-0\ndefault = yes\n\n"
        "[swift-constraints]\n"
    )
    run = base / "run"
    run.mkdir(parents=True, exist_ok=True)
    common = (
        f"[DEFAULT]\nbind_ip = {HOST}\nswift_dir = {etc}\ndevices = {devices}\n"
        "mount_check = false\nworkers = 0\nlog_level = INFO\n"
        f"recon_cache_path = {run}\nuser = {pwd.getpwuid(os.geteuid()).pw_name}\n"
    )
    for kind in SERVERS:
        (etc / f"{kind}-server.conf").write_text(
            common
            + f"bind_port = {ports[kind]}\n\n"
            + f"[pipeline:main]\npipeline = healthcheck {kind}-server\n\n"
            + f"[app:{kind}-server]\nuse = egg:swift#{kind}\n{OBJECT_APP_EXTRA if kind == 'object' else ''}\n"
            + "[filter:healthcheck]\nuse = egg:swift#healthcheck\n"
            + (UPDATER_SECTION if kind == "object" else "")
        )
    (etc / "proxy-server.conf").write_text(proxy_conf(etc, HOST, ports["proxy"], ports["memcached"]))


def proxy_conf(etc: Path, bind_ip: str, port: int, memcached_port: int, app_extra: str = "") -> str:
    """The proxy's config: tempauth (USERS), memcache, s3api, SLO/DLO; app_extra goes in [app:proxy-server]."""
    users = "".join(
        f"user_test_{user} = {password}{' ' + group if group else ''}\n" for user, (password, group) in USERS.items()
    )
    return (
        f"[DEFAULT]\nbind_ip = {bind_ip}\nbind_port = {port}\nswift_dir = {etc}\nworkers = 0\nlog_level = INFO\n\n"
        "[pipeline:main]\npipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats "
        "s3api tempauth copy slo dlo proxy-logging proxy-server\n\n"
        "[app:proxy-server]\nuse = egg:swift#proxy\naccount_autocreate = true\nallow_account_management = true\n"
        + app_extra + "\n"
        "[filter:tempauth]\nuse = egg:swift#tempauth\n" + users + "\n"
        f"[filter:cache]\nuse = egg:swift#memcache\nmemcache_servers = {HOST}:{memcached_port}\n\n"
        "[filter:s3api]\nuse = egg:swift#s3api\nlocation = us-east-1\n\n"
        "[filter:catch_errors]\nuse = egg:swift#catch_errors\n\n"
        "[filter:gatekeeper]\nuse = egg:swift#gatekeeper\n\n"
        "[filter:healthcheck]\nuse = egg:swift#healthcheck\n\n"
        "[filter:proxy-logging]\nuse = egg:swift#proxy_logging\n\n"
        "[filter:listing_formats]\nuse = egg:swift#listing_formats\n\n"
        "[filter:copy]\nuse = egg:swift#copy\n\n"
        "[filter:slo]\nuse = egg:swift#slo\nrate_limit_segments_per_sec = 0\n\n"
        "[filter:dlo]\nuse = egg:swift#dlo\nrate_limit_segments_per_sec = 0\n"
    )


def build_rings(base: Path, ports: dict[str, int]) -> None:
    from swift.common.ring import RingBuilder

    etc = base / "etc"
    for kind in SERVERS:
        builder = RingBuilder(8, 1, 1)
        builder.add_dev(
            {"id": 0, "region": 1, "zone": 1, "ip": HOST, "port": ports[kind], "device": "d1", "weight": 100.0, "meta": ""}
        )
        builder.rebalance()
        builder.save(str(etc / f"{kind}.builder"))
        builder.get_ring().save(str(etc / f"{kind}.ring.gz"))


def spawn(base: Path, name: str, argv: list[str]) -> int:
    logs = base / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd="/", start_new_session=True
        )
    return proc.pid


def start_proxy(base: Path, state: dict) -> int:
    conf = base / "etc" / "proxy-server.conf"
    pid = spawn(base, "proxy", [str(BIN / "swift-proxy-server"), str(conf), "--verbose"])
    state["pids"]["proxy"] = pid
    return pid


def http_ok(url: str, headers: dict[str, str] | None = None) -> bool:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=2) as resp:
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_healthy(state: dict, timeout: float = 60.0) -> None:
    ports = state["ports"]
    deadline = time.monotonic() + timeout
    checks = [f"http://{HOST}:{ports[k]}/healthcheck" for k in (*SERVERS, "proxy")]
    while checks and time.monotonic() < deadline:
        if http_ok(checks[0]):
            checks.pop(0)
        else:
            _check_alive(state)
            time.sleep(0.05)
    auth = {"X-Auth-User": f"test:{state['user']}", "X-Auth-Key": state["key"]}
    while time.monotonic() < deadline:
        if http_ok(state["auth_url"], auth):
            return
        time.sleep(0.05)
    raise SystemExit(f"swift-aio: not healthy after {timeout:.0f}s; see logs in {state['dir']}/logs")


def _check_alive(state: dict) -> None:
    for name, pid in state["pids"].items():
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = 0 if _pid_alive(pid) else pid
        if done:
            raise SystemExit(f"swift-aio: {name} exited at start; see {state['dir']}/logs/{name}.log")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie nobody reaped yet is not alive
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def kill_group(pid: int, timeout: float = 5.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
                if done:
                    return
            except ChildProcessError:
                if not _pid_alive(pid):
                    return
            time.sleep(0.02)


def load_state(base: Path, tool: str = "swift-aio") -> dict:
    path = base / "state.json"
    if not path.exists():
        raise SystemExit(f"{tool}: no state in {base}; is it started?")
    return json.loads(path.read_text())


def save_state(base: Path, state: dict) -> None:
    (base / "state.json").write_text(json.dumps(state, indent=2))
    env = {
        "ST_AUTH": state["auth_url"],
        "ST_USER": f"test:{state['user']}",
        "ST_KEY": state["key"],
    }
    if "s3_endpoint" in state:  # the all-in-one has s3api; the three-node ring (ring.py) does not
        env.update(S3_ENDPOINT=state["s3_endpoint"], AWS_ACCESS_KEY_ID=state["access_key"],
                   AWS_SECRET_ACCESS_KEY=state["secret_key"])
    (base / "state.env").write_text("".join(f"export {k}={v}\n" for k, v in env.items()))


def cmd_start(args: argparse.Namespace) -> dict:
    base = Path(args.dir).absolute()
    if (base / "state.json").exists():
        state = json.loads((base / "state.json").read_text())
        if all(_pid_alive(p) for p in state["pids"].values()):
            return state
        cmd_stop(args)
    devices = Path(args.devices).absolute() if args.devices else base / "devices"
    (devices / "d1").mkdir(parents=True, exist_ok=True)
    ports = {k: free_port() for k in (*SERVERS, "memcached")}
    ports["proxy"] = args.port or free_port()
    write_configs(base, ports, devices)
    build_rings(base, ports)
    password, _group = USERS["tester"]
    state: dict = {
        "dir": str(base),
        "devices": str(devices),
        "ports": ports,
        "pids": {},
        "auth_url": f"http://{HOST}:{ports['proxy']}/auth/v1.0",
        "storage_url": f"http://{HOST}:{ports['proxy']}/v1/AUTH_test",
        "s3_endpoint": f"http://{HOST}:{ports['proxy']}",
        "account": "test",
        "user": "tester",
        "key": password,
        "access_key": "test:tester",
        "secret_key": password,
        "region": "us-east-1",
        "reader_user": "reader",
        "reader_key": USERS["reader"][0],
    }
    memcached = shutil.which("memcached")
    if memcached is None:
        raise SystemExit("swift-aio: memcached not found (apt install memcached); tempauth needs it")
    user = ["-u", "root"] if os.geteuid() == 0 else []
    state["pids"]["memcached"] = spawn(
        base, "memcached", [memcached, "-l", HOST, "-p", str(ports["memcached"]), "-U", "0", "-m", "64", *user]
    )
    for kind in SERVERS:
        conf = base / "etc" / f"{kind}-server.conf"
        state["pids"][kind] = spawn(base, kind, [str(BIN / f"swift-{kind}-server"), str(conf), "--verbose"])
    state["pids"]["object-updater"] = spawn(
        base, "object-updater",
        [sys.executable, str(Path(__file__).with_name("daemon.py")), str(base / "etc"), "swift-object-updater",
         str(base / "etc" / "object-server.conf"), "--verbose"],
    )
    start_proxy(base, state)
    save_state(base, state)
    try:
        wait_healthy(state)
    except SystemExit:
        cmd_stop(args)
        raise
    return state


def cmd_stop(args: argparse.Namespace) -> None:
    base = Path(args.dir).absolute()
    path = base / "state.json"
    if not path.exists():
        return
    state = json.loads(path.read_text())
    for pid in state["pids"].values():
        kill_group(pid)
    path.unlink()


def cmd_proxy_stop(args: argparse.Namespace) -> None:
    base = Path(args.dir).absolute()
    state = load_state(base)
    kill_group(state["pids"]["proxy"])


def cmd_proxy_start(args: argparse.Namespace) -> None:
    base = Path(args.dir).absolute()
    state = load_state(base)
    if _pid_alive(state["pids"]["proxy"]):
        return
    start_proxy(base, state)
    save_state(base, state)
    wait_healthy(state)


def cmd_status(args: argparse.Namespace) -> dict:
    state = load_state(Path(args.dir).absolute())
    state["running"] = {name: _pid_alive(pid) for name, pid in state["pids"].items()}
    state["healthy"] = http_ok(f"http://{HOST}:{state['ports']['proxy']}/healthcheck")
    return state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="swift-aio", description="All-in-one Swift on 127.0.0.1")
    parser.add_argument("command", choices=["start", "stop", "status", "proxy-stop", "proxy-start"])
    parser.add_argument("--dir", default=os.environ.get("SWIFT_AIO_DIR", str(DEFAULT_DIR)))
    parser.add_argument("--port", type=int, default=0, help="proxy port (default: a free one)")
    parser.add_argument("--devices", default=None, help="directory holding the device d1 (default DIR/devices; tmpfs is fastest)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "start":
        state = cmd_start(args)
        if args.json:
            print(json.dumps(state))
        else:
            print(f"auth URL:    {state['auth_url']}  (user test:{state['user']})")
            print(f"S3 endpoint: {state['s3_endpoint']}  (access key {state['access_key']}, region {state['region']})")
            print(f"state:       {state['dir']}/state.json, {state['dir']}/state.env")
    elif args.command == "status":
        state = cmd_status(args)
        if args.json:
            print(json.dumps(state))
        else:
            for name, alive in state["running"].items():
                print(f"{name:10} {'running' if alive else 'stopped'} pid {state['pids'][name]}")
            print(f"healthy: {state['healthy']}  auth URL: {state['auth_url']}")
        return 0 if state["healthy"] else 1
    elif args.command == "stop":
        cmd_stop(args)
    elif args.command == "proxy-stop":
        cmd_proxy_stop(args)
    elif args.command == "proxy-start":
        cmd_proxy_start(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
