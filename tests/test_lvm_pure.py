"""LVM backend parts that need no device-mapper: names, parsing, sizes, command environment,
error mapping, thin_delta parsing, and the clear refusal on this host (no device-mapper)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from backends.volume.lvm.brick import LvmExecutor, lvm_environment, strip_env_prefix, translate_error
from backends.volume.lvm.names import (
    cow_size_bytes,
    gib_string_rounded_up,
    id_of,
    parent_tag,
    parse_lvs,
    parse_vgs,
    snapshot_lv,
    validate_vg_name,
    volume_lv,
)
from backends.volume.lvm.thin_delta import clip_ranges, merge_ranges, parse_thin_delta, thin_delta_command, thin_ids
from backends.volume.lvm.driver import LvmVolumeBackend, dm_name, kernel_has_device_mapper, parse_lvm_type, parse_physical_volumes
from storage.errors import BackendError, Conflict, InsufficientCapacity, InvalidInput, NotFound, Unsupported

VID = str(uuid.uuid4())
SID = str(uuid.uuid4())
GIB = 2**30


def test_names_round_trip_and_avoid_the_reserved_snapshot_prefix() -> None:
    assert id_of(volume_lv(VID)) == ("volume", VID)
    assert id_of(snapshot_lv(SID)) == ("snapshot", SID)
    assert not snapshot_lv(SID).startswith("snapshot")  # LVM reserves that prefix
    assert id_of("revert-" + VID) is None and id_of("volume-notauuid") is None and id_of("gthin-pool") is None
    assert parent_tag(VID) == "svol." + VID
    with pytest.raises(ValueError):
        volume_lv("../etc")


@pytest.mark.parametrize("bad", ["", "-vg", "a/b", "a b", "..", "x" * 200, None, 3])
def test_vg_name_validation_names_the_value(bad: object) -> None:
    with pytest.raises(InvalidInput, match="vg_name"):
        validate_vg_name(bad)


def test_options_are_validated() -> None:
    assert parse_lvm_type(None) == "thick" and parse_lvm_type("default") == "thick" and parse_lvm_type("THIN") == "thin"
    with pytest.raises(InvalidInput, match="thick, thin"):
        parse_lvm_type("mirror")
    assert parse_physical_volumes("/dev/vdb, /dev/vdc") == ["/dev/vdb", "/dev/vdc"]
    assert parse_physical_volumes(None) == []
    with pytest.raises(InvalidInput, match="vdb"):
        parse_physical_volumes(["vdb"])
    with pytest.raises(InvalidInput, match="lvm_conf"):
        LvmVolumeBackend("p", {"vg_name": "vg", "lvm_conf": "/nonexistent/lvm.conf"})


def test_parse_lvs_exact_bytes_tags_and_attributes() -> None:
    out = (
        f"  {volume_lv(VID)}|1077936128|-wi-ao----||||||/dev/mapper/vg-x|\n"
        f"  {snapshot_lv(SID)}|12582912|swi-a-s---|{volume_lv(VID)}||svol.{VID}|0.52||/dev/mapper/vg-y|1077936128\n"
        "  vg-pool|8585740288|twi-aotz--||||12.50|3.01||\n"
    )
    vol, snap, pool = parse_lvs(out)
    assert vol.size_bytes == 1077936128 and vol.active and vol.is_open and not vol.is_old_snapshot
    assert snap.is_old_snapshot and snap.parent_volume_id() == VID and snap.data_size_bytes == 1077936128
    assert pool.is_thin_pool and pool.data_percent == 12.5 and pool.metadata_percent == 3.01
    with pytest.raises(ValueError):
        parse_lvs("garbage\n")


def test_parse_vgs() -> None:
    vg = parse_vgs("  gthin|8585740288|0|4194304\n")
    assert (vg.name, vg.size_bytes, vg.free_bytes, vg.extent_bytes) == ("gthin", 8585740288, 0, 4194304)


def test_cow_size_absorbs_a_full_rewrite_and_is_whole_extents() -> None:
    extent = 4 * 2**20
    for origin in (8 * 2**20, GIB, 100 * GIB + extent):
        cow = cow_size_bytes(origin, extent)
        assert cow % extent == 0 and cow >= origin + origin // 256


def test_gib_strings_for_os_brick_never_round_down() -> None:
    # os-brick pitfall: sizes as two-decimal GiB strings; 1 GiB + 4 MiB would read "1.00".
    assert gib_string_rounded_up(GIB) == "1.00"
    assert gib_string_rounded_up(GIB + 4 * 2**20) == "1.01"
    assert float(gib_string_rounded_up(8 * 2**20)) * GIB >= 8 * 2**20


def test_env_prefix_of_another_instance_is_dropped() -> None:
    # os-brick pitfall: LVM.LVM_CMD_PREFIX is class-global; another instance's LVM_SYSTEM_DIR
    # must not leak into our commands, and commands without the prefix still get LC_ALL=C.
    assert strip_env_prefix(["env", "LC_ALL=C", "LVM_SYSTEM_DIR=/other", "lvs", "-o", "a=b"]) == ["lvs", "-o", "a=b"]
    assert strip_env_prefix(["lvchange", "-a", "y"]) == ["lvchange", "-a", "y"]
    env = lvm_environment({"PATH": "/bin", "LVM_SYSTEM_DIR": "/other", "LC_MESSAGES": "de_DE", "LANG": "x"}, "/etc/mine/lvm.conf")
    assert env["LC_ALL"] == "C" and env["LVM_SYSTEM_DIR"] == "/etc/mine" and "LC_MESSAGES" not in env
    assert "LVM_SYSTEM_DIR" not in lvm_environment({"LVM_SYSTEM_DIR": "/other"}, None)


def test_executor_runs_with_our_environment_whatever_prefix_os_brick_added(tmp_path: Path) -> None:
    conf = tmp_path / "lvm.conf"
    conf.write_text("")
    executor = LvmExecutor(str(conf))
    out, _ = executor("env", "LC_ALL=de_DE", "LVM_SYSTEM_DIR=/elsewhere", sys.executable, "-c",
                      "import json, os; print(json.dumps({k: os.environ.get(k) for k in ('LC_ALL', 'LVM_SYSTEM_DIR')}))")
    assert json.loads(out) == {"LC_ALL": "C", "LVM_SYSTEM_DIR": str(tmp_path)}


def test_executor_failures_are_os_brick_errors_and_storage_errors() -> None:
    from oslo_concurrency import processutils as putils

    executor = LvmExecutor()
    with pytest.raises(putils.ProcessExecutionError) as info:
        executor(sys.executable, "-c", "import sys; sys.stderr.write('  Volume group \"nope\" not found\\n'); sys.exit(5)")
    assert info.value.exit_code == 5
    assert executor(sys.executable, "-c", "import sys; sys.exit(3)", check_exit_code=False)[0] == ""
    with pytest.raises(putils.ProcessExecutionError):
        executor("/nonexistent/lvm-binary")
    with pytest.raises(NotFound, match="nope"):
        executor.run([sys.executable, "-c", "import sys; sys.stderr.write('Volume group \"nope\" not found'); sys.exit(5)"], "reading vg")


@pytest.mark.parametrize(
    ("stderr", "kind"),
    [
        ('  Volume group "vg" has insufficient free space (1 extents): 2 required.', InsufficientCapacity),
        ('  Logical Volume "volume-x" already exists in volume group "vg"', Conflict),
        ('  Logical volume vg/volume-x in use.', Conflict),
        ('  Failed to find logical volume "vg/x"', NotFound),
        ("  something else broke", BackendError),
    ],
)
def test_lvm_errors_are_mapped(stderr: str, kind: type) -> None:
    err = translate_error("doing it", "  WARNING: noise\n" + stderr, 5)
    assert type(err) is kind and "doing it" in err.message and "WARNING" not in err.message


THIN_DELTA_XML = """<superblock uuid="" time="3" transaction="4" data_block_size="128" nr_data_blocks="16384">
  <diff left="1" right="2">
    <different begin="10" length="2"/>
    <right_only begin="12" length="1"/>
    <left_only begin="40" length="1"/>
    <different begin="100" length="4"/>
  </diff>
</superblock>"""


def test_thin_delta_xml_to_merged_byte_ranges() -> None:
    block, ranges = parse_thin_delta(THIN_DELTA_XML)
    kib64 = 64 * 1024
    assert block == kib64
    assert ranges == [(10 * kib64, 3 * kib64), (40 * kib64, kib64), (100 * kib64, 4 * kib64)]
    assert clip_ranges(ranges, 102 * kib64) == [(10 * kib64, 3 * kib64), (40 * kib64, kib64), (100 * kib64, 2 * kib64)]
    assert merge_ranges([(10, 5), (0, 10), (30, 1)]) == [(0, 15), (30, 1)]
    with pytest.raises(ValueError):
        parse_thin_delta("<superblock/>")


def test_thin_delta_command_reads_the_metadata_snapshot() -> None:
    cmd = thin_delta_command("/dev/mapper/vg-pool_tmeta", 1, 2)
    assert cmd[0] == "thin_delta" and "--metadata-snap" in cmd and cmd[-1] == "/dev/mapper/vg-pool_tmeta"
    assert thin_ids("  volume-a|1\n  snap-b|2\n  vg-pool|\n") == {"volume-a": 1, "snap-b": 2}
    assert dm_name("my-vg", "my-pool_tmeta") == "my--vg-my--pool_tmeta"


needs_no_dm = pytest.mark.skipif(kernel_has_device_mapper(), reason="this host's kernel has device-mapper")


def test_device_mapper_is_read_from_proc_misc(tmp_path: Path) -> None:
    misc = tmp_path / "misc"
    misc.write_text(" 58 network_throughput\n236 device-mapper\n")
    assert kernel_has_device_mapper(str(misc))
    misc.write_text(" 58 network_throughput\n183 hw_random\n")
    assert not kernel_has_device_mapper(str(misc))
    assert not kernel_has_device_mapper(str(tmp_path / "absent"))


@needs_no_dm
def test_check_host_refuses_in_one_sentence_without_device_mapper() -> None:
    backend = LvmVolumeBackend("lvm", {"vg_name": "vg0"})
    with pytest.raises(Unsupported) as info:
        backend.check_host()
    assert "device-mapper" in info.value.message and info.value.message.count(". ") == 0
    with pytest.raises(Unsupported):
        backend.create_volume(VID, 8 * 2**20)  # every operation goes through the check first


@needs_no_dm
def test_storagectl_refuses_lvm_pool_on_this_host(tmp_path: Path) -> None:
    cfg = tmp_path / "storage.toml"
    cfg.write_text(f'data_dir = "{tmp_path}"\ndefault_pool = "lvm"\n[pools.lvm]\ndriver = "lvm"\nvg_name = "vg0"\n')
    storagectl = Path(sys.executable).parent / "storagectl"
    proc = subprocess.run([str(storagectl), "--config", str(cfg), "volume", "create", "v1", "64M", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == Unsupported.exit_code, proc.stdout + proc.stderr
    error = json.loads(proc.stdout.strip().splitlines()[-1])["error"]
    assert error["code"] == "unsupported" and "device-mapper" in error["message"]
    assert "WARNING" not in proc.stderr and "device-mapper" in proc.stderr


def test_spot_check_samples_only_unchanged_blocks() -> None:
    import random

    from backends.volume.lvm.thin_delta import sample_unchanged

    block = 64 * 1024
    ranges = [(0, 10 * block), (20 * block, 5 * block)]
    picks = sample_unchanged(ranges, 40 * block, block, 8, random.Random(1))
    assert len(picks) == 8 and picks == sorted(set(picks))
    for offset in picks:
        assert offset % block == 0 and 10 * block <= offset < 20 * block or 25 * block <= offset < 40 * block
    assert sample_unchanged([(0, 40 * block)], 40 * block, block, 8, random.Random(1)) == []
    assert sample_unchanged([], 0, block, 8, random.Random(1)) == []
