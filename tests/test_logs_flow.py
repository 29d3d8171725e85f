"""Log lines of real processes: the CLI's JSON and text lines, the config's [logging], and one
API request followed by its X-Request-ID from the access line into its job's lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api_server import ApiServer, make_tokens, write_config

STORAGECTL = str(Path(sys.executable).parent / "storagectl")


def run(config: Path, *args: str, env: dict[str, str] | None = None, code: int = 0) -> tuple[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("STORAGE_")}
    proc = subprocess.run([STORAGECTL, "-c", str(config), *args], capture_output=True, text=True, timeout=120, env={**base, **(env or {})})
    assert proc.returncode == code, proc.stderr
    return proc.stdout, proc.stderr


def docs(text: str) -> list[dict[str, Any]]:
    lines = [line for line in text.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # every line is one JSON object


def test_cli_json_lines_carry_the_operation_and_its_ids(data_dir: Path) -> None:
    config = write_config(data_dir, 'host_name = "flow-h1"\n')
    out, err = run(config, "volume", "create", "v1", "8M", "--json", env={"STORAGE_REQUEST_ID": "cron-run-42"})
    vol = json.loads(out)
    (line,) = [d for d in docs(err) if d.get("event.action") == "volume.create" and d["log.logger"] == "storage.ops"]
    assert line["event.outcome"] == "success" and line["storage.volume.id"] == vol["id"] and line["event.duration"] > 0
    assert line["trace.id"] == line["http.request.id"] == "cron-run-42"
    assert line["service.name"] == "storagectl" and line["host.name"] == "flow-h1" and line["log.level"] == "info"
    _, err = run(config, "volume", "extend", "nope", "16M", code=3)
    failed = [d for d in docs(err.split("\nerror:")[0]) if d.get("event.action") == "volume.extend"]
    assert failed[0]["event.outcome"] == "failure" and failed[0]["error.type"] == "NotFound"
    assert failed[0]["trace.id"].startswith("req-")  # no STORAGE_REQUEST_ID: one made per command
    assert err.rstrip().splitlines()[-1].startswith("error: volume 'nope' not found")  # the error line stays last


def test_config_and_option_choose_the_format(data_dir: Path) -> None:
    config = write_config(data_dir, '[logging]\nformat = "text"\nlevel = "info"\n')
    _, err = run(config, "volume", "create", "t1", "8M")
    assert " INFO storage.ops: volume.create t1 succeeded [trace=req-" in err and not err.lstrip().startswith("{")
    _, err = run(config, "--log-format", "json", "volume", "delete", "t1")
    assert [d["event.action"] for d in docs(err) if d.get("log.logger") == "storage.ops"] == ["volume.delete"]
    _, err = run(config, "--log-format", "yaml", "volume", "list", code=2)
    assert "--log-format 'yaml' is not accepted; accepted: json, text" in err
    quiet = write_config(data_dir / "quiet", '[logging]\nformat = "text"\n')  # text: warning and up by default
    _, err = run(quiet, "volume", "create", "t2", "8M")
    assert err == ""


@pytest.fixture
def server(data_dir: Path):  # type: ignore[no-untyped-def]
    config = write_config(data_dir, 'host_name = "flow-api"\n[logging]\nformat = "json"\n')
    srv = ApiServer(config)
    srv.tokens = make_tokens(config)
    srv.start("--log-level", "info")
    try:
        yield srv
    finally:
        srv.stop()


def test_request_id_from_the_access_line_into_the_job(server: ApiServer) -> None:
    with server.client() as c:
        r = c.post("/volumes", json={"name": "f1", "size": "8M"}, headers={"X-Request-ID": "client-abc.1"})
        assert r.status_code == 201 and r.headers["x-request-id"] == "client-abc.1"
        for bad in ("has space", "x" * 129, "semi;colon"):
            r = c.get("/volumes", headers={"X-Request-ID": bad})
            assert r.status_code == 200 and r.headers["x-request-id"].startswith("req-")
        assert httpx.get(server.url + "/volumes").headers["x-request-id"].startswith("req-")  # a 401 carries one too
        cinder = c.get("/v3/admin/volumes", headers={"X-OpenStack-Request-ID": "req-from-osc"})
        assert cinder.headers["x-openstack-request-id"] == cinder.headers["x-request-id"] == "req-from-osc"
        job = c.post("/backups", json={"volume": "f1"}, headers={"X-Request-ID": "follow-me-7"}).json()
        assert job["request_id"] == "follow-me-7"
        deadline = time.monotonic() + 60
        while (state := c.get(f"/jobs/{job['id']}").json())["state"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert state["state"] == "succeeded" and state["request_id"] == "follow-me-7"
    time.sleep(0.3)  # the job's last line is written just after its state
    lines = docs(server.log.read_text())  # type: ignore[union-attr]
    followed = [d for d in lines if d.get("trace.id") == "follow-me-7"]
    actions = [d.get("event.action") for d in followed]
    assert {"http.request", "job.submit", "backup.create", "job.run"} <= set(actions), actions
    (run_line,) = [d for d in followed if d.get("event.action") == "job.run"]
    (backup_line,) = [d for d in followed if d.get("event.action") == "backup.create" and d["log.logger"] == "storage.ops"]
    assert run_line["storage.job.id"] == job["id"] == backup_line["storage.job.id"] and run_line["event.outcome"] == "success"
    assert backup_line["storage.backup.id"] and backup_line["storage.volume.id"]
    (access,) = [d for d in followed if d.get("event.action") == "http.request"]
    assert access["http.request.method"] == "POST" and access["url.path"] == "/backups" and access["http.response.status_code"] == 202
    assert access["user.name"] == "test-admin" and access["client.ip"] == "127.0.0.1"
    assert {d["service.name"] for d in lines} == {"storage-api"} and {d["host.name"] for d in lines} == {"flow-api"}
    refused = [d for d in lines if d.get("event.action") == "http.request" and d.get("http.response.status_code") == 401]
    assert refused and refused[0]["event.outcome"] == "failure" and "user.id" not in refused[0]


def test_a_job_stores_the_request_id_and_logs_with_it(st, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    """In one process: the job row keeps the submitting scope's trace id; the job thread (a new,
    empty context) binds it again, and so would another process entering job_log_scope."""
    import logging

    from storage.jobs.service import job_log_scope
    from storage.logs import context

    caplog.set_level(logging.INFO)
    seen: list[dict[str, str]] = []

    def work(ctx):  # type: ignore[no-untyped-def]
        seen.append(context.current())
        return {"ok": True}

    with context.bind(trace_id="unit-req-1"):
        info = st.jobs.submit("noop", work)
    assert info.request_id == "unit-req-1"
    done = st.jobs.wait(info.id, timeout=30)
    assert done.state.value == "succeeded" and done.request_id == "unit-req-1"
    assert seen == [{"trace.id": "unit-req-1", "storage.job.id": info.id}]
    with job_log_scope(done.id, done.request_id):  # what an agent does with the row
        assert context.current() == {"trace.id": "unit-req-1", "storage.job.id": info.id}
    finished = [r for r in caplog.records if r.name == "storage.jobs" and r.ecs.get("event.action") == "job.run"]  # type: ignore[attr-defined]
    assert finished and finished[0].ecs["event.outcome"] == "success" and finished[0].ecs["storage.job.kind"] == "noop"  # type: ignore[attr-defined]
    outside = st.jobs.submit("noop", work)  # no request: no id stored, none invented
    assert outside.request_id is None and st.jobs.wait(outside.id, timeout=30).request_id is None
