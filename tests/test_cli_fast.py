"""The CLI's fast entry point (storage/cli/fast.py) prints exactly what the full CLI prints.

Each case runs the fast path in process (it must answer, not fall back) and the full CLI
(`python -m storage.cli.main`) in a subprocess on the same catalog, and compares the bytes and
exit code. Cases the fast path must leave to the full CLI answer None there, and the console
entry point then prints what the full CLI prints (errors included).
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage.cli import fast
from storage.cli.fast import HELP_ENV
from storage.cli import table
from storage.cli.table import RICH_ENV

ROOT = Path(__file__).resolve().parents[1]
STORAGECTL = str(Path(sys.executable).parent / "storagectl")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in HELP_ENV + RICH_ENV and not k.startswith("STORAGE_")}
    return {**env, **extra}


def full(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-m", "storage.cli.main", *args], capture_output=True, text=True,
                          encoding="utf-8", env=env or clean_env(), cwd=ROOT, timeout=120)  # fmt: skip
    return proc.returncode, proc.stdout, proc.stderr


def entry_point(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = subprocess.run([STORAGECTL, *args], capture_output=True, text=True, encoding="utf-8",
                          env=env or clean_env(), timeout=120)  # fmt: skip
    return proc.returncode, proc.stdout, proc.stderr


def quick(args: list[str], env: dict[str, str] | None = None) -> tuple[int | None, str]:
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    code = fast.answer(args, env if env is not None else clean_env(), out)
    out.flush()
    return code, out.buffer.getvalue().decode()  # type: ignore[attr-defined]


def fill(config: Path, volumes: int, backups: int, *, unicode: bool = False) -> None:
    """Volumes and backups of many shapes: labels, attachments, statuses, names, sources,
    microsecond timestamps, a non-ASCII label (JSON escapes it)."""
    import storage
    from storage.backup import records
    from storage.catalog.volumes import AttachmentRow, VolumeRow

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    statuses = ("available", "in-use", "error", "available")
    with storage.open(config) as st, st.catalog.session() as s:
        ids = []
        for i in range(volumes):
            labels = {"tier": "gold" if i % 2 else "silver", "n": str(i)} if i % 3 else {}
            if i == 4 and unicode:
                labels["city"] = "Zürich"
            row = VolumeRow(name=f"vol-{i:03d}", size_bytes=(i + 1) << (20 + i % 15), pool="default" if i % 4 else "fast",
                            status=statuses[i % 4], labels=labels, created_at=t0 + timedelta(seconds=i, microseconds=i * 7),
                            updated_at=t0, description="d" if i == 2 else None, host="h1" if i % 2 else None)  # fmt: skip
            s.add(row)
            s.flush()
            ids.append(row.id)
            if statuses[i % 4] == "in-use":
                s.add(AttachmentRow(volume_id=row.id, device=f"/dev/loop{i}", host="h1"))
        for i in range(backups):
            s.add(records.new_row(id=f"00000000-0000-0000-0000-{i:012d}", repository="file:///tmp/repo",
                                  name=f"b{i}" if i % 2 else None, volume_name=f"vol-{i % max(volumes, 1):03d}" if i % 5 else None,
                                  volume_id=ids[i % len(ids)] if ids and i % 3 == 0 else None,
                                  source="/dev/sdz" if i % 5 == 0 else None, status=("available", "error", "damaged")[i % 3],
                                  size_bytes=i << 30, stored_bytes=i << 19, new_chunk_count=i, dedup_chunk_count=2 * i,
                                  labels={"k": "v"} if i % 2 else {}, owner="gone-host:1:1",
                                  created_at=t0 + timedelta(minutes=i, microseconds=i), completed_at=None if i % 4 else t0))  # fmt: skip


@pytest.fixture
def full_config(config_file: Path) -> Path:
    fill(config_file, 14, 11)
    return config_file


@pytest.fixture
def empty_config(config_file: Path) -> Path:
    import storage

    with storage.open(config_file) as st:
        st.catalog.engine  # noqa: B018 - creates the catalog at head
    return config_file


LISTINGS = [
    ["volume", "list"], ["volume", "list", "--json"], ["backup", "list"], ["backup", "list", "--json"],
]  # fmt: skip
FILTERED = [
    ["volume", "list", "--pool", "fast"], ["volume", "list", "-p", "nosuch", "--json"], ["volume", "list", "--status", "in-use"],
    ["volume", "list", "--status=error", "--json"], ["volume", "list", "-l", "tier=gold"], ["volume", "list", "--label=tier=gold", "-l", "n=5"],
    ["volume", "list", "--pool=default", "--status", "available", "--json"],
    ["backup", "list", "--volume", "vol-001"], ["backup", "list", "--volume", "vol-003", "--json"], ["backup", "list", "--status", "error"],
    ["backup", "list", "-l", "k=v", "--json"], ["backup", "list", "--status=nosuch"], ["backup", "list", "--label", "k=v", "--status", "damaged"],
]  # fmt: skip


@pytest.mark.parametrize("args", LISTINGS)
def test_empty_catalog_same_bytes(empty_config: Path, args: list[str]) -> None:
    argv = ["--config", str(empty_config), *args]
    code, out = quick(argv)
    assert code == 0, "the fast path must answer"
    assert (code, out) == full(argv)[:2]


@pytest.mark.parametrize("args", LISTINGS + FILTERED)
def test_many_items_same_bytes(full_config: Path, args: list[str]) -> None:
    argv = ["-c", str(full_config), *args]
    code, out = quick(argv)
    assert code == 0, "the fast path must answer"
    assert (code, out) == full(argv)[:2]


def test_non_ascii_cell_json_fast_table_by_rich(config_file: Path) -> None:
    """JSON escapes it (the fast path answers); a table cell Rich must measure goes to Rich."""
    fill(config_file, 6, 0, unicode=True)
    for args in (["volume", "list", "--json"], ["volume", "list", "--json", "-l", "city=Zürich"]):
        argv = ["-c", str(config_file), *args]
        code, out = quick(argv)
        assert code == 0 and "\\u00fc" in out
        assert (code, out) == full(argv)[:2]
    argv = ["-c", str(config_file), "volume", "list"]
    assert quick(argv) == (None, "")
    assert entry_point(argv) == full(argv)


def test_one_item_same_bytes_with_config_from_the_environment(config_file: Path) -> None:
    fill(config_file, 1, 1)
    env = clean_env(STORAGE_CONFIG=str(config_file))
    for args in LISTINGS:
        code, out = quick(args, env)
        assert code == 0 and ("vol-000" in out or "0000-000000000000" in out)
        assert (code, out) == full(args, env)[:2]


def test_data_dir_from_the_environment(empty_config: Path, data_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    other.write_text("")  # no data_dir: STORAGE_DATA_DIR gives it
    env = clean_env(STORAGE_CONFIG=str(other), STORAGE_DATA_DIR=str(data_dir))
    assert quick(["volume", "list", "--json"], env) == (0, "[]\n") == full(["volume", "list", "--json"], env)[:2]


def test_help_is_the_live_text() -> None:
    """The pre-rendered help is what Typer prints today; regenerate with scripts/gen_cli_help.py."""
    code, out = quick(["--help"])
    live = full(["--help"])
    assert code == 0
    assert out == live[1], "storage/cli/help_text.py is stale: run .venv/bin/python scripts/gen_cli_help.py"


# (args, environment, also compare the entry point's whole answer with the full CLI's)
FALLBACKS = [
    (["volume", "list", "--status", "bogus"], {}, True),  # InvalidInput: the full CLI words it
    (["volume", "list", "--status", "bogus", "--json"], {}, True),
    (["volume", "list", "-l", "novalue"], {}, False),
    (["backup", "list", "--repository", "file:///tmp/repo"], {}, False),  # normalised by the object stores
    (["--log-format", "text", "volume", "list"], {}, False),
    (["volume", "list", "--bogus"], {}, True),  # click's usage error
    (["volume", "list", "extra"], {}, False),
    (["volume", "list", "--pool"], {}, False),
    (["volume", "show", "x"], {}, False),
    (["volume", "list"], {"COLUMNS": "100"}, True),  # Rich sizes the table
    (["volume", "list"], {"STORAGE_API__PORT": "9000"}, False),  # an override it does not read
    (["--help"], {"TERMINAL_WIDTH": "120"}, False),
    ([], {}, True),
]


@pytest.mark.parametrize(("args", "env", "compare"), FALLBACKS)
def test_fallback_cases_answer_nothing_and_the_entry_point_prints_the_full_text(
    full_config: Path, args: list[str], env: dict[str, str], compare: bool
) -> None:
    argv = ["--config", str(full_config), *args] if args and args[0] != "--help" else args
    environ = clean_env(**env)
    assert quick(argv, environ) == (None, "")
    if compare:
        assert entry_point(argv, environ) == full(argv, environ)


@pytest.mark.parametrize(
    "config",
    [
        '[backup]\nchunk_size = 1\n',
        '[object_stores.x]\nroot = "/srv/x"\n',
        '[object_stores.x]\ntype = "file"\nroot = "/"\n',
        'default_pool = "other"\n',
        '[catalog]\nurl = "postgresql+psycopg://u@127.0.0.1/x"\n',
        '[catalog]\nconnect_timeout_seconds = 1\n',
        '[logging]\nformat = "xml"\n',
        'host_name = "-bad"\n',
        "not toml = = \n",
    ],
)
def test_configs_it_does_not_validate_go_to_the_full_cli(data_dir: Path, empty_config: Path, config: str) -> None:
    path = data_dir / "other.toml"
    path.write_text(f'data_dir = "{data_dir}"\n' + config)
    assert quick(["-c", str(path), "volume", "list", "--json"]) == (None, "")


def test_missing_catalog_or_data_dir_goes_to_the_full_cli(config_file: Path, data_dir: Path, tmp_path: Path) -> None:
    assert quick(["-c", str(config_file), "volume", "list"]) == (None, "")  # the full CLI creates the catalog
    other = tmp_path / "x.toml"
    other.write_text(f'data_dir = "{tmp_path / "nowhere"}"\n')
    assert quick(["-c", str(other), "backup", "list"]) == (None, "")
    assert quick(["-c", str(tmp_path / "absent.toml"), "backup", "list"]) == (None, "")


def test_old_schema_goes_to_the_full_cli(empty_config: Path, data_dir: Path) -> None:
    import sqlite3

    with sqlite3.connect(data_dir / "catalog.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0001'")
    assert quick(["-c", str(empty_config), "volume", "list"]) == (None, "")


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other side is closed and everything was read
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _on_a_terminal(write: Callable[[int], object]) -> bytes:
    """What ``write(tty_fd)`` prints on a new pseudo-terminal (read meanwhile: a full pty blocks)."""
    import threading

    primary, secondary = os.openpty()
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(_read_all(primary)))
    reader.start()
    try:
        write(secondary)
    finally:
        os.close(secondary)
        reader.join(60)
        os.close(primary)
    return got[0]


TERMINAL_CASES = [["volume", "list"], ["backup", "list"], ["volume", "list", "--status", "in-use"],
                  ["backup", "list", "--volume", "vol-001"]]  # fmt: skip


@pytest.mark.parametrize("columns", ["60", "96", "250"])  # Rich narrows and wraps / draws it as it is
@pytest.mark.parametrize("args", TERMINAL_CASES)
def test_a_terminal_gets_richs_table_from_the_fast_path_byte_for_byte(
    full_config: Path, args: list[str], columns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal the fast path writes what Rich would (storage.cli.table.terminal_render) or
    has Rich draw it (no Typer, pydantic or SQLAlchemy): the same bytes, colours included, as the
    full CLI on a terminal."""
    if columns == "250":  # wide enough: written without Rich

        def no_rich(*_a: object, **_k: object) -> None:
            raise AssertionError("Rich drew a table that fits the terminal")

        monkeypatch.setattr(table, "rich", no_rich)
    terminal_same_bytes(["-c", str(full_config), *args], columns, monkeypatch)


@pytest.mark.parametrize("args", TERMINAL_CASES[:2])
def test_a_table_exactly_as_wide_as_the_terminal_or_one_wider(
    full_config: Path, args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, plain = quick(["-c", str(full_config), *args])
    width = len(plain.splitlines()[0])
    for columns in (width, width - 1):
        terminal_same_bytes(["-c", str(full_config), *args], str(columns), monkeypatch)


def terminal_same_bytes(argv: list[str], columns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = clean_env(COLUMNS=columns, TERM="xterm-256color")
    for key in set(HELP_ENV + RICH_ENV) - {"COLUMNS"}:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("COLUMNS", columns)
    monkeypatch.setenv("TERM", "xterm-256color")
    codes: list[int | None] = []

    def fast_path(fd: int) -> None:
        with open(fd, "w", encoding="utf-8", closefd=False) as tty:
            codes.append(fast.answer(argv, env, tty))

    def full_cli(fd: int) -> None:
        proc = subprocess.run([sys.executable, "-m", "storage.cli.main", *argv], stdout=fd, stderr=subprocess.PIPE, env=env,
                              cwd=ROOT, timeout=120)  # fmt: skip
        codes.append(proc.returncode)

    ours, theirs = _on_a_terminal(fast_path), _on_a_terminal(full_cli)
    assert codes == [0, 0], "the fast path must answer on a terminal"
    assert b"\x1b[" in theirs and ("━" in theirs.decode() or "─" in theirs.decode())  # Rich's colours and box
    assert ours == theirs


def test_help_on_a_terminal_goes_to_typer(full_config: Path) -> None:
    primary, secondary = os.openpty()
    try:
        with open(secondary, "w", encoding="utf-8", closefd=False) as tty:
            assert fast.answer(["--help"], clean_env(), tty) is None
    finally:
        os.close(primary)
        os.close(secondary)


def test_dead_owner_left_to_the_full_cli_which_settles_it(full_config: Path, data_dir: Path) -> None:
    import sqlite3

    dead = f"{socket.gethostname()}:{2**22 + 12345}:1"  # above pid_max's default: no such process
    with sqlite3.connect(data_dir / "catalog.db") as conn:
        conn.execute("UPDATE backups SET status = 'creating', owner = ? WHERE id LIKE '%0001'", (dead,))
    argv = ["-c", str(full_config), "backup", "list", "--json"]
    assert quick(argv) == (None, "")
    code, out, _ = entry_point(argv)
    assert code == 0 and {b["status"] for b in json.loads(out) if b["id"].endswith("0001")} == {"interrupted"}
    assert quick(argv)[0] == 0  # settled: the fast path answers again


PROBE = """
import json, os, sys
from storage.cli.fast import answer
code = answer(sys.argv[1:], os.environ, sys.stdout)
sys.stdout.flush()
print("\\n@@" + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


@pytest.mark.parametrize("args", [["--help"], ["volume", "list"], ["backup", "list", "--json"]])
def test_fast_answers_import_no_typer_pydantic_rich_or_database_layer(empty_config: Path, args: list[str]) -> None:
    argv = args if args == ["--help"] else ["-c", str(empty_config), *args]
    proc = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, env=clean_env(), timeout=120)
    data = json.loads(proc.stdout.rpartition("\n@@")[2])
    heavy = {m.split(".")[0] for m in data["modules"]} & {"typer", "click", "pydantic", "pydantic_core", "rich", "sqlalchemy",
                                                           "alembic", "dataclasses", "decimal"}  # fmt: skip
    assert data["code"] == 0 and heavy == set()


def test_a_config_with_pools_is_answered_like_the_full_cli(data_dir: Path, full_config: Path) -> None:
    """The README's kind of config (a pool, default_pool, object stores, [backup], [scheduler],
    [export], [logging])."""
    path = data_dir / "pools.toml"
    path.write_text(f'data_dir = "{data_dir}"\ndefault_pool = "default"\nhost_name = "storage-01"\n'
                    f'[pools.default]\ndriver = "file"\npath = "{data_dir}/pools/default"\novercommit_ratio = 1.0\n'
                    '[pools.default.labels]\ntier = "gold"\n[scheduler]\navailability_zone = "az1"\n'
                    '[export]\ndriver = "tgt"\n[logging]\nformat = "text"\n'
                    '[object_stores.swift]\ntype = "swift"\nauth_url = "http://127.0.0.1:1/auth/v1.0"\nuser = "a:b"\nkey = "k"\n'
                    f'[object_stores.disk]\ntype = "file"\nroot = "{data_dir}/objects/disk"\n'
                    '[backup]\nrepository = "swift://swift@backups"\nuploaders = 8\n')  # fmt: skip
    for args in (["volume", "list", "--json"], ["backup", "list"]):
        argv = ["-c", str(path), *args]
        code, out = quick(argv)
        assert code == 0, "the fast path must answer"
        assert (code, out) == full(argv)[:2]


def test_a_reader_that_left_gets_exit_1_and_no_traceback_like_the_full_cli(config_file: Path) -> None:
    fill(config_file, 300, 0)  # more than a pipe's buffer
    for argv in (["-m", "storage.cli.fast"], ["-m", "storage.cli.main"]):
        r, w = os.pipe()
        os.close(r)
        try:
            proc = subprocess.run([sys.executable, *argv, "-c", str(config_file), "volume", "list", "--json"], stdout=w,
                                  stderr=subprocess.PIPE, text=True, env=clean_env(), cwd=ROOT, timeout=120)  # fmt: skip
        finally:
            os.close(w)
        assert (proc.returncode, proc.stderr) == (1, ""), argv


def test_a_json_listing_spooled_to_disk_is_the_same_bytes(full_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast, "SPOOL_BYTES", 64)  # every listing rolls over to a temporary file
    for args in (["volume", "list", "--json"], ["backup", "list", "--json"]):
        argv = ["-c", str(full_config), *args]
        code, out = quick(argv)
        assert code == 0 and len(out) > 64
        assert (code, out) == full(argv)[:2]


def test_a_row_left_to_the_full_cli_midway_writes_nothing(full_config: Path, data_dir: Path) -> None:
    """The JSON is streamed from the catalog, but to a spool: a row the fast path must leave to
    the full CLI, found after others were read, still leaves stdout untouched."""
    import sqlite3

    with sqlite3.connect(data_dir / "catalog.db") as conn:
        conn.execute("UPDATE volumes SET size_bytes = 'many' WHERE name = 'vol-009'")
    assert quick(["-c", str(full_config), "volume", "list", "--json"]) == (None, "")
