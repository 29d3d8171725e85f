"""No secret in any log line: a realistic session of the CLI, the API server and the agent, at
debug level, with every secret it handles created by the test (API tokens, a wrong token, CHAP
secrets given and generated, a repository key, Swift and S3 credentials, a PostgreSQL URL's
password); every line each process wrote is collected and grepped for each secret.

Needs the Swift all-in-one (Swift and S3 stores), tgtd (CHAP exports) and loop devices. ~80 s on
a busy 2-core machine (about 15 storagectl processes, one API server, two agents).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api_server import ApiServer, free_port
from tests.fixtures_swift import _toml_table
from tests.volume_helpers import requires_loop

pytestmark = [pytest.mark.swift, pytest.mark.tgt, pytest.mark.loop, requires_loop]
STORAGECTL = str(Path(sys.executable).parent / "storagectl")
WRONG_SWIFT_KEY = "Wrong-Swift-Key-88"  # a mistyped password is when people read logs
WRONG_S3_SECRET = "Wrong-S3-Secret-Key-99"


class Session:
    """Runs storagectl commands; keeps every stderr (the log lines) and the secrets met."""

    def __init__(self, config: Path, logs: Path) -> None:
        self.config, self.logs = config, logs
        self.secrets: dict[str, str] = {}
        self.count = 0

    def env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith("STORAGE_")}

    def ctl(self, *args: str, code: int = 0, config: Path | None = None) -> str:
        self.count += 1
        log = self.logs / f"cli-{self.count:02d}.log"
        with log.open("wb") as err:
            proc = subprocess.run([STORAGECTL, "-c", str(config or self.config), *args], stdout=subprocess.PIPE, stderr=err,
                                  env=self.env(), timeout=180)  # fmt: skip
        assert proc.returncode == code, f"storagectl {' '.join(args)} -> {proc.returncode}\n{log.read_text()[-3000:]}"
        return proc.stdout.decode()

    def secret(self, name: str, value: str) -> str:
        self.secrets[name] = value
        return value


def write_session_config(data: Path, tgtd: Any, swift_options: dict[str, Any], s3_options: dict[str, Any], key: Path) -> Path:
    data.mkdir(parents=True, exist_ok=True)
    path = data / "storage.toml"
    path.write_text(
        f'data_dir = "{data}"\nhost_name = "logs-h1"\n\n[logging]\nformat = "json"\nlevel = "debug"\n\n'
        f'[backup]\nkey_file = "{key}"\n\n'
        f'[export]\ndriver = "tgt"\nportal = "{tgtd.portal}"\ncontrol_port = {tgtd.control_port}\nmanage_daemon = false\n\n'
        + _toml_table("swift", {"type": "swift", **swift_options}) + "\n" + _toml_table("s3", {"type": "s3", **s3_options})
        + "\n" + _toml_table("swiftbad", {"type": "swift", **swift_options, "key": WRONG_SWIFT_KEY, "retries": 0})
        + "\n" + _toml_table("s3bad", {"type": "s3", **s3_options, "secret_key": WRONG_S3_SECRET})
    )  # fmt: skip
    return path


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_no_secret_in_any_log_line(
    tmp_path: Path, tgtd_clean: Any, swift_options: dict[str, Any], s3_options: dict[str, Any]
) -> None:  # fmt: skip
    logs = tmp_path / "logs"
    logs.mkdir()
    key = tmp_path / "keys" / "repo.key"
    config = write_session_config(tmp_path / "data", tgtd_clean, swift_options, s3_options, key)
    s = Session(config, logs)
    s.secret("swift key", swift_options["key"])
    s.secret("s3 secret", s3_options["secret_key"])

    # -- CLI: a key, tokens, volumes, a CHAP export, encrypted backups to Swift and S3 ----------
    s.ctl("backup", "key", "create", str(key))
    s.secret("repository key", key.read_text().strip())
    admin = json.loads(s.ctl("token", "create", "--role", "admin", "--name", "ops", "--json"))["secret"]
    s.secret("admin token", admin.split(".", 1)[1])
    s.ctl("volume", "create", "v1", "16M", "--label", "tier=gold")
    chap_file = tmp_path / "chap"
    chap_file.write_text(s.secret("cli chap secret", "Cli-Chap-7a9Q") + "\n")
    s.ctl("volume", "export", "v1", "--chap-secret-file", str(chap_file))
    s.ctl("volume", "connection-info", "v1", "--show-secret", "--json")  # prints it on stdout; logs must not
    s.ctl("backup", "create", "v1", "-r", "swift://swift@logs-bk/v1", "--json")
    s.ctl("backup", "create", "v1", "-r", "s3://s3@logs-bk-s3/v1", "--json")
    s.ctl("object", "list", "logs-bk", "--store", "swift")
    s.secret("wrong swift key", WRONG_SWIFT_KEY)
    s.secret("wrong s3 secret", WRONG_S3_SECRET)
    s.ctl("object", "list", "logs-bk", "--store", "swiftbad", code=8)
    s.ctl("object", "list", "logs-bk-s3", "--store", "s3bad", code=8)
    s.ctl("volume", "unexport", "v1")

    # -- the API server: right and wrong tokens, a CHAP export with a given and a generated secret, a job
    server = ApiServer(config)
    server.start("--log-level", "debug")
    try:
        headers = {"Authorization": f"Bearer {admin}", "X-Request-ID": "secrets-session-1"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as c:
            assert c.post("/volumes", json={"name": "v2", "size": "8M"}).status_code == 201
            chap = s.secret("api chap secret", "Api-Chap-5x8W")
            assert c.post("/volumes/v2/export", json={"chap_secret": chap}).status_code == 201
            info = c.get("/volumes/v2/connection-info", params={"show_secret": "true"}).json()
            assert info["auth_password"] == chap
            assert c.delete("/volumes/v2/export").status_code == 200
            assert c.post("/volumes/v2/export", json={}).status_code == 201  # a generated secret this time
            generated = c.get("/volumes/v2/connection-info", params={"show_secret": "true"}).json()["auth_password"]
            s.secret("generated chap secret", generated)
            assert c.delete("/volumes/v2/export").status_code == 200
            job = c.post("/backups", json={"volume": "v2", "repository": "s3://s3@logs-bk-s3/v2"}).json()
            deadline = time.monotonic() + 60
            while c.get(f"/jobs/{job['id']}").json()["state"] in ("queued", "running") and time.monotonic() < deadline:
                time.sleep(0.2)
            assert c.get(f"/jobs/{job['id']}").json()["state"] == "succeeded"
        wrong = s.secret("wrong token", "Wr0ng-Token-Secret-Value-123")
        assert httpx.get(server.url + "/volumes", headers={"Authorization": f"Bearer abc.{wrong}"}).status_code == 401
        assert httpx.get(server.url + "/v3/x/volumes", headers={"X-Auth-Token": f"abc.{wrong}"}).status_code == 401
    finally:
        server.stop()
    assert server.log is not None
    (logs / "server.log").write_bytes(server.log.read_bytes())

    # -- the agent: a catalog it cannot reach whose URL carries a password, then a working one
    pg_pw = s.secret("catalog password", "Catalog-Pw-31f")
    cluster = tmp_path / "cluster"
    cluster.mkdir()
    bad = cluster / "bad.toml"
    bad.write_text(f'data_dir = "{cluster}"\nhost_name = "logs-h2"\n[logging]\nlevel = "debug"\n'
                   f'[catalog]\nurl = "postgresql://storage:{pg_pw}@127.0.0.1:{free_port()}/storage"\n'
                   '[cluster]\nheartbeat_interval = 0.2\nservice_down_time = 5\n')  # fmt: skip
    s.ctl("agent", "--once", code=5, config=bad)
    agent_log = logs / "agent.log"
    with agent_log.open("wb") as out:
        agent = subprocess.Popen([STORAGECTL, "-c", str(bad), "agent"], stdout=out, stderr=subprocess.STDOUT, env=s.env())
        deadline = time.monotonic() + 60
        while agent_log.read_text().count("failed (") < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(20) == 0

    # -- every line of every process: JSON, and no secret in any
    texts = {p.name: p.read_text(errors="replace") for p in sorted(logs.iterdir())}
    lines = [doc for text in texts.values() for doc in json_lines(text)]
    assert len(lines) > 50, f"too few log lines to mean anything: {len(lines)}"
    actions = {d.get("event.action") for d in lines}
    assert {"volume.create", "export.create", "backup.create", "http.request", "job.run", "host.heartbeat"} <= actions, actions
    assert any(d.get("trace.id") == "secrets-session-1" and d.get("event.action") == "job.run" for d in lines)
    assert {d["service.name"] for d in lines} == {"storagectl", "storage-api", "storage-agent"}
    for name, text in texts.items():
        for what, value in s.secrets.items():
            assert value not in text, f"{what} leaked into {name}: " + next(line for line in text.splitlines() if value in line)[:500]
