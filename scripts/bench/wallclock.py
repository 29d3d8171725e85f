"""Wall-clock measurement of whole commands for the benchmarks (no project imports).

Every sample is one child process from fork to exit: wall clock, the child's user+sys CPU
(wait4 rusage, which includes its threads and reaped children), its peak RSS (from GNU time's
own fork: wait4's ru_maxrss of a child of this process includes this process's RSS at the fork,
Linux carries the parent's high-water mark across exec), and the CPU the
Swift servers spent meanwhile (from /proc, processes whose command line names the Swift
state dir). Medians with min-max summarise interleaved rounds.
"""

from __future__ import annotations

import os
import re
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
GNU_TIME = "/usr/bin/time"  # Debian package `time`
NO_BYTECODE = "PYTHONDONTWRITEBYTECODE"  # a test environment may set it; a user's install caches bytecode


def user_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a measured command gets: ours without PYTHONDONTWRITEBYTECODE, plus extra."""
    return {**{k: v for k, v in os.environ.items() if k != NO_BYTECODE}, **(extra or {})}


def compile_tree(root: Path) -> None:
    """Byte-compile a source tree (as pip does at install), so the first measured command imports cached bytecode."""
    import compileall

    compileall.compile_dir(str(root), quiet=1, workers=0)


@dataclass
class Sample:
    wall: float
    cpu: float  # user + sys of the command and its children
    rss_mib: int
    server_cpu: float  # Swift servers' user + sys meanwhile
    out: str


def server_cpu(marker: str | None) -> float:
    """User+sys seconds of the live processes whose command line contains marker (the Swift dir)."""
    if not marker:
        return 0.0
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if marker.encode() not in cmdline:
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return total / TICK


def process_cpu(pid: int) -> float:
    """User+sys seconds so far of one live process (all its threads), e.g. a server the command asked."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( +)(\S+)")


def import_rows(stderr: str) -> Iterator[tuple[int, int, int, str]]:
    """(self µs, cumulative µs, depth, module) of each line `python -X importtime` wrote (depth 0:
    imported by the program itself)."""
    for line in stderr.splitlines():
        m = IMPORT_LINE.match(line)
        if m:
            yield int(m.group(1)), int(m.group(2)), (len(m.group(3)) - 1) // 2, m.group(4)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serve(storagectl: str, cfg: Path, log: Path, *, workers: int = 1) -> tuple[subprocess.Popen[bytes], str]:
    """`storagectl serve` on a free port of 127.0.0.1 (without STORAGE_* variables, its stderr to
    ``log``), once its /healthz answers: the process and its base URL. The caller stops it."""
    port = free_port()
    env = {k: v for k, v in user_env().items() if not k.startswith("STORAGE_")}
    with log.open("wb") as err:  # the server keeps its own copy
        server = subprocess.Popen([storagectl, "-c", str(cfg), "serve", "--port", str(port), "--workers", str(workers),
                                   "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=err, env=env,
                                  start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as answer:
                answer.read()
                return server, url
        except OSError:
            if server.poll() is not None:
                break
            time.sleep(0.1)
    server.kill()
    raise SystemExit(f"storagectl serve did not answer on {url} (exit {server.poll()}): {log.read_text()[-2000:]}")


def timed(cmd: list[str], *, env: dict[str, str] | None = None, cwd: str | None = None,
          swift_marker: str | None = None) -> Sample:
    """Run cmd to completion; raise SystemExit with its stderr when it fails."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r") as rss:
        wrapped = [GNU_TIME, "-f", "%M", "-o", rss.name, *cmd] if os.path.exists(GNU_TIME) else cmd
        before = server_cpu(swift_marker)
        t0 = time.monotonic()
        proc = subprocess.Popen(wrapped, stdout=out, stderr=err, env=user_env(env), cwd=cwd)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        spent = server_cpu(swift_marker) - before
        out.seek(0)
        err.seek(0)
        if proc.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.read().decode(errors='replace')[-2000:]}")
        peak_kib = rss_kib(rss.read()) if wrapped is not cmd else usage.ru_maxrss
        return Sample(wall, usage.ru_utime + usage.ru_stime, int(peak_kib / 1024), spent, out.read().decode(errors="replace"))


def rss_kib(text: str) -> int:
    """GNU time's %M (KiB) from its -o file (the last line: a failing command adds a status line first)."""
    lines = [x for x in text.split() if x.isdigit()]
    if not lines:
        raise SystemExit(f"no peak RSS from {GNU_TIME}: {text[-200:]!r}")
    return int(lines[-1])


@dataclass
class Series:
    samples: list[Sample] = field(default_factory=list)
    extra: list[float] = field(default_factory=list)  # e.g. the service's own seconds

    def add(self, sample: Sample, extra: float | None = None) -> Sample:
        self.samples.append(sample)
        if extra is not None:
            self.extra.append(extra)
        return sample

    @property
    def wall(self) -> float:
        return statistics.median(s.wall for s in self.samples)

    def spread(self, unit: str = "s") -> str:
        """'median [min-max]' of the wall clock."""
        walls = [s.wall for s in self.samples]
        if len(walls) == 1:
            return f"{walls[0]:.2f} {unit}"
        return f"{statistics.median(walls):.2f} [{min(walls):.2f}-{max(walls):.2f}] {unit}"

    def cpu_per_gib(self, nbytes: int) -> float:
        return statistics.median(s.cpu for s in self.samples) / (nbytes / 2**30)

    def server_per_gib(self, nbytes: int) -> float:
        return statistics.median(s.server_cpu for s in self.samples) / (nbytes / 2**30)

    @property
    def rss(self) -> int:
        return max(s.rss_mib for s in self.samples)

    def own(self) -> str:
        return f"{statistics.median(self.extra):.2f} s" if self.extra else ""


def rotated(items: list[str], round_no: int) -> list[str]:
    """Interleave: each round starts with the next tool, so drift and warm caches spread evenly."""
    k = round_no % len(items)
    return items[k:] + items[:k]
