"""storage.apply.plan: the pure planner, table-tested (no I/O), and the stack file's validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storage.apply.models import MAX_FILE_BYTES, Stack, stack_schema
from storage.apply.plan import CurrentState, ExportState, VolumeState, plan
from storage.apply.source import load_stack
from storage.errors import InvalidInput

MiB, GiB = 1024**2, 1024**3
SNAP = {"kind": "snapshot", "schedule": "0 2 * * *", "selector": {"labels": {"tier": "gold"}}, "retention": {"keep_daily": 7}}


def stack(volumes=(), policies=(), exports=()) -> Stack:
    return Stack.model_validate({"volumes": list(volumes), "policies": list(policies), "exports": list(exports)})


def state(volumes=(), policies=None, exports=()) -> CurrentState:
    return CurrentState(
        host="h1", granularity={"default": MiB, "lvm": 4 * MiB},
        volumes={v.name: v for v in volumes}, policies=policies or {}, exports={e.volume: e for e in exports},
    )


def policy_state(**over) -> dict:
    spec = stack(policies=[{"name": "p", **SNAP}]).policies[0]
    return {**spec.model_dump(include={"kind", "schedule", "timezone", "selector", "retention", "backup", "enabled"}), **over}


def lines(p) -> list[tuple[str, str, str, str]]:
    return [(c.action, c.kind, c.name, c.reason) for c in p.changes]


VOL = VolumeState("db1", 10 * GiB, "default", {"tier": "gold"})

CASES = [
    ("nothing", state(), stack(), {}, []),
    ("create", state(), stack([{"name": "db1", "size": "10G", "pool": "default"}]), {},
     [("create", "volume", "db1", "new, 10G in pool default")]),
    ("create scheduled", state(), stack([{"name": "db1", "size": 1048576}]), {},
     [("create", "volume", "db1", "new, 1M in pool chosen by the scheduler")]),
    ("same: no change", state([VOL]), stack([{"name": "db1", "size": "10G", "labels": {"tier": "gold"}}]), {}, []),
    ("grow", state([VOL]), stack([{"name": "db1", "size": "20G", "labels": {"tier": "gold"}}]), {},
     [("extend", "volume", "db1", "size 10G -> 20G (extend)")]),
    ("grow within granularity is no change", state([VolumeState("v", 4 * MiB, "lvm")]), stack([{"name": "v", "size": "3M"}]), {}, []),
    ("shrink refused", state([VOL]), stack([{"name": "db1", "size": "5G", "labels": {"tier": "gold"}}]), {},
     [("refuse", "volume", "db1", "shrink 10G -> 5G: shrinking is refused; accepted: a size of at least 10G")]),
    ("labels", state([VOL]), stack([{"name": "db1", "size": "10G", "labels": {"tier": "silver", "app": "pg"}}]), {},
     [("update", "volume", "db1", "labels {tier=gold} -> {app=pg, tier=silver}")]),
    ("pool move refused", state([VOL]), stack([{"name": "db1", "size": "10G", "pool": "lvm", "labels": {"tier": "gold"}}]), {},
     [("refuse", "volume", "db1", "pool default -> lvm: volumes do not move between pools")]),
    ("other host refused", state(), stack([{"name": "db1", "size": "10G", "host": "h2"}]), {},
     [("refuse", "volume", "db1", "host 'h2' is not this host (h1)")]),
    ("policy create", state(), stack(policies=[{"name": "p", **SNAP}]), {},
     [("create", "policy", "p", "new snapshot policy, schedule '0 2 * * *'")]),
    ("policy same", state(policies={"p": policy_state()}), stack(policies=[{"name": "p", **SNAP}]), {}, []),
    ("policy changed", state(policies={"p": policy_state(schedule="0 3 * * *")}), stack(policies=[{"name": "p", **SNAP}]), {},
     [("update", "policy", "p", "schedule '0 3 * * *' -> '0 2 * * *'")]),
    ("policy kind refused", state(policies={"p": policy_state(kind="backup")}), stack(policies=[{"name": "p", **SNAP}]), {},
     [("refuse", "policy", "p", "kind backup -> snapshot: a policy's kind cannot change; accepted: a new policy name")]),
    ("export create", state([VOL]), stack([{"name": "db1", "size": "10G", "labels": {"tier": "gold"}}], exports=[{"volume": "db1"}]), {},
     [("create", "export", "db1", "new iSCSI target (CHAP, any initiator)")]),
    ("export replace", state([VOL], exports=[ExportState("db1", True)]),
     stack([{"name": "db1", "size": "10G", "labels": {"tier": "gold"}}],
           exports=[{"volume": "db1", "chap": False, "initiators": ["iqn.2026-11.org.example:c1"]}]), {},
     [("replace", "export", "db1",
       "CHAP, any initiator -> no CHAP, iqn.2026-11.org.example:c1 (unexport and export again; a new CHAP secret)")]),
    ("undeclared without prune: kept, said", state([VOL], {"p": policy_state()}, [ExportState("db1", True)]), stack(), {},
     [("keep", "export", "db1", "not in the file; --prune would delete it"),
      ("keep", "policy", "p", "not in the file; --prune would delete it"),
      ("keep", "volume", "db1", "not in the file; --prune would delete it")]),
    ("prune: exports, policies; not a volume that may hold data",
     state([VolumeState("db1", GiB, "default", attached=True)], {"p": policy_state()}, [ExportState("db1", True, (), True)]),
     stack(), {"prune": True},
     [("delete", "export", "db1", "not in the file (--prune): unexport"),
      ("delete", "policy", "p", "not in the file (--prune); its snapshots and backups stay"),
      ("keep", "volume", "db1", "not in the file, but it may hold data (the backend cannot tell it is all holes); "
       "give --delete-volumes to delete it")]),
    ("prune: an all-holes volume goes", state([VolumeState("e", GiB, "default", all_holes=True)]), stack(), {"prune": True},
     [("delete", "volume", "e", "not in the file (--prune); it holds no data (all holes)")]),
    ("prune --delete-volumes", state([VolumeState("d", GiB, "default")]), stack(), {"prune": True, "delete_volumes": True},
     [("delete", "volume", "d", "not in the file (--prune); --delete-volumes")]),
    ("prune: never with snapshots", state([VolumeState("d", GiB, "default", snapshots=2)]), stack(),
     {"prune": True, "delete_volumes": True},
     [("keep", "volume", "d", "not in the file, but it has 2 snapshot(s); delete them first")]),
    ("prune: never attached by someone else", state([VolumeState("d", GiB, "default", attached=True, all_holes=True)]), stack(),
     {"prune": True, "delete_volumes": True},
     [("keep", "volume", "d", "not in the file, but it is attached; detach it first")]),
]


@pytest.mark.parametrize(("current", "desired", "opts", "want"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_plan(current: CurrentState, desired: Stack, opts: dict, want: list) -> None:
    p = plan(current, desired, **opts)
    assert lines(p) == want
    assert p.changed == any(w[0] in ("create", "extend", "update", "replace", "delete") for w in want)


def test_plan_orders_creates_before_deletes_and_counts() -> None:
    p = plan(
        state([VolumeState("old", GiB, "default", all_holes=True)]),
        stack([{"name": "new", "size": "1G"}], exports=[{"volume": "new"}]),
        prune=True,
    )
    assert [(c.action, c.kind, c.name) for c in p.actions] == [
        ("create", "volume", "new"), ("create", "export", "new"), ("delete", "volume", "old")]
    assert p.counts()["create"] == 2 and p.counts()["delete"] == 1
    assert json.loads(json.dumps(p.to_dict()))["counts"] == p.counts()


BAD = [
    ("extra key", "volumes:\n  - name: a\n    size: 1G\n    colour: red\n", 4, "key 'colour' is not accepted"),
    ("shrinkable size text", "volumes:\n  - name: a\n    size: lots\n", 3, "volumes[0].size"),
    ("bad name", "volumes:\n  - name: ../x\n    size: 1G\n", 2, "volumes[0].name"),
    ("bad label", "volumes:\n  - name: a\n    size: 1G\n    labels:\n      '-x': y\n", 4, "labels"),
    ("policy retention", "policies:\n  - name: p\n    kind: snapshot\n    schedule: '0 2 * * *'\n"
     "    selector: {all: true}\n    retention: {keep_daily: 0}\n", 6, "policies[0].retention.keep_daily"),
    ("duplicate", "volumes:\n  - {name: a, size: 1G}\n  - {name: a, size: 2G}\n", 1, "declared twice"),
    ("export of undeclared", "exports:\n  - volume: zz\n", 1, "not declared in this file"),
    ("top-level key", "version: 1\nvolume: []\n", 2, "key 'volume' is not accepted"),
    ("version", "version: 2\n", 1, "version"),
    ("empty", "# nothing\n", None, "the stack is empty"),
    ("not a mapping", "- a\n- b\n", 1, "must be a mapping"),
    ("yaml syntax", "volumes:\n  - name: [a\n", 3, "not valid YAML"),
    ("alias", "a: &x 1\nb: *x\n", 1, "anchors and aliases are not accepted"),
    ("size too large", "volumes:\n  - name: a\n    size: " + "9" * 40 + "\n", 3, "accepted: 1 to 9007199254740992 bytes"),
    ("size text too large", "volumes:\n  - name: a\n    size: 9000P\n", 3, "at most 8P"),
    ("int beyond python's digits", "volumes:\n  - name: a\n    size: " + "9" * 5000 + "\n", None, "a value is not accepted"),
    ("too many labels", "volumes:\n  - name: a\n    size: 1G\n    labels: {" + ", ".join(f"k{i}: v" for i in range(65)) + "}\n",
     4, "at most 64 items"),
    ("deep", "a: " + "[" * 40 + "]" * 40 + "\n", 1, "nesting deeper"),
]


@pytest.mark.parametrize(("text", "line", "needle"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_stack_errors_carry_line_numbers(text: str, line: int, needle: str) -> None:
    with pytest.raises(InvalidInput) as err:
        load_stack(text, "s.yaml")
    where = f"s.yaml:{line}: " if line else "s.yaml: "
    assert err.value.message.startswith(where) or f"; {where}" in err.value.message, err.value.message
    assert needle in err.value.message, err.value.message


def test_stack_file_size_is_bounded_before_parsing() -> None:
    with pytest.raises(InvalidInput, match=f"at most {MAX_FILE_BYTES} bytes"):
        load_stack(b"#" * (MAX_FILE_BYTES + 1))


def test_schema_is_generated_refuses_extra_keys_and_is_published() -> None:
    schema = stack_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"version", "volumes", "policies", "exports"}
    assert schema["$defs"]["VolumeDecl"]["additionalProperties"] is False
    published = Path(__file__).parents[1] / "docs" / "apply.schema.json"
    assert json.loads(published.read_text()) == schema, "regenerate: storagectl apply schema > docs/apply.schema.json"


@pytest.mark.parametrize(("n", "text"), [(10 * GiB, "10G"), (10 * GiB + MiB, "10241M"), (MiB, "1M"), (3072, "3K"), (1536, "1536"), (1000, "1000"), (0, "0")])
def test_plan_sizes_are_exact(n: int, text: str) -> None:
    from storage.apply.plan import format_size

    assert format_size(n) == text


def test_the_documented_stacks_are_valid() -> None:
    root = Path(__file__).parents[1]
    doc = (root / "docs" / "apply.md").read_text()
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert {v.name for v in load_stack(example).volumes} == {"db1", "logs"}
    readme = (root / "README.md").read_text()
    block = readme.split("cat > stack.yaml <<'EOF'\n", 1)[1].split("    EOF\n", 1)[0]
    stack = load_stack("\n".join(line.removeprefix("    ") for line in block.splitlines()))
    assert [e.volume for e in stack.exports] == ["db1"] and stack.policies[0].name == "nightly"
