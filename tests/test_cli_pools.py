"""`storagectl pools` fits an 80-column terminal without wrapping or truncating its numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from storage.units import format_size

STORAGECTL = str(Path(sys.executable).with_name("storagectl"))


def test_pools_table_fits_80_columns(data_dir: Path) -> None:
    (data_dir / "p1").mkdir()
    (data_dir / "p2").mkdir()
    config = data_dir / "storage.toml"
    config.write_text(
        f'data_dir = "{data_dir}"\ndefault_pool = "default"\n'
        f'[pools.default]\ndriver = "file"\npath = "{data_dir / "p1"}"\novercommit_ratio = 12.5\n'
        f'[pools.archive-pool-with-a-rather-long-name]\ndriver = "file"\npath = "{data_dir / "p2"}"\n'
        f'[pools.vg-missing]\ndriver = "lvm"\nvg_name = "no-such-vg-here"\n'
    )
    env = {**os.environ, "COLUMNS": "80", "STORAGE_CONFIG": str(config)}
    as_json = subprocess.run([STORAGECTL, "pools", "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert as_json.returncode == 0, as_json.stderr
    table = subprocess.run([STORAGECTL, "pools"], env=env, capture_output=True, text=True, timeout=60)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines and max(len(line) for line in lines) <= 80, table.stdout
    pools = json.loads(as_json.stdout)
    numbers = []
    for p in pools:
        if p.get("error"):
            continue
        numbers += [format_size(p[k]) for k in ("total_bytes", "free_bytes", "provisioned_bytes", "allocated_bytes")]
        numbers.append(f"{p['overcommit_ratio']:g}")
    assert "12.5" in numbers
    cells = {cell.strip() for line in lines for cell in line.replace("┃", "│").split("│")}
    missing = [n for n in numbers if n not in cells]
    assert not missing, f"numbers wrapped or truncated: {missing}\n{table.stdout}"
    header = next(line for line in lines if "Pool" in line)
    assert "…" not in header, f"headers truncated:\n{table.stdout}"


def test_widest_numbers_stay_whole_at_80_columns(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Worst-case cells (5-character sizes, a long ratio, long names and a long error) at width 80."""
    from types import SimpleNamespace

    from rich.console import Console

    from storage.cli import common
    from storage.cli.inventory import POOL_NUMBERS, pool_rows

    def pool(name: str, error: str | None = None, default: bool = False) -> SimpleNamespace:
        return SimpleNamespace(
            name=name, default=default, driver="lvm-thin-extra", error=error, total_bytes=1023 * 1024**5,
            free_bytes=1000 * 1024**4, provisioned_bytes=1023 * 1024**4, allocated_bytes=999 * 1024**3,
            overcommit_ratio=12.75, capabilities={"copy_method": "reflink-or-copy"},
        )

    items = [pool("a-pool-name-that-goes-on-and-on-and-on", default=True), pool("vg0"),
             pool("broken", error="LVM volumes need the kernel's device-mapper " * 3)]
    columns, rows = pool_rows(items)
    buffer = Console(width=80, file=__import__("io").StringIO(), force_terminal=False)
    monkeypatch.setattr(common, "console", buffer)
    common.print_table(rows, columns, numeric=POOL_NUMBERS)
    out = buffer.file.getvalue()
    assert max(len(line) for line in out.splitlines()) <= 80, out
    for value in ("1023P", "1000T", "1023T", "999G", "12.75"):
        assert f" {value} " in out, f"{value} wrapped or cut:\n{out}"
    header = next(line for line in out.splitlines() if "Pool" in line)
    assert all(f" {col} " in header for col in POOL_NUMBERS), header
