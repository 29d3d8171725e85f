"""Drill 4 (issue 13): PostgreSQL stops while a backup policy runs over 5 volumes.

A private PostgreSQL cluster (scripts/postgres.sh; the session one is shared, so it is never
stopped) holds the catalog. A backup policy over five 4 MiB volumes runs into a directory
repository, bandwidth-limited so that it lasts ~10 s; ~2 s in, PostgreSQL stops for
DRILL4_PG_DOWN seconds (default 20). The run either finishes after the database returns or ends
with its slot failed and the reason named (a typed error, no traceback); the next run of the same
slot completes it; no run, backup or volume is left in a transitional status, and every backup
marked available restores byte-identical to its volume. About 50 s with the default outage.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import storage
from storage.errors import StorageError
from storage.policy.models import POLICY_LABEL
from tests.fixtures_postgres import SCRIPT
from tests.policy_helpers import FakeClock

pytestmark = pytest.mark.slow
MIB = 1024 * 1024
DOWN = float(os.environ.get("DRILL4_PG_DOWN", "20"))
VOLUMES = [f"d4v{i}" for i in range(5)]


@pytest.fixture
def private_pg() -> Iterator[tuple[Path, int]]:
    shm = Path("/dev/shm")
    base = Path(tempfile.mkdtemp(prefix="storage-pg-drill4-", dir=shm if shm.is_dir() else None))
    out = subprocess.run([str(SCRIPT), "start", "--dir", str(base), "--fast", "--json"],
                         capture_output=True, text=True, timeout=120, check=False)
    if out.returncode != 0:
        pytest.fail(f"PostgreSQL did not start: {out.stderr[-2000:]}")
    try:
        yield base, int(json.loads(out.stdout)["port"])
    finally:
        subprocess.run([str(SCRIPT), "stop", "--dir", str(base), "--purge"], check=False, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def _pg(action: str, base: Path, port: int) -> None:
    args = [str(SCRIPT), action, "--dir", str(base)] + (["--port", str(port), "--fast"] if action == "start" else [])
    subprocess.run(args, capture_output=True, timeout=120, check=True)


def _volume_bytes(st: storage.Storage, name: str) -> bytes:
    vol = st.volumes.get(name)
    with st.host.volume_backend(vol.pool).open_volume(vol.id) as path:
        with open(path, "rb") as f:
            return f.read()


def _fill(st: storage.Storage, name: str, seed: int) -> None:
    st.volumes.create(name, "4M", labels={"drill": "4"})
    vol = st.volumes.get(name)
    with st.host.volume_backend(vol.pool).open_volume(vol.id) as path:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, os.urandom(MIB) + bytes([seed]) * MIB + os.urandom(MIB), 0)
            os.fsync(fd)
        finally:
            os.close(fd)


def test_policy_run_rides_out_a_postgres_outage(private_pg: tuple[Path, int], tmp_path: Path) -> None:
    base, port = private_pg
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    repo = tmp_path / "data" / "objects" / "drill4"
    repo.mkdir(parents=True)
    clock = FakeClock("2024-06-02 03:10")
    with storage.open(None, data_dir=str(tmp_path / "data"), catalog={"url": url}) as st:
        st.policies.clock = clock
        for i, name in enumerate(VOLUMES):
            _fill(st, name, i + 1)
        originals = {name: _volume_bytes(st, name) for name in VOLUMES}
        policy = st.policies.create("drill4", "backup", "@daily", selector={"labels": {"drill": "4"}},
                                    retention={"keep_last": 2},
                                    backup={"repository": f"file://{repo}", "verify": "quick", "bandwidth_limit": "2M"})
        clock.set("2024-06-03 00:10")  # the 2024-06-03 slot is due
        outcome: dict = {}

        def first_run() -> None:
            try:
                outcome["report"] = st.policies.run()
            except StorageError as exc:  # the run could not even be recorded: typed, named
                outcome["error"] = exc
            except BaseException as exc:  # noqa: BLE001 - anything else is the defect this drill looks for
                outcome["crash"] = exc

        runner = threading.Thread(target=first_run)
        t0 = time.monotonic()
        runner.start()
        time.sleep(2.0)
        assert runner.is_alive(), f"the run ended before the outage: {outcome}"
        _pg("stop", base, port)
        t_down = time.monotonic()
        time.sleep(DOWN)
        _pg("start", base, port)
        t_up = time.monotonic()
        runner.join(120)
        assert not runner.is_alive(), "the policy run hangs after PostgreSQL came back"
        first_seconds = time.monotonic() - t0
        assert "crash" not in outcome, repr(outcome.get("crash"))
        first = outcome.get("report")
        first_desc = (f"status {first.policies[0].status}, errors {first.failures}" if first
                      else f"{type(outcome['error']).__name__}: {outcome['error']}")

        second = st.policies.run()  # same slot: completes what the first run left
        t_second = time.monotonic() - t_up
        assert second.ok, second.failures
        history = st.policies.history("drill4")
        assert all(r.status not in ("running",) for r in history), [(r.status, r.error) for r in history]
        if first is not None and first.policies[0].status != "succeeded":
            first_record = next(r for r in history if r.id == first.policies[0].run_id)  # both runs share the fake clock's started_at
            assert first.policies[0].errors and first_record.error, "a failed slot must name its reason"

        backups = st.backups.list(labels={POLICY_LABEL: policy.id})
        transitional = [(b.id, b.status) for b in backups if b.status not in ("available", "error")]
        assert not transitional, transitional
        available = [b for b in backups if b.status == "available"]
        assert {st.volumes.get(b.volume_id).name for b in available} == set(VOLUMES)
        assert all(v.status == "available" for v in st.volumes.list()), [(v.name, v.status) for v in st.volumes.list()]
        compared = 0
        for b in available:
            name = st.volumes.get(b.volume_id).name
            st.backups.restore(b.id, new_volume_name=f"r-{b.id[:8]}")
            restored = _volume_bytes(st, f"r-{b.id[:8]}")
            assert restored[: len(originals[name])] == originals[name], f"backup {b.id} of {name} differs"
            compared += len(originals[name])
            st.volumes.delete(f"r-{b.id[:8]}")
    print(f"\ndrill 4: PostgreSQL down {t_up - t_down:.1f}s during a 5-volume backup policy run; first run "
          f"({first_seconds:.1f}s): {first_desc}; second run ({t_second:.1f}s after PostgreSQL started): "
          f"{second.policies[0].status}, {sum(1 for v in second.policies[0].volumes if v.reused)} reused; "
          f"runs {[(r.status, (r.error or '')[:80]) for r in history]}; {len(available)} available backups "
          f"restored, {compared} bytes compared, {len(backups) - len(available)} in error")
