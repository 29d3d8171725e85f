"""Runners in separate processes: the host lock (exit 7 or --wait), races, and a real SIGKILL mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import storage
from storage.policy.models import POLICY_LABEL, SLOT_LABEL


ROOT = Path(__file__).resolve().parents[1]
STORAGECTL = [sys.executable, "-m", "storage.cli.main"]


def env_for(config_file: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORAGE_")}
    env["STORAGE_CONFIG"] = str(config_file)
    return env


def storagectl(config_file: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*STORAGECTL, *args], env=env_for(config_file), capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def start(config_file: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*STORAGECTL, *args], env=env_for(config_file), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)


def setup_policy(st: storage.Storage, volumes: int = 3) -> str:
    for n in range(volumes):
        st.volumes.create(f"vol{n}", "4M", labels={"backup": "yes"})
    # an interval schedule counts from the creation minute, so its first slot is due at once
    return st.policies.create("p", "snapshot", "1d", selector={"labels": {"backup": "yes"}},
                              retention={"keep_last": 3}).id


LOCK_HOLDER = textwrap.dedent("""
    import sys, time
    from storage.policy.lock import HostLock
    lock = HostLock(sys.argv[1]).acquire()
    print("locked", flush=True)
    time.sleep(120)
""")


def test_second_runner_exits_7_or_waits(st: storage.Storage, config_file: Path) -> None:
    pid = setup_policy(st, volumes=1)
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(st.settings.data_dir / "runner.lock")],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        busy = storagectl(config_file, "run")
        assert busy.returncode == 7, busy.stderr
        assert f"pid {holder.pid}" in busy.stderr and "--wait" in busy.stderr
        busy_json = storagectl(config_file, "run", "--json")
        assert busy_json.returncode == 7
        assert json.loads(busy_json.stdout.strip().splitlines()[-1])["error"]["code"] == "busy"
        waiter = start(config_file, "run", "--wait", "--log-json")
        time.sleep(1.5)
        assert waiter.poll() is None  # still waiting for the lock
        assert st.snapshots.list(labels={POLICY_LABEL: pid}) == []
    finally:
        holder.kill()
        holder.wait(timeout=10)
    out, err = waiter.communicate(timeout=60)
    assert waiter.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["event"] for e in events] == ["runner_start", "start", "item", "finish", "runner_finish"]
    assert len(st.snapshots.list(labels={POLICY_LABEL: pid})) == 1


@pytest.mark.both_catalogs  # the slot claims are catalog rows; the other tests here are about the host lock
def test_concurrent_runners_do_the_work_exactly_once(st: storage.Storage, config_file: Path) -> None:
    pid = setup_policy(st, volumes=3)
    procs = [start(config_file, "run", "--log-json") for _ in range(2)]
    procs += [start(config_file, "run", "--wait", "--log-json")]
    results = [(p.wait(timeout=120), p.communicate()) for p in procs]
    codes = [code for code, _ in results]
    assert set(codes) <= {0, 7} and codes[2] == 0, [err for _, (_, err) in results]
    starts = [line for _, (out, _) in results for line in out.splitlines() if '"event":"start"' in line]
    assert len(starts) == 1  # exactly one runner did the work
    snaps = st.snapshots.list(labels={POLICY_LABEL: pid})
    assert sorted(s.volume_name for s in snaps) == ["vol0", "vol1", "vol2"]
    assert len({s.labels[SLOT_LABEL] for s in snaps}) == 1
    assert [r.status for r in st.policies.history("p")] == ["succeeded"]


STALLING_RUNNER = textwrap.dedent("""
    import sys, time, storage
    st = storage.open(sys.argv[1])
    def sink(event):
        print(event["event"], flush=True)
        if event["event"] == "item":
            print("READY", flush=True)
            time.sleep(300)  # stands still here until the test kills it with SIGKILL
    st.policies.run(on_event=sink)
""")


def test_sigkill_mid_run_next_run_finishes_the_job(st: storage.Storage, config_file: Path) -> None:
    pid = setup_policy(st, volumes=3)
    victim = subprocess.Popen([sys.executable, "-c", STALLING_RUNNER, str(config_file)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env_for(config_file))
    assert victim.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = victim.stdout.readline()
        assert line, victim.stderr.read() if victim.stderr else "runner exited early"
        if line.strip() == "READY":
            break
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    victim.stdout.close()
    assert victim.stderr is not None
    victim.stderr.close()
    made_before = st.snapshots.list(labels={POLICY_LABEL: pid})
    assert len(made_before) == 1
    assert [r.status for r in st.policies.history("p")] == ["running"]  # left behind by the killed runner
    done = storagectl(config_file, "run", "--json")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    items = [e for e in lines if e["event"] == "item"]
    assert sorted((e["volume"], e["reused"]) for e in items) == [
        (made_before[0].volume_name, True), *sorted((v, False) for v in {"vol0", "vol1", "vol2"} - {made_before[0].volume_name})
    ]
    assert lines[-1]["event"] == "report" and lines[-1]["ok"] is True
    assert [r.status for r in st.policies.history("p")] == ["succeeded", "interrupted"]
    assert len(st.snapshots.list(labels={POLICY_LABEL: pid})) == 3


def _write_random(st: storage.Storage, name: str, size: int) -> None:
    vol = st.volumes.get(name)
    with st.host.volume_backend(vol.pool).open_volume(vol.id) as path:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, os.urandom(size), 0)
            os.fsync(fd)
        finally:
            os.close(fd)


def test_sigkill_mid_backup_keeps_old_backups_and_next_run_finishes(st: storage.Storage, config_file: Path) -> None:
    size = 12 * 1024 * 1024
    root = st.settings.data_dir / "objects"
    (root / "kill-repo").mkdir(parents=True)
    repo_url = f"file://{root}/kill-repo"
    for name in ("k1", "k2"):
        st.volumes.create(name, "12M", labels={"kill": "yes"})
        _write_random(st, name, size)
    policy = st.policies.create("kb", "backup", "1d", selector={"labels": {"kill": "yes"}}, retention={"keep_last": 1},
                                backup={"repository": repo_url})
    assert st.policies.run(now_policies=["kb"]).ok  # a manual run: the good backups to protect
    old = {b.id for b in st.backups.list(labels={POLICY_LABEL: policy.id})}
    assert len(old) == 2
    for name in ("k1", "k2"):
        _write_random(st, name, size)  # new data, so the next backups upload again
    st.policies.update("kb", backup={"bandwidth_limit": "4M"})  # about 3 s per volume: time to kill it
    victim = start(config_file, "run", "--log-json")
    assert victim.stdout is not None
    for line in victim.stdout:
        if '"event":"start"' in line:
            break
    time.sleep(1.5)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    victim.communicate()
    backups = st.backups.list(labels={POLICY_LABEL: policy.id})
    assert {b.id for b in backups if b.status == "available"} >= old  # nothing pruned by the killed run
    assert [r.status for r in st.policies.history("kb")] == ["running", "succeeded"]
    done = storagectl(config_file, "run", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["ok"] and sorted(p["id"] for p in report["policies"][0]["pruned"]) == sorted(old)
    good = [b for b in st.backups.list(labels={POLICY_LABEL: policy.id}) if b.status == "available"]
    assert sorted(b.volume_name for b in good) == ["k1", "k2"]
    assert len({b.labels[SLOT_LABEL] for b in good}) == 1 and not {b.id for b in good} & old
    assert [r.status for r in st.policies.history("kb")] == ["succeeded", "interrupted", "succeeded"]
    assert st.backups.verify(repo_url, deep=True).ok  # what the killed upload left behind harmed nothing
