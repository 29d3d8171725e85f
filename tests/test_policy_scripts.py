"""scripts/cron: the crontab line and the systemd units call a runner command that works."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from storage.cli.main import main
from storage.policy.schedule import parse_schedule

ROOT = Path(__file__).resolve().parents[1]
CRON = ROOT / "scripts" / "cron"


def runner_args(command: str) -> list[str]:
    """The arguments after `storagectl` in a command line (redirections dropped)."""
    words = shlex.split(command)
    start = next(i for i, w in enumerate(words) if w.endswith("storagectl")) + 1
    return [w for w in words[start:] if not w.startswith((">", "2>"))]


def test_crontab_line_is_valid_and_its_command_runs(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = [line for line in (CRON / "storage-run.cron").read_text().splitlines()
             if line.strip() and not line.startswith("#") and "=" not in line.split()[0]]
    assert len(lines) == 1
    fields = lines[0].split()
    parse_schedule(" ".join(fields[:5]))
    assert fields[5] == "root"
    args = runner_args(" ".join(fields[6:]))
    assert args[0] == "run"
    assert main(["--config", str(config_file), *args]) == 0
    assert '"event":"runner_finish"' in capsys.readouterr().out


def _unit(name: str) -> dict[str, str]:
    values = {}
    for line in (CRON / name).read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def test_systemd_units(config_file: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    service, timer = _unit("storage-run.service"), _unit("storage-run.timer")
    assert service["Type"] == "oneshot" and service["SuccessExitStatus"] == "7"
    assert timer["Persistent"] == "true" and timer["Unit"] == "storage-run.service"
    args = runner_args(service["ExecStart"])
    assert main(["--config", str(config_file), *args]) == 0
    capsys.readouterr()
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze (systemd) is not installed to verify the unit files")
    venv_ctl = ROOT / ".venv" / "bin" / "storagectl"
    (tmp_path / "storage-run.service").write_text(
        (CRON / "storage-run.service").read_text().replace("/usr/local/bin/storagectl", str(venv_ctl))
    )
    shutil.copy(CRON / "storage-run.timer", tmp_path / "storage-run.timer")
    out = subprocess.run([analyze, "verify", str(tmp_path / "storage-run.service"), str(tmp_path / "storage-run.timer")],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
