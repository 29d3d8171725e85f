"""storage/cli/table.py prints what Rich prints for the tables it accepts, and declines the rest."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from storage.cli import table as plain


def rich_lines(columns: list[str], rows: list[list[str]], *, title: str | None = None, caption: str | None = None,
               numeric: tuple[str, ...] = (), width: int = 4096) -> list[str]:  # fmt: skip
    """What storage.cli.common.print_table's Rich table (storage.cli.table.rich) prints to a non-terminal of ``width``."""
    out = io.StringIO()
    plain.rich(Console(file=out, width=width, force_terminal=False), columns, rows, title=title, numeric=numeric, caption=caption)
    return out.getvalue().split("\n")[:-1]


UUID = "cd684d84-7620-4a57-9b3e-5ad2b1f0a111"
CASES = [
    (["Name", "ID"], [], None, None, ()),
    (["Name", "ID", "Size"], [["db1", UUID, "1.0 GiB"], ["a-much-longer-name", "x", ""]], None, None, ("Size",)),
    (["Code", "Meaning"], [["0", "ok"], ["2", "usage error: see --help"]], "Exit codes", None, ()),
    (["A"], [["x"]], "A title wider than the table", None, ()),
    (["Pool", "Free"], [["a-pool-with-a-long-name", "12"]], "placement (weigher: free)", "one caption", ("Free",)),
    (["Created"], [["2026-01-01 00:00:00"], ["12:30:45"]], None, None, ()),
    (["K"], [["a  b"], ["tier=gold,x=1"], ["(new/dedup/zero)"], ["100%"], ["a\\b"]], None, None, ()),
]


@pytest.mark.parametrize(("columns", "rows", "title", "caption", "numeric"), CASES)
def test_same_characters_as_rich_or_declined(columns, rows, title, caption, numeric) -> None:  # type: ignore[no-untyped-def]
    lines = plain.render(columns, rows, title=title, caption=caption)
    expected = rich_lines(columns, rows, title=title, caption=caption, numeric=numeric)
    if lines is None:  # only the wide title is declined here
        assert title == "A title wider than the table"
        return
    assert list(lines) == expected


def test_tables_that_fit_in_80_columns_are_unchanged() -> None:
    rows = [["db1", "available", "1.0 GiB"], ["db2", "in-use", "20.0 GiB"]]
    assert list(plain.render(["Name", "Status", "Size"], rows) or []) == rich_lines(["Name", "Status", "Size"], rows, width=80)


@pytest.mark.parametrize(
    ("text", "plain_text"),
    [
        ("db1", True), ("", True), ("2026-01-01 00:00:00", True), ("k=v,a=b", True), ("50%", True),
        ("[bold]x", False),  # Rich markup
        (":smile:", False), (":100:", False), (":+1:", False), ("a:thumbs_up-text:b", False),  # emoji codes
        (":x:", False),  # any name with a letter is left to Rich, known emoji or not
        (" padded", False), ("padded ", False), ("two\nlines", False), ("tab\there", False),
        ("naïve", False), ("wide：", False), ("\x1b[1m", False),
    ],
)
def test_plain_cell(text: str, plain_text: bool) -> None:
    assert plain.plain_cell(text) is plain_text


def test_declined_tables() -> None:
    assert plain.render(["A"], [["[red]x"]]) is None
    assert plain.render(["A", "B"], [["only one"]]) is None
    assert plain.render(["A"], [["x"]], caption="a caption wider than the table") is None


def test_emoji_names_without_letters_are_richs() -> None:
    from rich._emoji_codes import EMOJI

    assert plain.EMOJI_WITHOUT_LETTERS == {name for name in EMOJI if not re.search("[A-Za-z]", name)}


def test_storagectl_in_a_pipe_prints_the_plain_table_and_on_columns_rich(config_file: Path) -> None:
    """A wide table in a pipe is whole (no "…"); with COLUMNS set, Rich lays it out as before."""
    probe = (
        "import sys; from storage.cli.main import main; code = main(sys.argv[1:]); "
        "print('@@rich' if 'rich' in sys.modules else '@@plain'); sys.exit(code)"
    )
    argv = [sys.executable, "-c", probe, "--config", str(config_file), "exit-codes"]
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")}
    piped = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert piped.returncode == 0, piped.stderr
    body, _, marker = piped.stdout.rpartition("@@")
    assert marker.strip() == "plain" and body.startswith("┏") and "…" not in body
    narrow = subprocess.run(argv, capture_output=True, text=True, env={**env, "COLUMNS": "30"}, timeout=120)
    body30, _, marker30 = narrow.stdout.rpartition("@@")
    assert marker30.strip() == "rich" and max(len(line) for line in body30.splitlines()) <= 30


def test_model_lists_print_the_same_json_through_pydantic_core(capsys: pytest.CaptureFixture[str]) -> None:
    """print_json's fast route for a list of one model prints what the generic route prints."""
    import json
    from datetime import UTC, datetime

    from storage.cli import common
    from storage.domain import Volume

    when = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    vols = [
        Volume(id=f"00000000-0000-0000-0000-{i:012d}", name=f"v{i}", size_bytes=i << 20, pool="default",
               status="available", labels={"tier": "gold"} if i else {}, created_at=when, updated_at=when)
        for i in range(3)
    ]  # fmt: skip
    generic = json.dumps(common.to_jsonable(vols), indent=2) + "\n"
    assert common._model_list_json(vols) is not None
    common.print_json(vols)
    assert capsys.readouterr().out == generic
    accented = [vols[0].model_copy(update={"labels": {"owner": "zoë"}})]
    assert common._model_list_json(accented) is None  # json.dumps escapes it: the generic route prints
    common.print_json(accented)
    assert capsys.readouterr().out == json.dumps(common.to_jsonable(accented), indent=2) + "\n"
    assert common._model_list_json([vols[0], {"a": 1}]) is None and common._model_list_json([]) is None
