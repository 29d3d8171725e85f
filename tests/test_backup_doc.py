"""The by-hand restore script of docs/backup-format.md restores real backups, plain and encrypted."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import storage
from tests.backup_helpers import MIB, make_image, overwrite, same_bytes

DOC = Path(__file__).resolve().parents[1] / "docs" / "backup-format.md"


def by_hand_script(tmp_path: Path) -> Path:
    text = DOC.read_text()
    section = text.split("## Worked example: restore by hand", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code, "no python block in the worked example"
    script = tmp_path / "restore_by_hand.py"
    script.write_text(code.group(1))
    return script


@pytest.mark.parametrize("encrypted", [False, True])
def test_restore_by_hand_from_the_documented_format(st: storage.Storage, tmp_path: Path, encrypted: bool) -> None:
    image = make_image(tmp_path / "img", 5 * MIB + 77, seed=9, data_ranges=[(0, MIB + 5), (3 * MIB, 2 * MIB + 77)])
    overwrite(image, 4 * MIB, b"compress me " * 40_000)
    key = st.backups.create_key(tmp_path / "key") if encrypted else None
    url = f"file://{st.settings.data_dir}/objects/byhand"
    b = st.backups.create(str(image), repository=url, encryption_key_file=str(key) if key else None)
    repo_dir = st.settings.data_dir / "objects" / "byhand"
    out = tmp_path / "out.img"
    args = [sys.executable, str(by_hand_script(tmp_path)), str(repo_dir), b.id, str(out)] + ([str(key)] if key else [])
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert same_bytes(out, image)
