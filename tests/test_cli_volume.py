"""`storagectl volume|snapshot|pools|host devices` through storage.cli.main.main and the installed binary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from storage.cli.main import main
from tests.volume_helpers import MIB, loop_hygiene, read_at, requires_loop, write_at  # noqa: F401

pytestmark = [pytest.mark.loop, requires_loop]  # the CLI on PostgreSQL: tests/test_catalog_postgres.py


@pytest.fixture
def cli(config_file: Path, loop_hygiene: Path, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    def run(*args: str, code: int = 0) -> str:
        rc = main(["--config", str(config_file), *args])
        out, err = capsys.readouterr()
        assert rc == code, f"storagectl {' '.join(args)} -> {rc}\nstdout: {out}\nstderr: {err}"
        return out if code == 0 or "--json" in args else " ".join(err.split())  # Rich wraps stderr

    return run


def js(text: str):  # type: ignore[no-untyped-def]
    return json.loads(text)


def test_volume_lifecycle_json(cli) -> None:  # type: ignore[no-untyped-def]
    vol = js(cli("volume", "create", "web", "512M", "--label", "app=web", "--json"))
    assert vol["size_bytes"] == 512 * MIB and vol["status"] == "available" and vol["labels"] == {"app": "web"}
    att = js(cli("volume", "attach", "web", "--json"))
    dev = att["attached_device"]
    assert dev.startswith("/dev/loop") and att["status"] == "in-use"
    write_at(dev, 0, b"first")
    snap = js(cli("snapshot", "create", "web", "web-s1", "--json"))
    assert snap["volume_name"] == "web"
    write_at(dev, 0, b"later")
    ext = js(cli("volume", "extend", "web", "1G", "--json"))
    assert ext["size_bytes"] == 1024 * MIB and ext["status"] == "in-use"
    assert cli("volume", "detach", "web", "--json") and js(cli("volume", "show", "web", "--json"))["attached_device"] is None
    assert js(cli("volume", "revert", "web", "web-s1", "--json"))["status"] == "available"
    clone = js(cli("volume", "clone", "web", "web2", "--json"))
    assert clone["size_bytes"] == 1024 * MIB
    dev2 = js(cli("volume", "attach", "web2", "--json"))["attached_device"]
    assert read_at(dev2, 0, 5) == b"first"
    cli("volume", "detach", "web2")
    listed = js(cli("volume", "list", "--json"))
    assert [v["name"] for v in listed] == ["web", "web2"]
    assert [v["name"] for v in js(cli("volume", "list", "--label", "app=web", "--json"))] == ["web"]  # clones do not inherit labels
    assert js(cli("volume", "update", "web2", "--name", "web-copy", "--clear-labels", "--json"))["labels"] == {}
    assert [s["name"] for s in js(cli("snapshot", "list", "--volume", "web", "--json"))] == ["web-s1"]
    assert js(cli("snapshot", "show", "web-s1", "--json"))["status"] == "available"
    err = js(cli("volume", "delete", "web", "--json", code=4))
    assert err["error"]["code"] == "conflict" and "snapshot" in err["error"]["message"]
    assert js(cli("volume", "delete", "web", "--cascade", "--wipe", "zero", "--json"))["name"] == "web"
    cli("snapshot", "list")  # empty table renders
    assert js(cli("volume", "delete", "web-copy", "--json"))["wipe"] == "none"
    assert js(cli("volume", "list", "--json")) == []


def test_human_output(cli) -> None:  # type: ignore[no-untyped-def]
    out = cli("volume", "create", "db", "10G")
    assert "db" in out and "10G" in out
    assert "available" in cli("volume", "list")
    out = cli("snapshot", "create", "db")
    assert "db-" in out  # auto-generated name
    assert "before-upgrade" in cli("snapshot", "create", "db", "--name", "before-upgrade")
    assert "db" in cli("snapshot", "list")
    pools = cli("pools")
    assert "default" in pools and "file" in pools
    dev = cli("volume", "attach", "db").strip()
    assert dev.startswith("/dev/loop")
    cli("snapshot", "revert", cli("snapshot", "list", "--json") and js(cli("snapshot", "list", "--json"))[0]["name"], code=4)
    cli("volume", "detach", "db")
    cli("volume", "delete", "db", "--cascade")


@pytest.mark.parametrize(
    "args, code, needle",
    [
        (["volume", "create", "v", "0"], 2, "greater than zero"),
        (["volume", "create", "v", "--", "-1"], 2, "accepted"),
        (["volume", "create", "v", "10X"], 2, "not a size"),
        (["volume", "create", "a/b", "1M"], 2, "not accepted"),
        (["volume", "create", "..", "1M"], 2, "not accepted"),
        (["volume", "create", "x" * 129, "1M"], 2, "129 characters"),
        (["volume", "create", "v", "1M", "--label", "novalue"], 2, "label"),
        (["volume", "create", "v", "1M", "--pool", "nope"], 3, "not configured"),
        (["volume", "show", "ghost"], 3, "not found"),
        (["snapshot", "delete", "ghost"], 3, "not found"),
        (["volume", "delete", "ghost", "--wipe", "shred"], 3, "not found"),
    ],
)
def test_bad_input_exit_codes(cli, args: list[str], code: int, needle: str) -> None:  # type: ignore[no-untyped-def]
    err = cli(*args, code=code)
    assert needle in err
    payload = js(cli(*args, "--json", code=code)) if "--" not in args else None
    if payload:
        assert payload["error"]["message"]


def test_shrink_and_wipe_mode_refused(cli) -> None:  # type: ignore[no-untyped-def]
    cli("volume", "create", "v", "8M")
    assert "shrinking is refused" in cli("volume", "extend", "v", "4M", code=2)
    assert "wipe mode" in cli("volume", "delete", "v", "--wipe", "shred", code=2)


def test_host_devices_and_exit_codes(cli) -> None:  # type: ignore[no-untyped-def]
    report = js(cli("host", "devices", "--json"))
    assert report["lsblk"]["available"] and "blockdevices" in report["lsblk"]["data"]
    assert report["losetup"]["available"]
    if not report["lvm_available"]:
        assert "not installed" in report["lvm_message"]
    human = cli("host", "devices")
    assert "lsblk" in human and "losetup" in human
    assert js(cli("exit-codes", "--json"))["4"].startswith("conflict")


def test_installed_binary(config_file: Path, loop_hygiene: Path) -> None:
    exe = Path(sys.executable).parent / "storagectl"
    env = {**os.environ, "STORAGE_CONFIG": str(config_file)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, timeout=120)

    made = run("volume", "create", "bin", "64M", "--json")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["size_bytes"] == 64 * MIB
    dev = run("volume", "attach", "bin").stdout.strip()
    assert dev.startswith("/dev/loop")
    refused = run("volume", "delete", "bin")
    assert refused.returncode == 4 and "attached" in refused.stderr  # exit code 4: conflict
    wiped = run("volume", "delete", "bin", "--force", "--wipe", "zero")
    assert wiped.returncode == 0 and "deleted volume bin" in wiped.stdout, wiped.stderr
    assert run("volume", "show", "bin").returncode == 3  # exit code 3: not found
