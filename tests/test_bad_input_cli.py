"""Bad input over every `storagectl` command: each case states its exit code; 0 tracebacks.

Every failure is one line on stderr (``error: ...``, usage errors too) and an exit code from
``storage.errors.EXIT_CODES``; with ``--json`` the error is also a JSON object on stdout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

import storage
from storage.cli.main import app, main
from storage.errors import EXIT_CODES
from tests.test_cli_help import command_paths

HUGE = "9" * 5000


@dataclass(frozen=True)
class Case:
    name: str
    args: tuple[str, ...]
    code: int
    says: str = ""

    def __str__(self) -> str:
        return self.name


def C(name: str, *args: str, code: int = 2, says: str = "") -> Case:  # noqa: N802 - a table row
    return Case(name, args, code, says)


POLICY = ("policy", "create", "p-new", "--kind", "snapshot", "--schedule", "@daily", "--all-volumes")
CASES = [
    # volumes
    C("size 2**63", "volume", "create", "n", str(2**63), says="too large"),
    C("size 5000 digits", "volume", "create", "n", HUGE),
    C("size fullwidth digit", "volume", "create", "n", "８M"),
    C("size float overflow", "volume", "create", "n", "9" * 25 + ".5P"),
    C("size zero", "volume", "create", "n", "0"),
    C("size 'true'", "volume", "create", "n", "true"),
    C("name 10,000", "volume", "create", "n" * 10000, "1M"),
    C("100 labels", "volume", "create", "n", "1M", *[a for i in range(100) for a in ("--label", f"k{i}=v")]),
    C("label without =", "volume", "create", "n", "1M", "--label", "novalue"),
    C("extend 2**63", "volume", "extend", "v1", str(2**63)),
    C("extend fullwidth", "volume", "extend", "v1", "２G"),
    C("clone size 2**63", "volume", "clone", "v1", "c1", "--size", str(2**63)),
    C("extend unknown volume", "volume", "extend", "nope", "2M", code=3),
    C("list bad label", "volume", "list", "--label", "bad key=v"),
    C("update 100 labels", "volume", "update", "v1", *[a for i in range(100) for a in ("--label", f"k{i}=v")]),
    C("reset unknown status", "volume", "reset-status", "v1", "happy"),
    C("delete unknown wipe", "volume", "delete", "v1", "--wipe", "random"),
    C("snapshot name bad", "snapshot", "create", "v1", "a/b"),
    C("snapshot 100 labels", "snapshot", "create", "v1", "s9", *[a for i in range(100) for a in ("--label", f"k{i}=v")]),
    # apply (stack files; their own content cases are in tests/test_apply_plan.py)
    C("apply plan: missing file", "apply", "plan", "-f", "/nonexistent/stack.yaml", says="cannot be read"),
    C("apply plan: endless file", "apply", "plan", "-f", "/dev/zero", says="larger than"),
    C("apply plan: no file", "apply", "plan", says="--file"),
    C("apply: empty stack", "apply", "-f", "/dev/null", "--prune", says="stack is empty"),
    # tokens and jobs
    C("token expiry 10**11 days", "token", "create", "--role", "reader", "--expires-days", "100000000000"),
    C("token expiry 5000 digits", "token", "create", "--role", "reader", "--expires-days", HUGE),
    C("token expiry 0", "token", "create", "--role", "reader", "--expires-days", "0"),
    C("token role unknown", "token", "create", "--role", "root"),
    C("token name 10,000", "token", "create", "--role", "reader", "--name", "t" * 10000),
    C("job list limit 0", "job", "list", "--limit", "0"),
    C("job unknown", "job", "show", "00000000-0000-0000-0000-000000000000", code=3),
    # policies
    C("keep-within 2m", *POLICY, "--keep-within", "2m", says="2min"),
    C("keep-within 99999999999999d", *POLICY, "--keep-within", "99999999999999d"),
    C("keep-within fullwidth", *POLICY, "--keep-within", "２d"),
    C("interval 99999999999999999999h", "policy", "create", "p-new", "--kind", "snapshot", "--schedule",
      "every 99999999999999999999h", "--all-volumes", "--keep-last", "1"),
    C("timezone 10,000", *POLICY, "--keep-last", "1", "--timezone", "Z" * 10000),
    C("keep-last 2**63", *POLICY, "--keep-last", str(2**63)),
    C("keep-last 5000 digits", *POLICY, "--keep-last", HUGE),
    C("sample nan", "policy", "create", "p-new", "--kind", "backup", "--schedule", "@daily", "--all-volumes",
      "--keep-last", "1", "--verify", "deep", "--verify-sample-percent", "nan"),
    C("bandwidth fast", "policy", "create", "p-new", "--kind", "backup", "--schedule", "@daily", "--all-volumes",
      "--keep-last", "1", "--bandwidth-limit", "fast"),
    C("max-concurrent 2**63", "policy", "create", "p-new", "--kind", "backup", "--schedule", "@daily",
      "--all-volumes", "--keep-last", "1", "--max-concurrent", str(2**63)),
    C("update keep-within 2m", "policy", "update", "p1", "--keep-within", "2m", says="2mo"),
    C("update timezone 10,000", "policy", "update", "p1", "--timezone", "Z" * 10000),
    C("history limit 0", "policy", "history", "p1", "--limit", "0"),
    C("history limit 2**63", "policy", "history", "p1", "--limit", str(2**63)),
    C("policy unknown", "policy", "show", "nope", code=3),
    # backups
    C("backup bandwidth fast", "backup", "create", "v1", "--bandwidth-limit", "fast"),
    C("backup bandwidth 2**63", "backup", "create", "v1", "--bandwidth-limit", str(2**63)),
    C("backup s3:// without a store", "backup", "create", "v1", "--repository", "s3://bucket"),
    C("backup unknown scheme", "backup", "create", "v1", "--repository", "ftp://x/y"),
    C("backup 100 labels", "backup", "create", "v1", *[a for i in range(100) for a in ("--label", f"k{i}=v")]),
    C("verify sample 0", "backup", "verify", "00000000-0000-0000-0000-000000000000", "--deep", "--sample", "0"),
    C("verify sample nan", "backup", "verify", "00000000-0000-0000-0000-000000000000", "--deep", "--sample", "nan"),
    C("gc grace -1", "backup", "gc", "--grace", "-1"),
    C("gc grace 5000 digits", "backup", "gc", "--grace", HUGE),
    C("restore two targets", "backup", "restore", "00000000-0000-0000-0000-000000000000", "--to-volume", "v1",
      "--new-volume", "x", code=2),
    C("live restore copy rate 5000 digits", "backup", "restore", "00000000-0000-0000-0000-000000000000", "--new-volume", "x",
      "--live", "--copy-rate", HUGE),
    C("live restore port 70000", "backup", "restore", "00000000-0000-0000-0000-000000000000", "--new-volume", "x", "--live",
      "--port", "70000", says="port 70000"),
    C("live resume with a backup id", "backup", "restore", "00000000-0000-0000-0000-000000000000", "--resume", "x",
      says="takes no backup id"),
    C("serve port 70000", "backup", "serve", "00000000-0000-0000-0000-000000000000", "--port", "70000", says="port 70000"),
    C("serve port 5000 digits", "backup", "serve", "00000000-0000-0000-0000-000000000000", "--port", HUGE),
    C("serve cache 5000 digits", "backup", "serve", "00000000-0000-0000-0000-000000000000", "--cache-size", HUGE),
    C("serve export name 10,000", "backup", "serve", "00000000-0000-0000-0000-000000000000", "--name", "n" * 10000),
    C("attach device /dev/sda", "backup", "attach", "00000000-0000-0000-0000-000000000000", "--device", "/dev/sda",
      says="accepted: /dev/nbdN"),
    C("detach not attached", "backup", "detach", "/dev/nbd9", code=3, says="not attached"),
    # objects
    C("object list limit 0", "object", "list", "c", "--limit", "0"),
    C("object post 10,000-char metadata", "object", "post", "c", "--meta", "k=" + "m" * 10000, says="metadata"),
    C("object post 100 metadata", "object", "post", "c", *[a for i in range(100) for a in ("--meta", f"k{i}=v")]),
    C("object upload segment 2**63", "object", "upload", "c", "/dev/null", "--segment-size", str(2**63)),
    C("object unknown store", "object", "list", "--store", "nostore", code=3),
    # usage
    C("unknown command", "frobnicate"),
    # hosts
    C("hosts show name with a space", "hosts", "show", "a b", says="host name"),
    C("hosts show unknown", "hosts", "show", "nope", code=3, says="not registered"),
    C("hosts enable name 300", "hosts", "enable", "h" * 300),
    C("hosts disable reason 10,000", "hosts", "disable", "h1", "--reason", "r" * 10000, says="255 characters"),
    C("unknown option", "volume", "list", "--colour"),
    C("missing argument", "volume", "create"),
]


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("cli-bad") / "data"
    data.mkdir()
    path = data / "storage.toml"
    path.write_text(f'data_dir = "{data}"\n')
    with storage.open(path) as st:
        st.volumes.create("v1", "1M")
        st.policies.create("p1", "snapshot", "@daily", selector={"all": True}, retention={"keep_last": 1})
    return path


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_bad_input(config: Path, case: Case, as_json: bool, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--config", str(config), *case.args, *(["--json"] if as_json else [])]
    rc = main(args)
    out, err = capsys.readouterr()
    assert rc == case.code, f"{case.name}: exit {rc}\nstdout: {out[:500]}\nstderr: {err[:500]}"
    assert rc in EXIT_CODES
    assert "Traceback" not in out + err, err
    assert len(err) < 20_000, "an error must not echo a huge input back"
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], f"not one error line:\n{err[:2000]}"
    if case.says:
        assert case.says in " ".join(err.split()) + out, err
    if as_json:
        error = json.loads(out.strip().splitlines()[-1])["error"]
        assert error["code"] and error["message"]


def test_every_command_has_a_case() -> None:
    """Every leaf command that takes a value has a bad-input case here (or is listed as value-free)."""
    import typer

    value_free = {  # commands whose every argument is a reference (404s are covered per group) or a flag
        ("exit-codes",), ("check",), ("pools",), ("host", "devices"), ("attach",), ("detach",), ("serve",), ("run",),
        ("token", "list"), ("token", "revoke"), ("job", "cancel"), ("volume", "show"), ("volume", "attach"),
        ("volume", "detach"), ("volume", "revert"), ("volume", "connection-info"), ("volume", "export"),
        ("volume", "unexport"), ("snapshot", "delete"), ("snapshot", "list"), ("snapshot", "revert"),
        ("snapshot", "show"), ("policy", "delete"), ("policy", "list"), ("backup", "delete"), ("backup", "import"),
        ("backup", "list"), ("backup", "show"), ("backup", "key", "create"), ("export", "list"),
        ("export", "reconcile"), ("export", "stop"), ("object", "delete"), ("object", "download"),
        ("object", "stat"), ("object", "stores"), ("hosts", "list"), ("agent",), ("apply", "schema"),
    }
    paths = [p for p in command_paths(typer.main.get_group(app)) if p]
    groups = {p[:-1] for p in paths}
    leaves = [p for p in paths if p not in groups]
    covered = {c.args[: len(p)] for c in CASES for p in leaves if c.args[: len(p)] == p}
    missing = [" ".join(p) for p in leaves if p not in covered and p not in value_free]
    assert not missing, f"commands without a bad-input case: {missing}"
