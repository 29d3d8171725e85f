"""kill -9 at random points of backups, restores and GCs against a real Swift (issue 15).

Each killed command is followed by the next ordinary command (the same one again), with no
`check --repair` in between. After every round: no volume, snapshot or backup in a status of
a dead process, and the rerun succeeded. At the end every backup the catalog calls
``available`` restores byte-identical to the volume's content when it was taken, and a deep
verify of the repository passes.

Commands run through ``storagectl``'s own main() in a child that signals once its imports are
done, so the seeded random delay lands in the operation, not in Python's start-up.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import storage
from storage.domain import TRANSITIONAL_SNAPSHOT_STATUSES, TRANSITIONAL_VOLUME_STATUSES
from tests.backup_helpers import MIB, swift_backup_config

pytestmark = pytest.mark.swift

SEED = 15
VOLUME = 8 * MIB
KILLS_WANTED = 20
HARNESS = (
    "import sys\n"
    "from storage.cli.main import main\n"
    "print('ready', flush=True)\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


class Runner:
    """Runs storagectl commands in a child process; can SIGKILL one after a delay."""

    def __init__(self, cfg: Path, cwd: Path) -> None:
        self.cfg, self.cwd = cfg, cwd
        self.durations: dict[str, float] = {}

    def _start(self, args: list[str]) -> tuple[subprocess.Popen[str], float]:
        proc = subprocess.Popen(
            [sys.executable, "-c", HARNESS, "-c", str(self.cfg), *args], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, cwd=self.cwd, start_new_session=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "ready", (line, proc.stderr.read() if proc.stderr else "")
        return proc, time.monotonic()

    def run(self, kind: str, args: list[str]) -> tuple[int, str, str]:
        proc, started = self._start(args)
        out, err = proc.communicate(timeout=300)
        self.durations[kind] = time.monotonic() - started
        return proc.returncode, out, err

    def kill_during(self, kind: str, args: list[str], rng: random.Random) -> bool:
        """Start the command, SIGKILL it after a random part of its last duration; True when it was
        still running (a real kill), False when it had finished already."""
        delay = rng.uniform(0.02, 1.1 * self.durations.get(kind, 1.0))
        proc, _ = self._start(args)
        time.sleep(delay)
        alive = proc.poll() is None
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate(timeout=60)
        return alive


def _fill(path: str, rng: random.Random, offset: int, length: int) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, rng.randbytes(length), offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def _digest(path: str | Path, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(size))
    return h.hexdigest()


def _stuck(st: storage.Storage) -> list[str]:
    """What ordinary listings show in a status of an operation that is no longer running."""
    out = [f"volume {v.name} {v.status.value}" for v in st.volumes.list() if v.status in TRANSITIONAL_VOLUME_STATUSES]
    out += [f"snapshot {s.name} {s.status.value}" for s in st.snapshots.list() if s.status in TRANSITIONAL_SNAPSHOT_STATUSES]
    out += [f"backup {b.id} creating" for b in st.backups.list() if b.status == "creating"]
    return out


def test_kill_9_at_random_points_leaves_nothing_stuck_and_nothing_unrestorable(
    data_dir: Path, swift_options: dict[str, Any], tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    pool = tmp_path / "pool"
    cfg = swift_backup_config(
        data_dir, swift_options, "swift://swift@kill-9/r", uploaders=2, workers=2, gc_grace_seconds=0,
        extra=f'[pools.default]\ndriver = "file"\npath = "{pool}"\n',
    )
    runner = Runner(cfg, Path(__file__).resolve().parents[1])
    expected: dict[str, str] = {}  # content version label -> sha256 of the volume then
    kills = {"backup": 0, "restore": 0, "gc": 0}
    problems: list[str] = []
    with storage.open(cfg) as st:
        vol = st.volumes.create("v", VOLUME)
        with st.host.open_volume("default", vol.id) as path:
            volume_path = path
        _fill(volume_path, rng, 0, VOLUME)
        version = 0
        expected["0"] = _digest(volume_path, VOLUME)
        code, out, err = runner.run("backup", ["backup", "create", "v", "-l", "version=0", "--json"])
        assert code == 0, err

        plan = ["backup"] * 10 + ["restore"] * 7 + ["gc"] * 7
        rng.shuffle(plan)
        attempts = 0
        restored = 0
        while sum(kills.values()) < KILLS_WANTED or attempts < len(plan):
            kind = plan[attempts % len(plan)]
            attempts += 1
            assert attempts <= 3 * len(plan), f"only {kills} real kills in {attempts} attempts"
            if kind == "backup":
                version += 1  # change 1-3 MiB of the volume: new chunks, garbage for GC later
                for _ in range(rng.randint(1, 3)):
                    _fill(volume_path, rng, rng.randrange(0, VOLUME // MIB) * MIB, MIB)
                expected[str(version)] = _digest(volume_path, VOLUME)
                args = ["backup", "create", "v", "-l", f"version={version}", "--json"]
            elif kind == "restore":
                available = [b for b in st.backups.list() if b.status == "available"]
                target = rng.choice(available)
                restored += 1
                args = ["backup", "restore", target.id, "--new-volume", f"r{restored}", "--json"]
            else:
                backups = [b for b in st.backups.list() if b.status == "available"]
                if len(backups) > 3:  # make garbage: drop the oldest
                    st.backups.delete(backups[0].id)
                args = ["backup", "gc", "--grace", "0", "--json"]
            kills[kind] += runner.kill_during(kind, args, rng)
            # the next ordinary command: the same again (a restore into a fresh name)
            if kind == "restore":
                args = [*args[:-2], f"r{restored}b", "--json"]
            code, out, err = runner.run(kind, args)
            if code != 0:
                problems.append(f"{kind} rerun after kill exited {code}: {err.strip()[-300:]}")
            stuck = _stuck(st)
            if stuck:
                problems.append(f"after {kind} attempt {attempts}: stuck {stuck}")
            if kind == "restore":
                for name in (f"r{restored}", f"r{restored}b"):
                    if any(v.name == name for v in st.volumes.list()):
                        st.volumes.delete(name)  # works from any settled status (error included)
        assert not problems, problems
        assert sum(kills.values()) >= KILLS_WANTED and min(kills.values()) >= 3, kills

        # no backup is available that does not restore byte-identical
        unrestorable = []
        available = [b for b in st.backups.list() if b.status == "available"]
        for b in available:
            out_path = tmp_path / "check.img"
            try:
                st.backups.restore(b.id, to_path=str(out_path))
                if _digest(out_path, VOLUME) != expected[b.labels["version"]]:
                    unrestorable.append(f"{b.id} (version {b.labels['version']}): wrong bytes")
            except storage.errors.StorageError as exc:
                unrestorable.append(f"{b.id}: {exc.message}")
            finally:
                out_path.unlink(missing_ok=True)
        assert unrestorable == [], unrestorable
        assert len(available) >= 4
        report = st.backups.verify(st.backups.settings.repository or "", deep=True)
        assert report.ok, report
        print(json.dumps({"kills": kills, "attempts": attempts, "available": len(available),
                          "durations": {k: round(v, 2) for k, v in runner.durations.items()}}))
