"""Declarative apply on real file pools: st.apply, `storagectl apply`, POST /apply, and exports on a real tgtd."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import storage
from storage.cli.main import main
from storage.errors import InvalidInput
from tests.api_server import ApiServer, api_server  # noqa: F401 - fixture

MiB = 1024**2

STACK = """\
version: 1
volumes:
  - name: db1
    size: 8M
    labels: {tier: gold}
  - name: scratch
    size: 4M
policies:
  - name: nightly
    kind: snapshot
    schedule: "0 2 * * *"
    timezone: Europe/Berlin
    selector: {labels: {tier: gold}}
    retention: {keep_daily: 7, keep_weekly: 4}
"""
EMPTY = "version: 1\n"


def image(st: storage.Storage, name: str) -> Path:
    vol = st.volumes.get(name)
    return Path(st.settings.pools[vol.pool].path) / "volumes" / f"{vol.id}.img"


def write_data(st: storage.Storage, name: str) -> None:
    vol = st.volumes.get(name)
    with st.host.open_volume(vol.pool, vol.id) as path:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, b"data" * 1024, MiB)
            os.fsync(fd)
        finally:
            os.close(fd)


def actions(result) -> list[tuple[str, str, str]]:
    return [(c["action"], c["kind"], c["name"]) for c in result.plan["changes"]]


def test_plan_apply_then_second_apply_changes_nothing(st: storage.Storage) -> None:
    planned = st.apply(STACK)  # dry run is the default
    assert planned.dry_run and planned.changed
    assert actions(planned) == [("create", "volume", "db1"), ("create", "volume", "scratch"), ("create", "policy", "nightly")]
    assert st.volumes.list() == [] and st.policies.list() == []  # a plan changes nothing

    applied = st.apply(STACK, dry_run=False)
    assert [(d["action"], d["name"]) for d in applied.done] == [("create", "db1"), ("create", "scratch"), ("create", "nightly")]
    db1 = st.volumes.get("db1")
    assert db1.size_bytes == 8 * MiB and db1.labels == {"tier": "gold"} and image(st, "db1").stat().st_size == 8 * MiB
    pol = st.policies.get("nightly")
    assert pol.timezone == "Europe/Berlin" and pol.retention.keep_weekly == 4

    before = {v.name: v.updated_at for v in st.volumes.list()}, st.policies.get("nightly").updated_at
    again = st.apply(STACK, dry_run=False)
    assert not again.changed and again.done == [] and again.plan["changes"] == []
    assert ({v.name: v.updated_at for v in st.volumes.list()}, st.policies.get("nightly").updated_at) == before


def test_grow_extends_labels_update_policy_update(st: storage.Storage) -> None:
    st.apply(STACK, dry_run=False)
    changed = STACK.replace("size: 8M", "size: 16M").replace("{tier: gold}\n  - name: scratch", "{tier: gold, app: pg}\n  - name: scratch")
    changed = changed.replace("0 2 * * *", "30 1 * * *")
    planned = st.apply(changed)
    reasons = [c["reason"] for c in planned.plan["changes"]]
    assert reasons == ["size 8M -> 16M (extend)", "labels {tier=gold} -> {app=pg, tier=gold}",
                       "schedule '0 2 * * *' -> '30 1 * * *'"]
    st.apply(changed, dry_run=False)
    assert st.volumes.get("db1").size_bytes == 16 * MiB and image(st, "db1").stat().st_size == 16 * MiB
    assert st.volumes.get("db1").labels == {"tier": "gold", "app": "pg"}
    assert st.policies.get("nightly").schedule == "30 1 * * *"
    assert not st.apply(changed, dry_run=False).changed


def test_shrink_is_refused_and_nothing_changes(st: storage.Storage) -> None:
    st.apply(STACK, dry_run=False)
    shrunk = STACK.replace("size: 8M", "size: 4M").replace("size: 4M\npolicies", "size: 8M\npolicies")
    planned = st.apply(shrunk)
    assert ("refuse", "volume", "db1") in actions(planned) and ("extend", "volume", "scratch") in actions(planned)
    with pytest.raises(InvalidInput, match=r"shrink 8M -> 4M: shrinking is refused.*nothing was changed"):
        st.apply(shrunk, dry_run=False)
    assert st.volumes.get("db1").size_bytes == 8 * MiB and st.volumes.get("scratch").size_bytes == 4 * MiB


def test_prune_needs_yes_and_keeps_volumes_with_data(st: storage.Storage) -> None:
    st.apply(STACK, dry_run=False)
    write_data(st, "db1")  # scratch stays all holes
    assert st.host.volume_is_all_holes("default", st.volumes.get("scratch").id)
    assert not st.host.volume_is_all_holes("default", st.volumes.get("db1").id)

    without = st.apply(EMPTY, dry_run=False)  # no --prune: undeclared things are only reported
    assert not without.changed and {c["action"] for c in without.plan["changes"]} == {"keep"}
    with pytest.raises(InvalidInput, match=r"--prune would delete 2 item\(s\): policy nightly, volume scratch; .*--yes"):
        st.apply(EMPTY, dry_run=False, prune=True)
    assert st.policies.list() and len(st.volumes.list()) == 2

    pruned = st.apply(EMPTY, dry_run=False, prune=True, yes=True)
    assert [(d["action"], d["kind"], d["name"]) for d in pruned.done] == [("delete", "policy", "nightly"), ("delete", "volume", "scratch")]
    kept = [c for c in pruned.plan["changes"] if c["action"] == "keep"]
    assert [(c["name"], "may hold data" in c["reason"]) for c in kept] == [("db1", True)]
    assert [v.name for v in st.volumes.list()] == ["db1"] and st.policies.list() == []

    st.apply(EMPTY, dry_run=False, prune=True, yes=True, delete_volumes=True)
    assert st.volumes.list() == []


@pytest.fixture
def cli(config_file: Path, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    def run(*args: str, code: int = 0) -> str:
        rc = main(["--config", str(config_file), *args])
        out, err = capsys.readouterr()
        assert rc == code, f"storagectl {' '.join(args)} -> {rc}\nstdout: {out}\nstderr: {err}"
        return out if code == 0 or "--json" in args else " ".join(err.split())

    return run


def test_cli_plan_apply_schema_and_exit_codes(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "stack.yaml"
    f.write_text(STACK)
    plan = json.loads(cli("apply", "plan", "-f", str(f), "--json"))
    assert plan["dry_run"] and plan["plan"]["counts"]["create"] == 3
    assert "create" in cli("apply", "plan", "-f", str(f))
    applied = json.loads(cli("apply", "-f", str(f), "--json"))
    assert len(applied["done"]) == 3
    assert json.loads(cli("apply", "-f", str(f), "--json"))["changed"] is False
    assert "no changes" in cli("apply", "-f", str(f))

    f.write_text(STACK.replace("size: 8M", "size: 2M"))
    assert json.loads(cli("apply", "plan", "-f", str(f), "--json", code=2))["plan"]["counts"]["refuse"] == 1
    assert "shrinking is refused" in cli("apply", "-f", str(f), code=2)
    f.write_text(STACK.replace("    size: 4M\n", "    size: 4M\n    pool_name: x\n"))
    assert f"{f}:8: volumes[1].pool_name: key 'pool_name' is not accepted" in cli("apply", "plan", "-f", str(f), code=2)
    f.write_text(EMPTY)
    assert "--yes" in cli("apply", "-f", str(f), "--prune", code=2)
    assert json.loads(cli("apply", "schema"))["$defs"]["VolumeDecl"]["additionalProperties"] is False
    assert "cannot be read" in cli("apply", "plan", "-f", str(tmp_path / "missing.yaml"), code=2)


def test_api_apply_dry_run_roles_and_errors(api_server: ApiServer) -> None:  # noqa: F811
    yaml_headers = {"Content-Type": "application/yaml"}
    with api_server.client("reader") as c:
        assert c.post("/apply", params={"dry_run": "true"}, content=STACK, headers=yaml_headers).status_code == 403
    with api_server.client("operator") as c:
        r = c.post("/apply", params={"dry_run": "true"}, content=STACK, headers=yaml_headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["dry_run"] and [(x["action"], x["name"]) for x in body["plan"]["changes"]] == [
            ("create", "db1"), ("create", "scratch"), ("create", "nightly")]
        assert c.get("/volumes").json() == []  # the dry run created nothing

        r = c.post("/apply", content=STACK.replace("size: 4M", "size: -1"), headers=yaml_headers)
        assert r.status_code == 422 and "request body:7: volumes[1].size" in r.json()["error"]["message"]
        r = c.post("/apply", content="volumes: [\n", headers=yaml_headers)
        assert r.status_code == 422 and "not valid YAML" in r.json()["error"]["message"]
        r = c.post("/apply", content=b"#" * (300 * 1024), headers=yaml_headers)
        assert r.status_code == 413

        r = c.post("/apply", content=STACK, headers=yaml_headers)
        assert r.status_code == 200 and len(r.json()["done"]) == 3
        r = c.post("/apply", json={"volumes": [{"name": "db1", "size": "8M", "labels": {"tier": "gold"}}]}, params={"prune": "true"})
        assert r.status_code == 422 and "--yes" in r.json()["error"]["message"]
        r = c.post("/apply", json={"volumes": [{"name": "db1", "size": "8M", "labels": {"tier": "gold"}}]},
                   params={"prune": "true", "yes": "true"})
        assert r.status_code == 200 and [d["name"] for d in r.json()["done"]] == ["nightly", "scratch"]
        repo = {"policies": [{"name": "b", "kind": "backup", "schedule": "@daily", "selector": {"all": True},
                              "retention": {"keep_last": 1}, "backup": {"repository": "file:///etc"}}]}
        r = c.post("/apply", json=repo, params={"dry_run": "true"})
        assert r.status_code == 422 and "repository" in r.json()["error"]["message"]


EXPORTED = """\
volumes:
  - {name: lun1, size: 4M}
exports:
  - volume: lun1
"""


@pytest.fixture
def est(data_dir: Path, tgtd_clean) -> Iterator[storage.Storage]:  # type: ignore[no-untyped-def]
    """A Storage whose exports go to the session's own tgtd on 127.0.0.1."""
    cfg = data_dir / "storage.toml"
    cfg.write_text(
        f'data_dir = "{data_dir}"\n[export]\ndriver = "tgt"\nportal = "{tgtd_clean.portal}"\n'
        f"control_port = {tgtd_clean.control_port}\nmanage_daemon = false\n"
    )
    s = storage.open(cfg)
    try:
        yield s
    finally:
        for exp in s.exports.list():
            s.exports.unexport(exp.volume_id)
        for vol in s.volumes.list():
            s.volumes.delete(vol.id, force=True)
        s.close()


@pytest.mark.tgt
@pytest.mark.loop
def test_exports_create_replace_and_prune_on_real_tgtd(est: storage.Storage) -> None:
    done = est.apply(EXPORTED, dry_run=False).done
    assert [(d["action"], d["kind"]) for d in done] == [("create", "volume"), ("create", "export")]
    export = est.exports.get("lun1")
    assert export.auth_method == "CHAP" and export.attached_by_export
    assert [t["target_iqn"] for t in est.host.list_targets()] == [export.target_iqn]
    assert not est.apply(EXPORTED, dry_run=False).changed

    initiator = "iqn.2026-11.org.example:client1"
    changed = EXPORTED + f"    chap: false\n    initiators: [{initiator}]\n"
    reasons = [c["reason"] for c in est.apply(changed).plan["changes"]]
    assert reasons == [f"CHAP, any initiator -> no CHAP, {initiator} (unexport and export again; a new CHAP secret)"]
    est.apply(changed, dry_run=False)
    export = est.exports.get("lun1")
    assert export.auth_method is None and export.initiators == [initiator]
    assert not est.apply(changed, dry_run=False).changed

    pruned = est.apply("volumes:\n  - {name: lun1, size: 4M}\n", dry_run=False, prune=True, yes=True)
    assert [(d["action"], d["kind"]) for d in pruned.done] == [("delete", "export")]
    assert est.exports.list() == [] and est.host.list_targets() == []
    assert est.volumes.get("lun1").attached_device is None  # the export attached it; unexport detached it
    # the export was attached by the export: pruning both deletes the (all-holes) volume after it
    gone = est.apply(EMPTY + "exports: []\n", dry_run=False, prune=True, yes=True)
    assert [(d["action"], d["kind"]) for d in gone.done] == [("delete", "volume")]

    # an exported volume and its export pruned in one apply: unexport (which detaches), then delete
    est.apply(EXPORTED, dry_run=False)
    both = est.apply(EMPTY, dry_run=False, prune=True, yes=True)
    assert [(d["action"], d["kind"]) for d in both.done] == [("delete", "export"), ("delete", "volume")]
    assert est.volumes.list() == [] and est.host.list_targets() == []


def test_host_pins_to_this_host_and_another_host_is_refused(st: storage.Storage) -> None:
    import socket

    here = socket.gethostname()
    done = st.apply(f"volumes:\n  - {{name: pinned, size: 2M, host: {here}, pool: default}}\n", dry_run=False).done
    assert [(d["action"], d["name"]) for d in done] == [("create", "pinned")] and st.volumes.get("pinned").pool == "default"
    with pytest.raises(InvalidInput, match=r"host 'elsewhere' is not this host"):
        st.apply("volumes:\n  - {name: other, size: 2M, host: elsewhere}\n", dry_run=False)
