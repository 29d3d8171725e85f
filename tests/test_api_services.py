"""Library-level tests of the token and job services behind the admin API."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

import storage
from storage.auth.service import role_allows, split_bearer
from storage.errors import AuthenticationFailed, Conflict, InvalidInput, NotFound, PermissionDenied
from storage.jobs.service import JobState, eta_seconds, owner_alive, parse_owner, percent

pytestmark = pytest.mark.both_catalogs


def copy_in_blocks(src: Path, dst: Path, ctx, block: int = 64 * 1024, pause: float = 0.0) -> dict:
    """Real work for a job: copy a file block by block, reporting progress and honouring cancel."""
    total = src.stat().st_size
    done = 0
    with src.open("rb") as fin, dst.open("wb") as fout:
        while chunk := fin.read(block):
            ctx.check_cancelled()
            fout.write(chunk)
            done += len(chunk)
            ctx.progress(done, total)
            if pause:
                time.sleep(pause)
    return {"bytes": done}


def test_token_roundtrip(st: storage.Storage) -> None:
    info, bearer = st.tokens.create("operator", name="ci")
    assert bearer.startswith(info.id + ".")
    principal = st.tokens.authenticate(bearer)
    assert principal.role == "operator" and principal.name == "ci"
    listed = st.tokens.list()
    assert [t.id for t in listed] == [info.id]
    dumped = listed[0].model_dump_json()
    assert bearer.split(".", 1)[1] not in dumped  # the secret is never listed
    st.tokens.revoke(info.id)
    with pytest.raises(AuthenticationFailed):
        st.tokens.authenticate(bearer)


def test_token_rejects_bad_input(st: storage.Storage) -> None:
    with pytest.raises(InvalidInput, match="accepted: reader, operator, admin"):
        st.tokens.create("root")
    info, bearer = st.tokens.create("reader")
    token_id, secret = split_bearer(bearer)  # type: ignore[misc]
    def other(ch: str) -> str:  # a character that differs from ch, so the bad token is never the real one
        return "y" if ch == "x" else "x"

    wrong_secret = f"{token_id}.{secret[:-1]}{other(secret[-1])}"
    wrong_id = f"{token_id[:-1]}{'1' if token_id[-1] == '0' else '0'}.{secret}"
    for bad in (None, "", "garbage", wrong_secret, wrong_id):
        with pytest.raises(AuthenticationFailed) as err:
            st.tokens.authenticate(bad)
        assert secret not in str(err.value)
    with pytest.raises(NotFound):
        st.tokens.revoke("00000000-0000-0000-0000-000000000000")


def test_token_expiry(st: storage.Storage) -> None:
    with pytest.raises(InvalidInput, match="future"):
        st.tokens.create("reader", expires=timedelta(seconds=-1))
    t0 = time.monotonic()
    _, bearer = st.tokens.create("reader", expires=timedelta(seconds=5))  # room for a loaded CI machine
    st.tokens.authenticate(bearer)
    time.sleep(max(0.0, t0 + 5.2 - time.monotonic()))
    with pytest.raises(AuthenticationFailed):
        st.tokens.authenticate(bearer)


def test_roles_are_ordered() -> None:
    assert role_allows("admin", "operator") and role_allows("operator", "reader")
    assert not role_allows("reader", "operator") and not role_allows("operator", "admin")
    assert not role_allows("nobody", "reader")


def test_principal_require(st: storage.Storage) -> None:
    _, bearer = st.tokens.create("reader")
    with pytest.raises(PermissionDenied, match="'operator'"):
        st.tokens.authenticate(bearer).require("operator")


def test_progress_helpers() -> None:
    assert percent(50, 200) == 25.0 and percent(5, None) is None
    assert eta_seconds(50, 150, 10.0) == 10.0 and eta_seconds(150, 150, 10.0) is None
    assert parse_owner("host:a:b:12:34") == ("host:a:b", 12, 34)
    assert parse_owner("bad") is None
    assert owner_alive("x:1:2", host="y")  # another host: cannot tell, treated alive


def test_owner_alive_tracks_real_process() -> None:
    import socket

    from storage.jobs.service import process_start_time

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        owner = f"{socket.gethostname()}:{proc.pid}:{process_start_time(proc.pid)}"
        assert owner_alive(owner)
        assert not owner_alive(f"{socket.gethostname()}:{proc.pid}:1")  # pid reused by another process
    finally:
        proc.kill()
        proc.wait()
    assert not owner_alive(owner)


def test_job_runs_with_progress(st: storage.Storage, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(1024 * 1024))
    job = st.jobs.submit("copy", lambda ctx: copy_in_blocks(src, tmp_path / "dst.bin", ctx), target="src.bin")
    assert job.state in (JobState.QUEUED, JobState.RUNNING)
    done = st.jobs.wait(job.id, timeout=30)
    assert done.state == JobState.SUCCEEDED, done.error
    assert done.bytes_done == done.bytes_total == 1024 * 1024 and done.percent == 100.0
    assert done.result == {"bytes": 1024 * 1024}
    assert (tmp_path / "dst.bin").read_bytes() == src.read_bytes()
    assert st.jobs.counts_by_state()["succeeded"] == 1


def test_job_cancel(st: storage.Storage, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(4 * 1024 * 1024))
    job = st.jobs.submit("copy", lambda ctx: copy_in_blocks(src, tmp_path / "dst.bin", ctx, pause=0.01))
    deadline = time.monotonic() + 10
    while st.jobs.get(job.id).bytes_done == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    running = st.jobs.get(job.id)
    assert running.state == JobState.RUNNING and 0 < running.bytes_done < running.bytes_total
    st.jobs.cancel(job.id)
    final = st.jobs.wait(job.id, timeout=10)
    assert final.state == JobState.CANCELLED and final.error["code"] == "cancelled"
    assert final.bytes_done < 4 * 1024 * 1024
    with pytest.raises(Conflict, match="cancelled"):
        st.jobs.cancel(job.id)


def test_job_failure_is_recorded(st: storage.Storage, tmp_path: Path) -> None:
    job = st.jobs.submit("copy", lambda ctx: copy_in_blocks(tmp_path / "missing", tmp_path / "x", ctx))
    final = st.jobs.wait(job.id, timeout=10)
    assert final.state == JobState.FAILED and "FileNotFoundError" in final.error["message"]


def test_cancel_from_another_process_is_seen(config_file: Path, st: storage.Storage, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(4 * 1024 * 1024))
    job = st.jobs.submit("copy", lambda ctx: copy_in_blocks(src, tmp_path / "dst.bin", ctx, pause=0.01))
    other = storage.open(config_file)  # a second Storage, as another API worker would hold
    try:
        time.sleep(0.3)
        other.jobs.cancel(job.id)
    finally:
        other.close()
    assert st.jobs.wait(job.id, timeout=10).state == JobState.CANCELLED


def test_job_of_a_dead_process_is_interrupted(config_file: Path, tmp_path: Path) -> None:
    script = f"""
import os, sys, time, storage
st = storage.open({str(config_file)!r})
def work(ctx):
    for i in range(1000):
        ctx.progress(i, 1000)
        time.sleep(0.05)
job = st.jobs.submit("copy", work)
print(job.id, flush=True)
time.sleep(60)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        job_id = proc.stdout.readline().strip()  # type: ignore[union-attr]
        with storage.open(config_file) as st:
            deadline = time.monotonic() + 10
            while st.jobs.get(job_id).state != JobState.RUNNING and time.monotonic() < deadline:
                time.sleep(0.05)
            assert st.jobs.get(job_id).state == JobState.RUNNING
            # a live owner's job is left alone by another process starting up
            assert job_id not in st.jobs.recover()
    finally:
        proc.kill()
        proc.wait()
    with storage.open(config_file) as st:
        assert job_id in st.jobs.recovered
        info = st.jobs.get(job_id)
        assert info.state == JobState.INTERRUPTED and "stopped" in (info.message or "")


def test_shutdown_marks_running_jobs_interrupted(st: storage.Storage) -> None:
    started = threading.Event()

    def work(ctx):
        started.set()
        while True:
            ctx.progress(1, 10)
            ctx.check_cancelled()
            time.sleep(0.02)

    job = st.jobs.submit("copy", work)
    assert started.wait(10)
    st.jobs.shutdown(timeout=5)
    assert st.jobs.get(job.id).state == JobState.INTERRUPTED
    with pytest.raises(Conflict, match="shutting down"):
        st.jobs.submit("copy", work)


def test_token_cache_honours_revocation(config_file: Path, st: storage.Storage) -> None:
    st.tokens.cache_seconds = 1.0
    info, bearer = st.tokens.create("reader")
    assert st.tokens.authenticate(bearer).token_id == info.id
    with storage.open(config_file) as other:  # another process revokes
        other.tokens.revoke(info.id)
    assert st.tokens.authenticate(bearer).token_id == info.id  # still cached here, for at most 1 s
    time.sleep(1.1)
    with pytest.raises(AuthenticationFailed):
        st.tokens.authenticate(bearer)
    info2, bearer2 = st.tokens.create("reader")
    st.tokens.authenticate(bearer2)
    st.tokens.revoke(info2.id)  # a revocation in this process applies at once
    with pytest.raises(AuthenticationFailed):
        st.tokens.authenticate(bearer2)
    with pytest.raises(AuthenticationFailed):  # a wrong secret is never served from the cache
        st.tokens.authenticate(bearer2[:-2] + "xx")


def test_cached_principal_is_only_what_authenticate_put_there(config_file: Path, st: storage.Storage) -> None:
    """The event loop's cache lookup (api/edge.py, api/deps.py) never reads the catalog and
    never answers what ``authenticate`` would refuse."""
    info, bearer = st.tokens.create("operator")
    st.tokens.cache_seconds = 0.0
    st.tokens.authenticate(bearer)
    assert st.tokens.cached(bearer) is None  # no cache configured: every request authenticates
    st.tokens.cache_seconds = 1.0
    assert st.tokens.cached(bearer) is None  # not authenticated yet
    assert st.tokens.authenticate(bearer).token_id == info.id
    assert st.tokens.cached(bearer).token_id == info.id
    assert st.tokens.cached(bearer[:-2] + "xx") is None and st.tokens.cached("malformed") is None and st.tokens.cached(None) is None
    st.tokens.revoke(info.id)  # this process's revocation empties the cache
    assert st.tokens.cached(bearer) is None
    _, other = st.tokens.create("reader")
    st.tokens.authenticate(other)
    time.sleep(1.1)
    assert st.tokens.cached(other) is None  # expired entries are not served
