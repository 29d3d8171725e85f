"""storagectl volume export|unexport|connection-info, export list|reconcile, attach|detach."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from storage.host.attach import protocol_of, refresh_size
from storage.cli.main import main
from storage.errors import InvalidInput
from tests import iscsi_tools as it
from tests.test_export_service import write_config

pytestmark = [pytest.mark.tgt, pytest.mark.loop]

MiB = 1024 * 1024


@pytest.fixture
def cli(data_dir: Path, tgtd_clean, capsys: pytest.CaptureFixture[str]):
    cfg = write_config(data_dir, tgtd_clean.portal, tgtd_clean.control_port, manage=False)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["-c", str(cfg), *args])
        out, err = capsys.readouterr()
        return code, out, err

    yield run
    code, out, _ = run("export", "list", "--json")
    for exp in json.loads(out) if code == 0 else []:
        run("volume", "unexport", exp["volume_id"])
    code, out, _ = run("volume", "list", "--json")
    for vol in json.loads(out) if code == 0 else []:
        run("volume", "delete", vol["id"], "--force")


def test_cli_export_flow_hides_secret_unless_asked(cli, tmp_path: Path) -> None:
    assert cli("volume", "create", "cli1", "8M")[0] == 0
    secret_file = tmp_path / "secret"
    secret_file.write_text("Cli-Secret-4321\n")
    code, out, err = cli("volume", "export", "cli1", "--chap-secret-file", str(secret_file), "--json")
    assert code == 0, err
    exp = json.loads(out)
    assert exp["auth_method"] == "CHAP" and exp["lun"] == 1
    assert "Cli-Secret-4321" not in out + err

    code, out, _ = cli("volume", "connection-info", "cli1", "--json")
    hidden = json.loads(out)
    assert code == 0 and hidden["auth_password"] is None and "Cli-Secret-4321" not in out
    code, out, _ = cli("volume", "connection-info", "cli1", "--show-secret", "--json")
    info = json.loads(out)
    assert info["auth_password"] == "Cli-Secret-4321"
    url = it.iscsi_url(info["target_portal"], info["target_iqn"], 1, info["auth_username"], info["auth_password"])
    assert it.total_size(url) == 8 * MiB

    target = tmp_path / "conn.json"
    code, out, _ = cli("volume", "connection-info", "cli1", "--show-secret", "-o", str(target), "--json")
    assert code == 0 and stat.S_IMODE(os.stat(target).st_mode) == 0o600 and "Cli-Secret-4321" not in out
    assert json.loads(target.read_text()) == info

    code, out, _ = cli("export", "list", "--json")
    assert [e["volume_name"] for e in json.loads(out)] == ["cli1"] and "Cli-Secret-4321" not in out
    code, out, _ = cli("export", "reconcile", "--json")
    assert code == 0 and json.loads(out)["unchanged"] == ["cli1"]
    code, out, _ = cli("volume", "export", "cli1", "--json")
    assert code == 4 and json.loads(out)["error"]["code"] == "conflict"
    code, out, _ = cli("volume", "unexport", "cli1", "--json")
    assert code == 0 and json.loads(out)["volume_name"] == "cli1"
    code, out, _ = cli("volume", "show", "cli1", "--json")
    assert json.loads(out)["status"] == "available"


def test_cli_bad_input_exit_codes(cli, tmp_path: Path) -> None:
    cli("volume", "create", "cli2", "8M")
    code, out, err = cli("volume", "export", "cli2", "--initiator", "not-an-iqn", "--json")
    assert code == 2 and "not a valid iSCSI name" in json.loads(out)["error"]["message"]
    short = tmp_path / "short"
    short.write_text("Tiny-Secret")
    code, out, err = cli("volume", "export", "cli2", "--chap-secret-file", str(short), "--json")
    assert code == 2 and "11 characters" in out and "Tiny-Secret" not in out + err
    code, out, _ = cli("volume", "connection-info", "cli2", "--json")
    assert code == 3


def test_cli_attach_detach_local(cli, tmp_path: Path, loop_device) -> None:
    dev, _ = loop_device(4 * MiB)
    info = tmp_path / "local.json"
    info.write_text(json.dumps({"device_path": dev}))
    code, out, err = cli("attach", "--connection-info", str(info), "--json")
    assert code == 0, err
    assert json.loads(out)["path"] == dev and json.loads(out)["protocol"] == "LOCAL"
    assert refresh_size({"device_path": dev}) == 4 * MiB  # LOCAL: os-brick reads the device size
    code, out, _ = cli("detach", "--connection-info", str(info), "--json")
    assert code == 0 and json.loads(out) == {"detached": True}


def test_cli_attach_iscsi_needs_secret_and_initiator(cli, tmp_path: Path) -> None:
    info = {
        "target_portal": "127.0.0.1:3260", "target_iqn": "iqn.2026-11.host.storage:volume-x", "target_lun": 1,
        "auth_method": "CHAP", "auth_username": "u", "auth_password": None, "volume_id": "x",
    }  # fmt: skip
    path = tmp_path / "iscsi.json"
    path.write_text(json.dumps(info))
    code, out, _ = cli("attach", "--connection-info", str(path), "--json")
    assert code == 2 and "--show-secret" in json.loads(out)["error"]["message"]
    if shutil.which("iscsiadm") is None:  # this host: open-iscsi cannot run (no iscsi_tcp)
        path.write_text(json.dumps({**info, "auth_password": "Attach-Secret-1"}))
        code, out, err = cli("attach", "--connection-info", str(path), "--json")
        assert code == 10 and "open-iscsi" in out and "Attach-Secret-1" not in out + err
    code, out, _ = cli("attach", "--connection-info", str(tmp_path / "missing.json"), "--json")
    assert code == 2


def test_protocol_of_shapes() -> None:
    assert protocol_of({"device_path": "/dev/loop0"}) == "LOCAL"
    assert protocol_of({"target_portal": "h:1", "target_iqn": "iqn.x", "target_lun": 0, "auth_method": None}) == "ISCSI"
    with pytest.raises(InvalidInput, match="target_lun"):
        protocol_of({"target_portal": "h:1", "target_iqn": "iqn.x"})
    with pytest.raises(InvalidInput, match="no target_iqn"):
        protocol_of({"volume_id": "x"})


def test_os_brick_setup_in_a_fresh_process(tmp_path: Path) -> None:
    """os_brick.setup needs oslo.concurrency's options registered first (it failed in the guest)."""
    import subprocess
    import sys

    code = (
        "from pathlib import Path; from storage.host import attach; attach._setup(Path(%r));"
        "from oslo_config import cfg; print(cfg.CONF.os_brick.lock_path)" % str(tmp_path / "locks")
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(tmp_path / "locks")
