#!/usr/bin/env python3
"""Where one `storagectl backup create` spends its time: a timeline of its phases.

    [BASE=/path/to/other/checkout] .venv/bin/python scripts/bench/backup_phases.py -c CONFIG backup create VOL -r URL --json

Runs storagectl in this process with the backup phases wrapped (open_repository: the Swift
client's import, auth and config GET; the repository lock; the chunk cache; opening the source;
the data pass; ensure_stored's listings; the manifest; the catalog) and prints, to stderr, when
each started (seconds since this process started), its wall time and its main-thread CPU time,
then the process CPU when the command ended. Time measured from outside (``/usr/bin/time``)
minus "end" is the interpreter's exit. BASE puts another checkout first on sys.path (before/after
on the same machine, same Swift). The service's own clock (created_at -> completed_at) covers the
phases from the lock to the data pass and the manifest.
"""

from __future__ import annotations

import atexit
import functools
import importlib
import os
import sys
import time
from typing import Any

T0 = time.monotonic()
if os.environ.get("BASE"):
    sys.path.insert(0, os.environ["BASE"])

PHASES = [
    ("storage.backup.sources", "resolve"),
    ("storage.backup.service", "BackupService.open_repository"),
    ("storage.backup.locks", "RepositoryLock.__enter__"),
    ("storage.backup.cache", "ChunkCache.load"),
    ("storage.backup.sources", "open_source"),
    ("storage.backup.service", "BackupService._base"),
    ("storage.backup.service", "run_backup"),
    ("storage.backup.service", "ensure_stored"),
    ("storage.backup.repository", "Repository.write_manifest"),
    ("storage.backup.cache", "ChunkCache.save"),
    ("storage.backup.locks", "RepositoryLock.__exit__"),
    ("storage.backup.service", "BackupService._update"),
    ("storage.backup.service", "BackupService.create"),
]
rows: list[tuple[str, float, float, float]] = []


def wrap(module: str, qualname: str) -> None:
    owner: Any = importlib.import_module(module)
    *path, name = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    fn = getattr(owner, name)

    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start, cpu = time.monotonic(), time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            rows.append((qualname, start - T0, time.monotonic() - start, time.thread_time() - cpu))

    setattr(owner, name, timed)


def report(imported: float) -> None:
    print(f"{'process start -> backup modules imported':44s} at {imported:6.2f}", file=sys.stderr)
    for name, start, wall, cpu in sorted(rows, key=lambda r: r[1]):
        print(f"{name:44s} at {start:6.2f}  wall {wall:6.3f}  main-thread cpu {cpu:6.3f}", file=sys.stderr)
    t = os.times()
    print(f"{'end of the command':44s} at {time.monotonic() - T0:6.2f}  process cpu {t.user + t.system:.2f}", file=sys.stderr)


def main() -> None:
    import storage.backup.service  # noqa: F401 - the imports a backup needs, timed as one phase

    imported = time.monotonic() - T0
    for module, qualname in PHASES:
        wrap(module, qualname)
    from storage.cli.main import main as storagectl

    atexit.register(report, imported)  # storagectl's own exit runs the atexit handlers
    sys.argv = ["storagectl", *sys.argv[1:]]
    sys.exit(storagectl())


if __name__ == "__main__":
    main()
