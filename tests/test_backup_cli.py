"""storagectl backup ...: JSON output, exit codes and clear errors (run in-process through main())."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storage.backup import format as fmt
from storage.cli.main import main
from tests.backup_helpers import MIB, delete_chunk, make_image, same_bytes


def run(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, object, str]:
    code = main(["-c", str(config), "backup", *args])
    out, err = capsys.readouterr()
    try:
        doc = json.loads(out) if out.strip() else None
    except ValueError:
        doc = out
    return code, doc, err


def test_cli_end_to_end(capsys: pytest.CaptureFixture[str], config_file: Path, tmp_path: Path) -> None:
    image = make_image(tmp_path / "img", 3 * MIB + 5, seed=2, data_ranges=[(0, MIB), (2 * MIB, MIB + 5)])
    key = tmp_path / "key"
    url = f"file://{config_file.parent}/objects/enc"
    code, doc, _ = run(capsys, config_file, "key", "create", str(key), "--json")
    assert code == 0 and doc == {"key_file": str(key)}
    code, doc, _ = run(capsys, config_file, "create", str(image), "-r", url, "-k", str(key), "--name", "n1", "-l", "a=b", "--json")
    assert code == 0 and isinstance(doc, dict) and doc["status"] == "available" and doc["encrypted"] is True
    bid = doc["id"]
    code, doc, _ = run(capsys, config_file, "list", "--json", "-l", "a=b")
    assert code == 0 and [b["id"] for b in doc] == [bid]  # type: ignore[union-attr]
    code, doc, _ = run(capsys, config_file, "show", bid, "--json")
    assert code == 0 and doc["name"] == "n1"  # type: ignore[index]
    assert str(key.read_text().strip()) not in json.dumps(doc)

    code, doc, _ = run(capsys, config_file, "verify", bid, "--deep", "--json")
    assert code == 0 and doc["ok"] is True  # type: ignore[index]
    out = tmp_path / "out"
    code, doc, _ = run(capsys, config_file, "restore", bid, "--to-path", str(out), "--json")
    assert code == 0 and same_bytes(out, image)
    # restore straight from the repository, without the catalog
    out2 = tmp_path / "out2"
    code, doc, _ = run(capsys, config_file, "restore", "--repository", url, "--manifest", bid, "-k", str(key), "--to-path", str(out2), "--json")
    assert code == 0 and same_bytes(out2, image)

    wrong = tmp_path / "wrong"
    run(capsys, config_file, "key", "create", str(wrong))
    code, doc, err = run(capsys, config_file, "restore", "--repository", url, "--manifest", bid, "-k", str(wrong), "--to-path", str(tmp_path / "x"), "--json")
    assert code == 8 and doc["error"]["code"] == "unauthenticated" and "not the key" in err  # type: ignore[index]

    import storage

    with storage.open(config_file) as st:
        repo = st.backups.open_repository(url, key_file=str(key))
        manifest = repo.read_manifest(repo.location.store, bid)
        delete_chunk(repo, next(c.id for c in manifest.chunks if c))
    code, doc, err = run(capsys, config_file, "verify", url, "--json")
    assert code == 9 and doc["damaged_backups"] == [bid] and "damaged backups" in err  # type: ignore[index]
    code, doc, _ = run(capsys, config_file, "list", "--status", "damaged", "--json")
    assert [b["id"] for b in doc] == [bid]  # type: ignore[union-attr]

    code, doc, _ = run(capsys, config_file, "delete", bid, "--json")
    assert code == 0 and doc == {"deleted": bid}
    code, doc, _ = run(capsys, config_file, "gc", url, "--grace", "0", "-k", str(key), "--json")
    assert code == 0 and doc["chunks_deleted"] == 2 and doc["manifests"] == 0  # type: ignore[index]
    code, doc, _ = run(capsys, config_file, "import", url, "-k", str(key), "--json")
    assert code == 0 and doc == []


def test_cli_clear_errors(capsys: pytest.CaptureFixture[str], config_file: Path, tmp_path: Path) -> None:
    image = make_image(tmp_path / "img", MIB)
    code, doc, _ = run(capsys, config_file, "create", str(image), "--json")
    assert code == 0
    bid = doc["id"]  # type: ignore[index]
    code, _doc, err = run(capsys, config_file, "verify", bid, "--deep", "--sample", "0")
    assert code == 2 and "sample percent 0.0 is not accepted" in err
    import storage

    with storage.open(config_file) as st:
        repo = st.backups.open_repository()
        cfg = json.loads(repo.location.store.get_bytes(repo.container, repo.object_name(fmt.CONFIG_OBJECT)))
        cfg["version"] = 7
        repo.location.store.put_object(repo.container, repo.object_name(fmt.CONFIG_OBJECT), json.dumps(cfg).encode())
    code, doc, err = run(capsys, config_file, "restore", bid, "--to-path", str(tmp_path / "o"), "--json")
    assert code == 10 and "format version 7, newer than this program supports" in err
    code, _doc, err = run(capsys, config_file, "restore", "--manifest", bid, "--to-path", "/tmp/x")
    assert code == 2 and "--manifest needs --repository" in err
    code, _doc, err = run(capsys, config_file, "create", "nope-not-here")
    assert code == 3 and "not a volume, a snapshot or a path" in err
