"""storagectl ends its process right after the command (storage.cli.main._exit_now): the output,
the log lines, the atexit handlers and the exit code are all still there."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

STORAGECTL = str(Path(sys.executable).parent / "storagectl")

PROBE = (
    "import atexit, sys\n"
    "mark = sys.argv.pop(1)\n"
    "atexit.register(lambda: open(mark, 'w').write('atexit ran'))\n"
    "from storage.cli.main import main\n"
    "main()\n"
    "print('not reached: main() of the process exits itself')\n"
)


def test_the_command_exits_with_its_code_its_whole_output_and_its_atexit_handlers(config_file: Path, tmp_path: Path) -> None:
    mark = tmp_path / "atexit"
    ok = subprocess.run([sys.executable, "-c", PROBE, str(mark), "--config", str(config_file), "exit-codes", "--json"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["0"]  # the whole JSON document, flushed before the exit
    assert "not reached" not in ok.stdout
    assert mark.read_text() == "atexit ran"
    mark.unlink()
    missing = subprocess.run([sys.executable, "-c", PROBE, str(mark), "--config", str(config_file), "volume", "show", "nope", "--json"],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 3, missing.stderr  # not found
    assert json.loads(missing.stdout)["error"]["code"]
    assert mark.read_text() == "atexit ran"


def test_the_console_script_pipes_a_large_listing_whole(config_file: Path) -> None:
    out = subprocess.run([STORAGECTL, "--config", str(config_file), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "Usage" in out.stdout and out.stdout.rstrip().endswith("╯")


def test_a_live_non_daemon_thread_keeps_the_ordinary_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    """_exit_now returns (the ordinary exit then waits for the thread) instead of killing it."""
    from storage.cli import main as cli_main

    exits: list[int] = []
    monkeypatch.setattr(cli_main.os, "_exit", exits.append)
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait, daemon=False)
    worker.start()
    try:
        cli_main._exit_now(0)
    finally:
        stop.set()
        worker.join()
    assert exits == []
