"""A real OpenStack Keystone on 127.0.0.1, plus a Swift proxy that authenticates through it.

Run with the Keystone venv's Python (``scripts/keystone-aio.sh`` does)::

    aio.py start --dir DIR --swift-dir SWIFT_AIO_DIR [--json]
    aio.py stop  --dir DIR

``start`` writes a keystone.conf (SQLite, fernet tokens) under DIR, runs ``keystone-manage``
db_sync, fernet_setup, credential_setup and bootstrap, serves Keystone on a free port
(``serve.py``), then creates through its API: projects ``service`` and ``demo``, users ``swift``
(admin in ``service``, for Swift's auth_token middleware) and ``demo`` (member of ``demo``),
and an ``object-store`` endpoint. Last it starts a second proxy server for the running Swift
all-in-one (``scripts/swift-aio.sh``; same rings, account/container/object servers) with
``authtoken keystoneauth`` in place of ``s3api tempauth``. DIR/state.json holds the auth URL,
the demo credentials and the pids; passwords are random per start.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from swift_aio.aio import HOST, free_port, http_ok, kill_group, spawn  # noqa: E402

BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent


def keystone_conf(base: Path) -> Path:
    conf = base / "keystone.conf"
    conf.write_text(
        f"[DEFAULT]\nlog_file = {base}/logs/keystone.log\n\n"
        f"[database]\nconnection = sqlite:///{base}/keystone.db\n\n"
        "[token]\nprovider = fernet\n\n"
        f"[fernet_tokens]\nkey_repository = {base}/fernet-keys\n\n"
        f"[fernet_receipts]\nkey_repository = {base}/fernet-keys\n\n"
        f"[credential]\nkey_repository = {base}/credential-keys\n"
    )
    return conf


def manage(conf: Path, *args: str) -> None:
    out = subprocess.run([str(BIN / "keystone-manage"), "--config-file", str(conf), *args],
                         capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"keystone-aio: keystone-manage {args[0]} failed: {out.stderr[-2000:]}")


class Admin:
    """The few Keystone v3 admin calls the set-up needs (urllib, a project-scoped admin token)."""

    def __init__(self, url: str, password: str) -> None:
        self.url = url
        body = {"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
        }}
        with self._open("POST", "/auth/tokens", body, token=None) as resp:
            self.token = resp.headers["X-Subject-Token"]

    def _open(self, method: str, path: str, body: dict | None, token: str | None = "") -> "urllib.response.addinfourl":
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["X-Auth-Token"] = token or self.token
        data = json.dumps(body).encode() if body is not None else None
        return urllib.request.urlopen(urllib.request.Request(self.url + path, data, headers, method=method), timeout=30)

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        with self._open(method, path, body) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else {}

    def create(self, kind: str, **fields: object) -> str:
        return self.call("POST", f"/{kind}s", {kind: fields})[kind]["id"]


def wait_keystone(url: str, pid: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http_ok(url):
            return
        try:
            Path(f"/proc/{pid}").stat()
        except OSError:
            break
        time.sleep(0.2)
    raise SystemExit(f"keystone-aio: Keystone did not answer at {url}; see its log")


def proxy_conf(swift_dir: Path, port: int, keystone_url: str, swift_password: str) -> Path:
    conf = (swift_dir / "etc" / "proxy-server.conf").read_text()
    conf = re.sub(r"(?m)^bind_port = \d+$", f"bind_port = {port}", conf, count=1)
    if " s3api tempauth " not in conf:
        raise SystemExit("keystone-aio: the Swift proxy pipeline has no 's3api tempauth' to replace")
    conf = conf.replace(" s3api tempauth ", " authtoken keystoneauth ")
    conf += (
        "\n[filter:authtoken]\npaste.filter_factory = keystonemiddleware.auth_token:filter_factory\n"
        f"www_authenticate_uri = {keystone_url}\nauth_url = {keystone_url}\nauth_type = password\n"
        "interface = public\nproject_domain_id = default\nuser_domain_id = default\nproject_name = service\n"
        f"username = swift\npassword = {swift_password}\ndelay_auth_decision = true\n\n"
        "[filter:keystoneauth]\nuse = egg:swift#keystoneauth\noperator_roles = admin, member\n"
    )
    path = swift_dir / "etc" / "proxy-keystone.conf"
    path.write_text(conf)
    return path


def start(base: Path, swift_dir: Path, swift_bin: Path) -> dict:
    (base / "logs").mkdir(parents=True, exist_ok=True)
    conf = keystone_conf(base)
    port, proxy_port = free_port(), free_port()
    url = f"http://{HOST}:{port}/v3"
    admin_password, swift_password, demo_password = (secrets.token_urlsafe(12) for _ in range(3))
    manage(conf, "db_sync")
    manage(conf, "fernet_setup", "--keystone-user", "root", "--keystone-group", "root")
    manage(conf, "credential_setup", "--keystone-user", "root", "--keystone-group", "root")
    manage(conf, "bootstrap", "--bootstrap-password", admin_password, "--bootstrap-admin-url", url,
           "--bootstrap-public-url", url, "--bootstrap-region-id", "RegionOne")
    state: dict = {"dir": str(base), "pids": {}}
    state["pids"]["keystone"] = spawn(base, "keystone-server", [str(BIN / "python"), str(HERE / "serve.py"), str(conf), str(port)])
    save(base, state)
    wait_keystone(url, state["pids"]["keystone"])
    admin = Admin(url, admin_password)
    roles = {r["name"]: r["id"] for r in admin.call("GET", "/roles")["roles"]}
    service_project = admin.create("project", name="service", domain_id="default")
    demo_project = admin.create("project", name="demo", domain_id="default")
    swift_user = admin.create("user", name="swift", password=swift_password, domain_id="default")
    demo_user = admin.create("user", name="demo", password=demo_password, domain_id="default")
    admin.call("PUT", f"/projects/{service_project}/users/{swift_user}/roles/{roles['admin']}")
    admin.call("PUT", f"/projects/{demo_project}/users/{demo_user}/roles/{roles['member']}")
    service = admin.create("service", type="object-store", name="swift")
    admin.create("endpoint", service_id=service, interface="public", region_id="RegionOne",
                 url=f"http://{HOST}:{proxy_port}/v1/AUTH_%(project_id)s")
    proxy = proxy_conf(swift_dir, proxy_port, url, swift_password)
    state["pids"]["swift-proxy"] = spawn(base, "swift-proxy-keystone", [str(swift_bin / "swift-proxy-server"), str(proxy), "--verbose"])
    state.update(auth_url=url, swift_proxy_port=proxy_port, username="demo", password=demo_password,
                 project_name="demo", project_id=demo_project, user_domain_name="Default",
                 project_domain_name="Default", region_name="RegionOne")
    save(base, state)
    deadline = time.monotonic() + 60
    while not http_ok(f"http://{HOST}:{proxy_port}/healthcheck"):
        if time.monotonic() > deadline:
            raise SystemExit(f"keystone-aio: the Keystone Swift proxy did not start; see {base}/logs")
        time.sleep(0.1)
    return state


def save(base: Path, state: dict) -> None:
    path = base / "state.json"
    path.write_text(json.dumps(state, indent=2))
    path.chmod(0o600)


def stop(base: Path) -> None:
    path = base / "state.json"
    if not path.exists():
        return
    for pid in json.loads(path.read_text()).get("pids", {}).values():
        kill_group(pid)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["start", "stop"])
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("--swift-dir", type=Path, help="state dir of a running scripts/swift-aio.sh (start)")
    ap.add_argument("--swift-bin", type=Path, help="bin dir of the Swift venv (default: .cache/swift-venv/bin)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    base = args.dir.resolve()
    if args.command == "stop":
        stop(base)
        return
    if args.swift_dir is None:
        raise SystemExit("keystone-aio: start needs --swift-dir (the state dir of a running swift-aio)")
    swift_bin = args.swift_bin or Path(__file__).resolve().parents[2] / ".cache" / "swift-venv" / "bin"
    try:
        state = start(base, args.swift_dir.resolve(), swift_bin)
    except BaseException:
        stop(base)
        raise
    if args.json:
        print(json.dumps(state))
    else:
        print(f"Keystone {state['auth_url']} (user demo, project demo; password in {base}/state.json); "
              f"Swift through it on port {state['swift_proxy_port']}")


if __name__ == "__main__":
    main()
