"""The scheduler wired into volume create: real file pools, the library, the CLI and a restore job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import storage
from storage.cli.main import main
from storage.errors import InsufficientCapacity, InvalidInput, NoValidHost, NotFound, StorageError
from storage.scheduler import validate_hints

MIB = 1024 * 1024


def two_pools(data_dir: Path, extra: str = "") -> Path:
    """Pools a (labels tier=gold, zone nova) and b (zone z2), both file pools on the same filesystem."""
    cfg = data_dir / "two.toml"
    cfg.write_text(
        f'data_dir = "{data_dir}"\n{extra}'
        f'[pools.a]\npath = "{data_dir}/a"\nlabels = {{ tier = "gold" }}\n'
        f'[pools.b]\npath = "{data_dir}/b"\navailability_zone = "z2"\n'
    )
    return cfg


def test_most_free_pool_wins_and_hints_steer(data_dir: Path) -> None:
    with storage.open(two_pools(data_dir)) as st:
        first = st.volumes.create("big", "64M", pool="a")  # explicit pool: still checked, only a is a candidate
        assert first.pool == "a"
        vol, decision = st.volumes.create_explained("next", "8M")
        assert vol.pool == "b" and decision is not None  # b has 64M more provisionable room
        (b, a) = decision.verdicts
        assert (b.pool, b.rank, a.pool, a.rank) == ("b", 1, "a", 2)
        assert b.metric is not None and a.metric is not None and b.metric - a.metric == 64 * MIB
        assert decision.chosen is not None and decision.chosen.host == a.host
        gold = st.volumes.create_explained("gold", "8M", hints=validate_hints(labels={"tier": "gold"}))
        assert gold.volume.pool == "a" and gold.decision is not None
        assert [(v.pool, v.refused_by) for v in gold.decision.refused] == [("b", "labels")]
        z2 = st.volumes.create("z2", "8M", hints=validate_hints(availability_zone="z2"))
        assert z2.pool == "b"
        thick = validate_hints(capabilities={"thin": False})
        with pytest.raises(NoValidHost, match=r"#a: capabilities: capabilities differ: thin=false \(pool: true\)"):
            st.volumes.create("thick", "8M", hints=thick)
        with pytest.raises(NoValidHost) as err:
            st.volumes.create("nowhere", "8M", hints=validate_hints(availability_zone="z9"))
        assert "#a: availability_zone: in zone 'nova'" in err.value.message
        assert "#b: availability_zone: in zone 'z2'" in err.value.message
        assert {v.name for v in st.volumes.list()} == {"big", "next", "gold", "z2"}  # nothing left behind


def test_pinned_default_pool_keeps_todays_meaning(data_dir: Path) -> None:
    with storage.open(two_pools(data_dir, 'default_pool = "a"\n')) as st:
        st.volumes.create("filler", "64M", pool="a")
        vol, decision = st.volumes.create_explained("v", "8M")
        assert vol.pool == "a" and decision is not None and [v.pool for v in decision.verdicts] == ["a"]
        assert decision.request.pool == "a"
        with pytest.raises(NoValidHost, match=r"#a: availability_zone: in zone 'nova', the request asks for 'z2'"):
            st.volumes.create("elsewhere", "8M", hints=validate_hints(availability_zone="z2"))
        assert st.volumes.create("explicit", "8M", pool="b").pool == "b"  # an explicit pool still wins


def test_single_pool_embedded_default(st: storage.Storage) -> None:
    vol, decision = st.volumes.create_explained("v", "10M")
    assert vol.pool == "default" and decision is not None and decision.chosen is not None
    assert decision.chosen.pool == "default" and decision.weigher == "free"
    with pytest.raises(InsufficientCapacity, match=r"no pool can take a volume of 1.0P; refused: .*#default: capacity: needs 1.0P"):
        st.volumes.create("huge", "1P")
    with pytest.raises(NotFound, match="pool 'nope' is not configured"):
        st.volumes.create("x", "1M", pool="nope")
    with pytest.raises(InvalidInput, match="size is required"):
        st.volumes.create("x")
    copy = st.volumes.create_explained("copy", source_volume="v")
    assert copy.decision is None and copy.volume.pool == "default"
    with pytest.raises(InvalidInput, match="placement hints apply to new empty volumes"):
        st.volumes.create("copy2", source_volume="v", hints=validate_hints(availability_zone="nova"))


def test_file_pool_limit_counts_volumes_not_snapshots_as_its_driver_does(data_dir: Path) -> None:
    import os

    pool_dir = data_dir / "p"
    pool_dir.mkdir()
    vfs = os.statvfs(pool_dir)
    ratio = 24 * MIB / (vfs.f_blocks * vfs.f_frsize)  # the pool may provision 24 MiB of volumes
    cfg = data_dir / "small.toml"
    cfg.write_text(f'data_dir = "{data_dir}"\n[pools.p]\npath = "{pool_dir}"\novercommit_ratio = {ratio!r}\n')
    with storage.open(cfg) as st:
        st.volumes.create("v", "16M")
        st.snapshots.create("v", "v-s")  # 16M + 16M provisioned; the driver's limit counts 16M
        pool = st.pools.get("p")
        assert pool.provisioned_bytes == 32 * MIB and 7 * MIB < pool.provisionable_bytes <= 8 * MIB
        assert st.volumes.create("fits", "7M").pool == "p"  # accepted, as before the scheduler
        with pytest.raises(NoValidHost, match=r"#p: capacity: needs 7.0M, .* provisionable \(thin: total .* - 23M provisioned\)"):
            st.volumes.create("over", "7M")


def test_weigher_from_config_and_broken_pool_is_refused_not_fatal(data_dir: Path) -> None:
    cfg = data_dir / "w.toml"
    cfg.write_text(
        f'data_dir = "{data_dir}"\n[scheduler]\nweigher = "provisioned_ratio"\navailability_zone = "az1"\n'
        f'[pools.a]\npath = "{data_dir}/a"\n[pools.vg]\ndriver = "lvm"\nvg_name = "no-such-vg-here"\n'
    )
    with storage.open(cfg) as st:
        vol, decision = st.volumes.create_explained("v", "8M", hints=validate_hints(availability_zone="az1"))
        assert vol.pool == "a" and decision is not None and decision.weigher == "provisioned_ratio"
        (ok, broken) = decision.verdicts
        assert ok.metric is not None and 0 < ok.metric < 1  # a ratio, not bytes
        assert broken.pool == "vg" and broken.refused_by == "host_state"
        assert (broken.reason or "").startswith("the pool did not report its capacity: ")
        with pytest.raises(StorageError) as err:  # named explicitly: the pool's own error, as before
            st.volumes.create("w", "8M", pool="vg")
        assert not isinstance(err.value, NoValidHost)


def test_default_pool_pinned_only_when_configured(data_dir: Path) -> None:
    from storage.config import load_settings

    unset = load_settings(two_pools(data_dir))
    assert unset.default_pool_pinned is None and unset.default_pool == "a"  # no "default" pool: no error any more
    assert load_settings(two_pools(data_dir, 'default_pool = "b"\n')).default_pool_pinned == "b"
    with pytest.raises(InvalidInput, match="default_pool 'nope' is not a configured pool"):
        load_settings(two_pools(data_dir, 'default_pool = "nope"\n'))


def test_bad_scheduler_config(data_dir: Path) -> None:
    cfg = data_dir / "bad.toml"
    cfg.write_text(f'data_dir = "{data_dir}"\n[scheduler]\nweigher = "random"\n')
    with pytest.raises(InvalidInput, match="scheduler.weigher"):
        storage.open(cfg)


def test_restore_job_result_keeps_the_placement(data_dir: Path) -> None:
    with storage.open(two_pools(data_dir)) as st:
        st.volumes.create("src", "4M", pool="a")
        backup = st.backups.create("src")
        result = st.backups.restore(backup.id, new_volume_name="restored")
        assert result.placement is not None and result.placement["chosen"]["pool"] == "b"
        assert st.volumes.get("restored").pool == "b"
        into = st.backups.restore(backup.id, to_volume="restored")
        assert into.placement is None  # no new volume, nothing placed


def run_cli(capsys: pytest.CaptureFixture[str], cfg: Path, *args: str, code: int = 0) -> tuple[str, str]:
    rc = main(["--config", str(cfg), *args])
    out, err = capsys.readouterr()
    assert rc == code, f"{args} -> {rc}\n{out}\n{err}"
    return out, " ".join(err.split())


def test_cli_explain(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = two_pools(data_dir)
    out, _ = run_cli(capsys, cfg, "volume", "create", "v1", "8M", "--pool-label", "tier=gold", "--explain", "--json")
    vol = json.loads(out)
    assert vol["pool"] == "a" and vol["placement"]["chosen"]["pool"] == "a"
    assert vol["placement"]["request"]["labels"] == {"tier": "gold"}
    assert vol["placement"]["candidates"][1] == {
        "host": vol["placement"]["chosen"]["host"], "pool": "b", "refused_by": "labels", "reason": "pool labels lack tier=gold",
    }
    out, _ = run_cli(capsys, cfg, "volume", "create", "v2", "8M", "--json")
    assert "placement" not in json.loads(out)  # only with --explain
    out, _ = run_cli(capsys, cfg, "volume", "create", "v3", "8M", "--zone", "z2", "--explain")
    assert "placement (weigher: free)" in out and "chosen" in out and "availability_zone" in out
    _, err = run_cli(capsys, cfg, "volume", "create", "v4", "8M", "--require", "thin=false", code=6)
    assert "no pool can take a volume of 8.0M; refused:" in err and "thin=false (pool: true)" in err
    _, err = run_cli(capsys, cfg, "volume", "create", "v4", "8M", "--require", "fast", code=2)
    assert "capability 'fast' is not known; accepted: thin" in err
    _, err = run_cli(capsys, cfg, "volume", "create", "v4", "8M", "--zone", "no zone", code=2)
    assert "availability zone 'no zone' is not accepted" in err


def test_api_explain_and_cinder_zone(data_dir: Path) -> None:
    from tests.api_server import _serve

    server_gen = _serve(two_pools(data_dir))
    server = next(server_gen)
    try:
        with server.client("operator") as c:
            r = c.post("/volumes", params={"explain": "true"},
                       json={"name": "v1", "size": "8M", "availability_zone": "z2", "capabilities": {"reflink": False, "thin": True}})
            assert r.status_code == 201, r.text
            body = r.json()
            assert body["pool"] == "b" and body["placement"]["chosen"]["pool"] == "b"
            assert body["placement"]["request"]["capabilities"] == {"reflink": False, "thin": True}
            refused = {v["pool"]: v for v in body["placement"]["candidates"] if "refused_by" in v}
            assert refused["a"]["refused_by"] == "availability_zone"
            r = c.post("/volumes", json={"name": "v2", "size": "8M", "pool_labels": {"tier": "gold"}})
            assert r.status_code == 201 and r.json()["pool"] == "a" and r.json()["placement"] is None
            r = c.post("/volumes", json={"name": "v3", "size": "8M", "availability_zone": "z9"})
            assert r.status_code == 507, r.text
            err = r.json()["error"]
            assert err["code"] == "no_valid_host" and "#a: availability_zone: in zone 'nova'" in err["message"]
            assert len(err["details"]["explanation"]["candidates"]) == 2
            r = c.post("/volumes", json={"name": "v3", "size": "8M", "capabilities": {"warp": True}})
            assert r.status_code == 422 and "capability 'warp' is not known" in r.json()["error"]["message"]
            r = c.post("/volumes", json={"name": "v3", "size": "8M", "availability_zone": "x" * 64})
            assert r.status_code == 422
            # Cinder: availability_zone of the request body is the zone hint
            r = c.post("/v3/p1/volumes", json={"volume": {"name": "c1", "size": 1, "availability_zone": "z2"}})
            assert r.status_code == 202, r.text
            assert c.get("/volumes/c1").json()["pool"] == "b"
            r = c.post("/v3/p1/volumes", json={"volume": {"name": "c2", "size": 1, "availability_zone": "mars"}})
            assert r.status_code == 413 and "in zone 'z2', the request asks for 'mars'" in r.json()["overLimit"]["message"]
    finally:
        server_gen.close()
