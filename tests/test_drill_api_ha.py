"""Drills 1 and 2 of issue 13: two real API replicas behind a real HAProxy, 20 clients, PostgreSQL.

Drill 1 kills one replica with SIGKILL at a random moment and starts it again 10 s later: every GET
succeeds (HAProxy retries and redispatches), every create key made exactly one volume, no volume is
left in a transitional status, HAProxy showed the replica DOWN and then UP. Drill 2 drains a replica
(its drain file), waits for HAProxy to take it out, then sends SIGTERM: no request fails and none
needed a retry. Each prints its figures. ``STORAGE_DRILL_SECONDS`` sets the load's length (default
60: drill 1 takes about 75 s and drill 2 about 40 s on 2 shared cores).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time

import pytest

import storage
from storage.domain import TRANSITIONAL_VOLUME_STATUSES
from tests.api_server import STORAGECTL
from tests.drill_load import Figures, Load
from tests.ha_cluster import Cluster, StatusWatch, ha_cluster  # noqa: F401 - fixture

DRILL_SECONDS = float(os.environ.get("STORAGE_DRILL_SECONDS", "60"))
RESTART_AFTER = 10.0


def _volumes(cluster: Cluster) -> list:
    with storage.open(cluster.configs["r1"]) as st:
        return st.volumes.list()


def _check_volumes(cluster: Cluster, figures: Figures, prefix: str) -> tuple[int, int]:
    """Every kept key has exactly one volume (available), every deleted one none, nothing else was
    made; returns (volumes kept, transitional)."""
    vols = [v for v in _volumes(cluster) if v.name.startswith(prefix + "-")]
    by_name: dict[str, list] = {}
    for v in vols:
        by_name.setdefault(v.name, []).append(v)
    transitional = [v for v in vols if v.status in TRANSITIONAL_VOLUME_STATUSES]
    assert not transitional, f"volumes left in a transitional status: {[(v.name, v.status.value) for v in transitional]}"
    for key, vid in figures.kept.items():
        found = by_name.get(f"{prefix}-{key}", [])
        assert [v.id for v in found] == [vid], f"key {key}: volumes {[(v.id, v.status.value) for v in found]}, expected one: {vid}"
        assert found[0].status.value == "available", f"key {key}: {found[0].status.value}"
    for key in figures.deleted:
        assert f"{prefix}-{key}" not in by_name, f"key {key}: deleted by its client, but {by_name[f'{prefix}-{key}']}"
    extra = set(by_name) - {f"{prefix}-{k}" for k in figures.kept}
    assert not extra, f"volumes no client kept (a create made twice, or a delete lost): {sorted(extra)[:10]}"
    return len(vols), len(transitional)


def _watch_file(path, appeared: list[float]) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 120
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    appeared.append(time.monotonic())


def _cleanup(cluster: Cluster, prefix: str) -> None:
    with storage.open(cluster.configs["r1"]) as st:
        for v in st.volumes.list():
            if v.name.startswith(prefix + "-"):
                st.volumes.delete(v.id)


def test_drill1_kill_a_replica(ha_cluster: Cluster) -> None:  # noqa: F811
    """Takes about DRILL_SECONDS + 15 s (75 s by default)."""
    cluster = ha_cluster
    victim = cluster.replicas["r1"]
    before = cluster.proxy.stats()
    rng = random.Random()
    kill_at = rng.uniform(0.2, 0.45) * DRILL_SECONDS
    load = Load(cluster.proxy.url, cluster.tokens["operator"], clients=20, prefix="d1")
    with StatusWatch(cluster.proxy) as watch:
        t0 = time.monotonic()
        load.start()
        time.sleep(kill_at)
        t_kill = time.monotonic()
        victim.stop(sig=signal.SIGKILL)
        time.sleep(RESTART_AFTER)
        t_restart = time.monotonic()
        victim.start()
        t_started = time.monotonic()
        cluster.proxy.wait_status("r1", "UP", timeout=30)
        time.sleep(max(0.0, DRILL_SECONDS - (time.monotonic() - t0)))
        figures = load.finish()
    after = cluster.proxy.stats()
    t_down, t_up = watch.first("r1", "DOWN", t_kill), watch.first("r1", "UP", t_restart)
    retries = sum(s.retries for s in after.values()) - sum(s.retries for s in before.values())
    redispatches = sum(s.redispatches for s in after.values()) - sum(s.redispatches for s in before.values())
    print(f"\ndrill 1 (kill -9 r1 at {kill_at:.1f}s of {DRILL_SECONDS:.0f}s, restart {RESTART_AFTER:.0f}s later): "
          f"{figures.line()}; client gave up: {dict(figures.gave_up)}; creates answered 409 exists-already after a retry: "
          f"{figures.found_after_retry}; GETs cut mid-body and read again: {figures.cut_mid_body}; haproxy retries {retries}, redispatches {redispatches}; "
          f"r1 DOWN {(t_down or 0) - t_kill:.2f}s after the kill, started {t_started - t_restart:.2f}s after the restart, "
          f"UP {(t_up or 0) - t_restart:.2f}s after the restart; volumes kept {len(figures.kept)}, deleted {len(figures.deleted)}; "
          f"transitions {[(round(t - t0, 2), n, s) for t, n, s in watch.transitions if n == 'r1']}")
    for err in figures.errors[:10]:
        print("  ", err)
    _check_volumes(cluster, figures, "d1")
    assert figures.tried["get"] > 100 and figures.tried["create"] > 20, figures.line()
    assert figures.failed["get"] == 0, f"GETs failed: {figures.errors}"
    assert not figures.gave_up, f"operations that never succeeded: {dict(figures.gave_up)}: {figures.errors}"
    # a retry over a dead attempt answers the volume it made (storage.catalog.intents), never 409 "exists already"
    assert figures.found_after_retry == 0, figures.errors
    assert t_down is not None, f"haproxy never showed r1 DOWN: {watch.transitions}"
    assert t_up is not None and t_up > t_down, f"haproxy never showed r1 UP again: {watch.transitions}"
    _cleanup(cluster, "d1")


def test_drill2_drain_then_sigterm(ha_cluster: Cluster) -> None:  # noqa: F811
    """Takes about DRILL_SECONDS / 2 + 10 s (40 s by default)."""
    cluster = ha_cluster
    name, victim = "r2", cluster.replicas["r2"]
    for replica in cluster.replicas:
        cluster.proxy.wait_status(replica, "UP", timeout=30)
    seconds = max(DRILL_SECONDS / 2, 15.0)
    before = cluster.proxy.stats()
    load = Load(cluster.proxy.url, cluster.tokens["operator"], clients=20, prefix="d2")
    load.start()
    time.sleep(seconds / 3)
    t_drain = time.monotonic()
    appeared: list[float] = []
    watcher = threading.Thread(target=_watch_file, args=(cluster.drain_file(name), appeared), daemon=True)
    watcher.start()
    out = subprocess.run([STORAGECTL, "-c", str(cluster.configs[name]), "serve", "--drain", "--json"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert cluster.drain_file(name).exists()
    cluster.proxy.wait_status(name, "DOWN", timeout=30)
    t_out = time.monotonic()
    watcher.join(5)
    out_of_rotation = t_out - appeared[0]
    sessions_at_down = cluster.proxy.stats()[name].sessions
    assert victim.proc is not None
    t_term = time.monotonic()
    proc = victim.proc
    os.killpg(proc.pid, signal.SIGTERM)
    code = proc.wait(60)
    stopped = time.monotonic() - t_term
    victim.proc = None
    time.sleep(max(0.0, seconds - (time.monotonic() - t_drain) - seconds / 3))
    figures = load.finish()
    after = cluster.proxy.stats()
    retries = sum(s.retries for s in after.values()) - sum(s.retries for s in before.values())
    redispatches = sum(s.redispatches for s in after.values()) - sum(s.redispatches for s in before.values())
    print(f"\ndrill 2 (drain r2, SIGTERM once haproxy has it DOWN, {seconds:.0f}s of load): {figures.line()}; "
          f"haproxy retries {retries}, redispatches {redispatches}; r2 out of rotation {out_of_rotation:.2f}s after "
          f"the drain file appeared ({appeared[0] - t_drain:.2f}s after `serve --drain` started), requests sent to it after DOWN {after[name].sessions - sessions_at_down}, exited {code} "
          f"{stopped:.2f}s after SIGTERM; volumes kept {len(figures.kept)}")
    for err in figures.errors[:10]:
        print("  ", err)
    _check_volumes(cluster, figures, "d2")
    assert code == 0
    assert figures.tried["get"] > 50 and figures.tried["create"] > 10, figures.line()
    assert sum(figures.failed.values()) == 0, f"failed requests: {figures.errors}"
    assert sum(figures.retried.values()) == 0 and retries == 0 and redispatches == 0
    assert after[name].sessions == sessions_at_down, "haproxy sent requests to a replica it had taken out"
    # back into rotation: undrain and start it again
    subprocess.run([STORAGECTL, "-c", str(cluster.configs[name]), "serve", "--undrain"], capture_output=True, timeout=60, check=True)
    victim.start()
    cluster.proxy.wait_status(name, "UP", timeout=30)
    _cleanup(cluster, "d2")


@pytest.fixture(autouse=True)
def _need_haproxy() -> None:
    import shutil

    if shutil.which("haproxy") is None:
        pytest.fail("haproxy missing (apt-get install haproxy; scripts/install-deps.sh does)")
