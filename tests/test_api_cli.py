"""storagectl token / job (through storage.cli.main.main, in-process: each subprocess start costs
seconds of a shared CPU) and serve (a real subprocess with TLS)."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import storage
from tests.api_server import STORAGECTL, ApiServer

ENV = {k: v for k, v in os.environ.items() if not k.startswith("STORAGE_")}


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def ctl(capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    from storage.cli.main import main

    def run(config: Path, *args: str) -> Result:
        capsys.readouterr()
        rc = main(["-c", str(config), *args])
        out = capsys.readouterr()
        return Result(rc, out.out, out.err)

    return run


def test_token_commands(config_file: Path, ctl) -> None:  # type: ignore[no-untyped-def]
    r = ctl(config_file, "token", "create", "--role", "operator", "--name", "ci", "--json")
    assert r.returncode == 0, r.stderr
    created = json.loads(r.stdout)
    secret, token_id = created["secret"], created["token"]["id"]
    assert created["token"]["role"] == "operator" and secret.startswith(token_id + ".")
    with storage.open(config_file) as st:
        assert st.tokens.authenticate(secret).name == "ci"

    r = ctl(config_file, "token", "list", "--json")
    listed = json.loads(r.stdout)
    assert [t["id"] for t in listed] == [token_id]
    assert secret.split(".", 1)[1] not in r.stdout  # never the secret
    r = ctl(config_file, "token", "list")
    assert r.returncode == 0 and "operator" in r.stdout

    r = ctl(config_file, "token", "revoke", token_id, "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["revoked_at"]
    r = ctl(config_file, "token", "create", "--role", "root", "--json")
    assert r.returncode == 2 and json.loads(r.stdout)["error"]["code"] == "invalid_input"
    assert "reader, operator, admin" in r.stderr
    r = ctl(config_file, "token", "revoke", "nope")
    assert r.returncode == 3


def test_job_commands(config_file: Path, tmp_path: Path, ctl) -> None:  # type: ignore[no-untyped-def]
    script = f"""
import time, storage
st = storage.open({str(config_file)!r})
def work(ctx):
    for i in range(600):
        ctx.progress(i, 600)
        ctx.check_cancelled()
        time.sleep(0.05)
job = st.jobs.submit("copy", work, target="x")
print(job.id, flush=True)
print(st.jobs.wait(job.id, 60).state.value, flush=True)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        job_id = proc.stdout.readline().strip()  # type: ignore[union-attr]
        time.sleep(1.0)
        r = ctl(config_file, "job", "list", "--state", "running", "--json")
        assert r.returncode == 0, r.stderr
        assert [j["id"] for j in json.loads(r.stdout)] == [job_id]
        shown = json.loads(ctl(config_file, "job", "show", job_id, "--json").stdout)
        assert shown["state"] == "running" and shown["bytes_total"] == 600 and shown["bytes_done"] > 0
        r = ctl(config_file, "job", "cancel", job_id, "--json")
        assert r.returncode == 0 and json.loads(r.stdout)["cancel_requested"] is True
        assert proc.stdout.readline().strip() == "cancelled"  # type: ignore[union-attr]
    finally:
        proc.kill()
        proc.wait()
    r = ctl(config_file, "job", "cancel", job_id)
    assert r.returncode == 4  # conflict: no longer active
    assert ctl(config_file, "job", "list").returncode == 0
    assert ctl(config_file, "job", "list", "--state", "bogus").returncode == 2


def test_serve_tls(config_file: Path, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-days", "1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    server = ApiServer(config_file)
    server.log = tmp_path / "tls.log"
    proc = subprocess.Popen(
        [STORAGECTL, "-c", str(config_file), "serve", "--port", str(server.port), "--ssl-certfile", str(cert),
         "--ssl-keyfile", str(key), "--log-level", "warning"],
        stdout=server.log.open("wb"), stderr=subprocess.STDOUT, env=ENV, start_new_session=True,
    )
    server.proc = proc
    context = ssl.create_default_context(cafile=str(cert))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"https://127.0.0.1:{server.port}/healthz", verify=context, timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, server.log.read_text()
                time.sleep(0.2)
        assert r.status_code == 200
    finally:
        server.stop()
    r = subprocess.run([STORAGECTL, "-c", str(config_file), "serve", "--ssl-certfile", str(cert)],
                       capture_output=True, text=True, env=ENV, timeout=60)
    assert r.returncode == 2 and "both" in r.stderr
