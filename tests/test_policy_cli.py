"""storagectl policy ... and storagectl run, in-process through storage.cli.main.main."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import storage
from storage.cli.main import main


@pytest.fixture
def cli(config_file: Path, capsys: pytest.CaptureFixture[str]):
    def run(*args: str) -> tuple[int, str, str]:
        code = main(["--config", str(config_file), *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_policy_lifecycle_json(cli, st: storage.Storage) -> None:
    st.volumes.create("v1", "4M", labels={"tier": "db"})
    code, out, err = cli("policy", "create", "snaps", "--kind", "snapshot", "--schedule", "every 1h", "--label",
                         "tier=db", "--keep-last", "2", "--keep-daily", "7", "--json")
    assert code == 0, err
    created = json.loads(out)
    assert created["name"] == "snaps" and created["retention"]["keep_daily"] == 7 and created["due_now"] is True
    code, out, _ = cli("policy", "list", "--json")
    assert code == 0 and [p["name"] for p in json.loads(out)] == ["snaps"]
    code, out, _ = cli("run", "--dry-run", "--json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [e["event"] for e in lines] == ["runner_start", "plan", "runner_finish", "report"]
    assert lines[1]["volumes"] == ["v1"] and lines[-1]["dry_run"] is True
    assert st.snapshots.list() == []  # the dry run changed nothing
    code, out, err = cli("run", "--json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0, err
    assert [e["event"] for e in lines] == ["runner_start", "start", "item", "finish", "runner_finish", "report"]
    assert lines[-1]["ok"] is True and lines[-1]["exit_code"] == 0
    code, out, _ = cli("run", "--log-json")
    assert code == 0 and [json.loads(x)["event"] for x in out.splitlines()] == ["runner_start", "skip", "runner_finish"]
    code, out, _ = cli("policy", "history", "snaps", "--json")
    runs = json.loads(out)
    assert code == 0 and [r["status"] for r in runs] == ["succeeded"] and len(runs[0]["items_created"]) == 1
    code, out, _ = cli("policy", "update", "snaps", "--keep-last", "5", "--disable", "--json")
    updated = json.loads(out)
    assert code == 0 and updated["enabled"] is False and updated["retention"]["keep_daily"] is None
    code, out, _ = cli("policy", "show", "snaps", "--json")
    assert code == 0 and json.loads(out)["last_run"]["status"] == "succeeded"
    code, out, _ = cli("policy", "delete", "snaps", "--json")
    assert code == 0 and json.loads(out)["name"] == "snaps"
    code, out, _ = cli("policy", "show", "snaps", "--json")
    assert code == 3 and json.loads(out)["error"]["code"] == "not_found"


def test_human_output(cli, st: storage.Storage) -> None:
    st.volumes.create("v1", "4M")
    assert cli("policy", "create", "p", "-k", "snapshot", "-s", "@daily", "--all-volumes", "--keep-all")[0] == 0
    code, out, _ = cli("policy", "list")
    assert code == 0 and "snapshot" in out and "Retention" in out
    code, out, err = cli("run", "--now", "p")
    assert code == 0 and "succeeded" in out and "[item]" in err
    code, out, _ = cli("policy", "history")
    assert code == 0 and "manual" in out


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["-s", "61 * * * *", "--keep-last", "1"], ["schedule:", "not a valid cron expression", "accepted"]),
        (["-s", "@daily", "--tz", "Mars/Base", "--keep-last", "1"], ["timezone:", "IANA"]),
        (["-s", "@daily", "--keep-daily", "0"], ["retention.keep_daily:", "at least 1"]),
        (["-s", "@daily", "--keep-weekly", "-2"], ["retention.keep_weekly:", "at least 1"]),
        (["-s", "@daily"], ["no keep rule given", "keep-all"]),
    ],
)
def test_bad_input_exit_2_names_the_field(cli, args: list[str], words: list[str]) -> None:
    code, out, err = cli("policy", "create", "bad", "-k", "snapshot", "--all-volumes", *args, "--json")
    assert code == 2
    message = json.loads(out)["error"]["message"]
    for word in words:
        assert word in message


def test_missing_repository_exit_3(cli, st: storage.Storage) -> None:
    code, out, _ = cli("policy", "create", "b", "-k", "backup", "-s", "@daily", "--all-volumes", "--keep-last", "1",
                       "--repository", f"file://{st.settings.data_dir}/objects/absent", "--json")
    assert code == 3
    error = json.loads(out)["error"]
    assert error["details"]["field"] == "repository" and "does not exist" in error["message"]


def test_run_failure_names_each_failure_and_exits_non_zero(cli, st: storage.Storage) -> None:
    st.volumes.create("broken", "4M")
    st.volumes.create("fine", "4M")
    assert cli("policy", "create", "p", "-k", "snapshot", "-s", "1h", "-v", "broken", "-v", "fine", "--keep-last", "1")[0] == 0
    st.volumes.reset_status("broken", "error")
    code, out, err = cli("run")
    assert code == 4
    assert "failed: policy p: volume broken:" in err
    code, out, _ = cli("policy", "history", "p", "--json")
    assert json.loads(out)[0]["status"] == "partial"
