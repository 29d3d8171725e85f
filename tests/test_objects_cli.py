"""`storagectl object ...` end to end: local store, the real Swift via config and via ST_* variables."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from storage.cli.main import main
from storage.objects.transfer import object_name_for, plan_upload, safe_local_path
from storage.errors import InvalidInput
from storage.objects.service import choose_default_store

ROOT = Path(__file__).resolve().parents[1]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _tree(base: Path) -> dict[str, str]:
    return {
        str(p.relative_to(base)): hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(base.rglob("*")) if p.is_file()
    }


@pytest.fixture
def upload_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    work = tmp_path / "work"
    (work / "tree" / "sub").mkdir(parents=True)
    (work / "tree" / "a.txt").write_text("alpha\n")
    (work / "tree" / "sub" / "b.bin").write_bytes(os.urandom(700_000))  # above the test segment size
    (work / "tree" / "sub" / "ünï.txt").write_text("unicode\n")
    monkeypatch.chdir(work)
    return work


def test_pure_rules() -> None:
    assert object_name_for("/tmp/a") == "tmp/a"
    assert object_name_for("./x//y/../z") == "x/z"
    with pytest.raises(InvalidInput):
        object_name_for("../up")
    with pytest.raises(InvalidInput, match="cannot be written below"):
        safe_local_path(Path("/d"), "a/../../etc/passwd")
    assert safe_local_path(Path("/d"), "/abs//x") == Path("/d/abs/x")
    assert choose_default_store({"local": "file"}, False) == "local"
    assert choose_default_store({"local": "file"}, True) == "env"
    assert choose_default_store({"local": "file", "sw": "swift"}, True) == "sw"
    assert choose_default_store({"local": "file", "a": "swift", "b": "swift"}, False) == "local"
    assert choose_default_store({"local": "file", "s": "s3"}, False) == "s"


def test_plan_upload_walks_directories(upload_dir: Path) -> None:
    names = [i.name for i in plan_upload(["tree"])]
    assert names == ["tree/a.txt", "tree/sub/b.bin", "tree/sub/ünï.txt"]
    assert [i.name for i in plan_upload(["tree/a.txt"], object_name="renamed")] == ["renamed"]


def test_local_store_round_trip(capsys: pytest.CaptureFixture[str], config_file: Path, upload_dir: Path) -> None:
    base = ["--config", str(config_file)]
    code, out, err = run(capsys, *base, "object", "upload", "c1", "tree", "--json")
    assert code == 0, err
    assert [r["name"] for r in json.loads(out)] == ["tree/a.txt", "tree/sub/b.bin", "tree/sub/ünï.txt"]
    code, out, _ = run(capsys, *base, "object", "list", "c1")
    assert out.splitlines() == ["tree/a.txt", "tree/sub/b.bin", "tree/sub/ünï.txt"]
    code, out, _ = run(capsys, *base, "object", "list", "c1", "--prefix", "tree/", "--delimiter", "/", "--json")
    assert json.loads(out)[0]["name"] == "tree/a.txt" and json.loads(out)[1] == {"subdir": "tree/sub/"}
    code, out, _ = run(capsys, *base, "object", "list", "c1", "--lh")
    assert "684K" in out and out.splitlines()[-1].strip() == "684K"  # total line, like swift list --lh
    code, out, err = run(capsys, *base, "object", "download", "c1", "-D", str(upload_dir / "out"))
    assert code == 0, err
    assert _tree(upload_dir / "out" / "tree") == _tree(upload_dir / "tree")
    code, out, _ = run(capsys, *base, "object", "download", "c1", "tree/a.txt", "-o", "-")
    assert out == "alpha\n"
    code, out, _ = run(capsys, *base, "object", "stat", "c1", "tree/a.txt", "--json")
    assert json.loads(out)["bytes"] == 6
    code, out, _ = run(capsys, *base, "object", "stat", "--json")
    assert json.loads(out)["objects"] == 3
    code, out, err = run(capsys, *base, "object", "stat", "c1", "nope", "--json")
    assert code == 3 and json.loads(out)["error"]["code"] == "not_found"
    code, out, _ = run(capsys, *base, "object", "delete", "c1", "--json")
    assert len(json.loads(out)["deleted"]) == 3
    code, out, _ = run(capsys, *base, "object", "list", "--json")
    assert [c["name"] for c in json.loads(out)] == []


@pytest.mark.swift
def test_swift_from_environment_like_the_swift_cli(
    swift_server: Any, capsys: pytest.CaptureFixture[str], config_file: Path, upload_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in swift_server.cli_env().items():
        monkeypatch.setenv(key, value)
    container = f"cli-{uuid.uuid4().hex[:8]}"
    base = ["--config", str(config_file)]
    code, out, err = run(capsys, *base, "object", "post", container, "--meta", "team=storage", "--json")
    assert code == 0, err
    assert json.loads(out)["metadata"] == {"team": "storage"}
    code, out, err = run(capsys, *base, "object", "upload", container, "tree", "--segment-size", "256K")
    assert code == 0, err
    # the swift CLI sees the same objects, including the segmented one
    env = {**os.environ, **swift_server.cli_env()}
    listing = subprocess.run(
        [str(swift_server.swift_cli), "list", container], env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert listing == ["tree/a.txt", "tree/sub/b.bin", "tree/sub/ünï.txt"]
    code, out, err = run(capsys, *base, "object", "download", container, "tree/sub/b.bin", "-o", str(upload_dir / "b.out"))
    assert code == 0, err
    assert (upload_dir / "b.out").read_bytes() == (upload_dir / "tree" / "sub" / "b.bin").read_bytes()
    code, out, _ = run(capsys, *base, "object", "list", container, "--long")
    assert "tree/sub/b.bin" in out and "700000" in out
    code, out, _ = run(capsys, *base, "object", "delete", container, "--json")
    assert code == 0 and len(json.loads(out)["deleted"]) == 3


@pytest.mark.swift
def test_configured_s3_store_by_url(
    objects_config: Path, capsys: pytest.CaptureFixture[str], upload_dir: Path
) -> None:
    bucket = f"cli-{uuid.uuid4().hex[:8]}"
    base = ["--config", str(objects_config)]
    code, out, err = run(capsys, *base, "object", "upload", bucket, "tree/a.txt", "--url", f"s3://{bucket}", "--json")
    assert code == 0, err
    code, out, _ = run(capsys, *base, "object", "list", "--url", f"s3://s3@{bucket}")
    assert out.splitlines() == ["tree/a.txt"]
    code, out, _ = run(capsys, *base, "object", "list", bucket, "--store", "swift", "--json")
    assert [o["name"] for o in json.loads(out)] == ["tree/a.txt"]  # same account through the Swift API
    code, out, _ = run(capsys, *base, "object", "stores", "--json")
    stores = {s["name"]: s for s in json.loads(out)}
    assert stores["s3"]["options"]["secret_key"] == "***" and stores["swift"]["options"]["key"] == "***"
    code, out, _ = run(capsys, *base, "object", "delete", bucket, "--store", "s3")
    assert code == 0


def test_cli_subprocess_usage_error_has_no_traceback(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "storage.cli.main", "object", "upload", "only-container"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={**os.environ, "STORAGE_DATA_DIR": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)},
    )
    assert out.returncode == 2 and "Missing argument" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.swift
def test_open_url_swift_and_s3(swift_server: Any, objects_config: Path, config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import storage

    container = f"url-{uuid.uuid4().hex[:8]}"
    with storage.open(objects_config) as st:
        loc = st.objects.open_url(f"swift://{container}/pre/fix")
        assert (loc.store_name, loc.container, loc.prefix, loc.url) == ("swift", container, "pre/fix", f"swift://{container}/pre/fix")
        loc.ensure_container().store.put_object(loc.container, loc.key("obj"), b"via url")
        named = st.objects.open_url(f"s3://s3@{container}/pre")
        assert named.store.get_bytes(named.container, named.key("fix/obj")) == b"via url"  # same account via S3
        assert named.clone_store() is not named.store
    for key, value in swift_server.cli_env().items():
        monkeypatch.setenv(key, value)
    with storage.open(config_file) as st:  # nothing configured: ST_AUTH/ST_USER/ST_KEY
        env_loc = st.objects.open_url(f"swift://{container}")
        assert env_loc.store_name == "env" and swift_server.key not in env_loc.url
        assert env_loc.store.get_bytes(container, "pre/fix/obj") == b"via url"
        env_loc.store.delete_object(container, "pre/fix/obj")
        env_loc.store.delete_container(container)
