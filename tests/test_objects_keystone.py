"""Swift through a real Keystone v3: the store, the CLI's OS_* variables, a backup, bad credentials."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

import storage
from backends.object.swift.store import SwiftStore
from storage.cli.main import main
from storage.errors import AuthenticationFailed
from tests.backup_helpers import MIB, make_image, same_bytes
from tests.fixtures_keystone import KeystoneSwift
from tests.fixtures_swift import SwiftServer

pytestmark = [pytest.mark.swift]


def test_store_authenticates_with_keystone_and_lands_in_the_projects_account(
    keystone_swift: KeystoneSwift, swift_server: SwiftServer
) -> None:
    store = SwiftStore({**keystone_swift.store_options(), "segment_size": 256 * 1024})
    container = f"ks-{uuid.uuid4().hex[:8]}"
    store.create_container(container)
    big = os.urandom(600 * 1024)  # above the segment size: a Static Large Object
    store.put_object(container, "dir/big.bin", big)
    store.put_object(container, "dir/small.txt", b"through keystone")
    assert store.get_bytes(container, "dir/big.bin") == big
    assert store.get_bytes(container, "dir/small.txt", (8, 8)) == b"keystone"
    assert [o.name for o in store.list_objects(container)] == ["dir/big.bin", "dir/small.txt"]
    # the swift CLI, authenticating with the same Keystone, sees them in the project's account
    env = {**os.environ, **keystone_swift.os_env()}
    stat = subprocess.run([str(swift_server.swift_cli), "--auth-version", "3", "stat"], env=env,
                          capture_output=True, text=True, check=True).stdout
    assert f"AUTH_{keystone_swift.project_id}" in stat
    listing = subprocess.run([str(swift_server.swift_cli), "--auth-version", "3", "list", container], env=env,
                             capture_output=True, text=True, check=True).stdout.split()
    assert listing == ["dir/big.bin", "dir/small.txt"]
    store.close()


def test_wrong_keystone_password_is_a_clear_error_without_the_password(keystone_swift: KeystoneSwift) -> None:
    wrong = "not-the-password-" + uuid.uuid4().hex[:6]
    store = SwiftStore({**keystone_swift.store_options(), "password": wrong, "retries": 0})
    with pytest.raises(AuthenticationFailed) as caught:
        store.stat_container("anything")
    message = str(caught.value)
    assert "rejected the credentials of user 'demo'" in message
    assert wrong not in message and keystone_swift.password not in message


def test_cli_reads_os_variables_like_the_swift_cli(
    keystone_swift: KeystoneSwift, config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key in ("ST_AUTH", "ST_USER", "ST_KEY"):
        monkeypatch.delenv(key, raising=False)
    for key, value in keystone_swift.os_env().items():
        monkeypatch.setenv(key, value)
    src = tmp_path / "hello.txt"
    src.write_text("hello from the CLI")
    container = f"kscli-{uuid.uuid4().hex[:8]}"
    base = ["--config", str(config_file)]
    assert main([*base, "object", "upload", container, str(src), "--object-name", "hello.txt"]) == 0
    capsys.readouterr()
    assert main([*base, "object", "list", container, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [o["name"] for o in listed] == ["hello.txt"]
    out = tmp_path / "back.txt"
    assert main([*base, "object", "download", container, "hello.txt", "-o", str(out)]) == 0
    assert out.read_text() == "hello from the CLI"
    capsys.readouterr()
    assert main([*base, "object", "stat", container, "--json"]) == 0
    assert keystone_swift.password not in capsys.readouterr().out


def test_backup_and_restore_through_keystone_authenticated_swift(
    keystone_swift: KeystoneSwift, data_dir: Path, tmp_path: Path
) -> None:
    options = "\n".join(f"{k} = {json.dumps(v)}" for k, v in keystone_swift.store_options().items())
    cfg = data_dir / "keystone.toml"
    cfg.write_text(f'data_dir = "{data_dir}"\n\n[object_stores.ks]\ntype = "swift"\n{options}\n')
    image = make_image(tmp_path / "img", 5 * MIB + 123, seed=31, data_ranges=[(0, 2 * MIB), (4 * MIB, MIB + 123)])
    with storage.open(cfg) as st:
        backup = st.backups.create(str(image), repository=f"swift://ks@ks-backups-{uuid.uuid4().hex[:6]}")
        assert backup.status == "available"
        assert st.backups.verify(backup.id, deep=True).ok
        out = tmp_path / "restored"
        st.backups.restore(backup.id, to_path=str(out))
    assert same_bytes(out, image)
