"""Pure parts of the guest tier build (scripts/vm/vmlib): no QEMU, no network."""

from __future__ import annotations

import lzma
import os
from pathlib import Path

import pytest

from tests.fixtures_guest import parse_junit, suite_script  # also puts scripts/vm on sys.path
from vmlib.cache import input_key
from vmlib.initramfs import ModuleError, module_name, read_module_list, resolve_modules
from vmlib.kernel import KernelError, extract_vmlinux, kernel_package_name
from vmlib.rootfs import copied_entries, image_size_bytes
from vmlib.runner import GuestImages, disk_names, entry_points_txt, qemu_command

MODULES_DEP = """\
kernel/drivers/md/dm-mod.ko:
kernel/drivers/md/dm-bufio.ko:
kernel/drivers/md/persistent-data/dm-persistent-data.ko: kernel/drivers/md/dm-bufio.ko
kernel/drivers/md/dm-bio-prison.ko:
kernel/drivers/md/dm-thin-pool.ko: kernel/drivers/md/persistent-data/dm-persistent-data.ko kernel/drivers/md/dm-bufio.ko kernel/drivers/md/dm-bio-prison.ko kernel/drivers/md/dm-mod.ko
kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko kernel/fs/mbcache.ko
kernel/fs/jbd2/jbd2.ko:
kernel/fs/mbcache.ko:
"""


def test_module_names_normalise_dashes_and_suffixes() -> None:
    assert module_name("kernel/drivers/md/dm-thin-pool.ko") == "dm_thin_pool"
    assert module_name("kernel/x/virtio_blk.ko.xz") == "virtio_blk"


def test_resolve_modules_puts_dependencies_first_once() -> None:
    order = resolve_modules(["dm-thin-pool", "dm_mod", "ext4"], MODULES_DEP)
    names = [module_name(p) for p in order]
    assert len(names) == len(set(names))
    assert names.index("dm_bufio") < names.index("dm_persistent_data") < names.index("dm_thin_pool")
    assert names.index("dm_mod") < names.index("dm_thin_pool")
    assert names.index("jbd2") < names.index("ext4") and names.index("mbcache") < names.index("ext4")


def test_resolve_modules_skips_builtins_and_rejects_unknown() -> None:
    assert resolve_modules(["configfs"], MODULES_DEP, "kernel/fs/configfs/configfs.ko\n") == []
    with pytest.raises(ModuleError, match="nosuchmod"):
        resolve_modules(["nosuchmod"], MODULES_DEP)


def test_module_list_file_is_parsed_and_names_the_lvm_and_lio_modules() -> None:
    names = read_module_list((Path(__file__).parents[1] / "scripts/vm/modules.txt").read_text())
    for needed in ("dm-thin-pool", "dm-snapshot", "loop", "configfs", "iscsi_target_mod", "iscsi_tcp", "9p", "ext4"):
        assert needed in names
    assert read_module_list("# c\n\n a # x\nb\n") == ["a", "b"]


def test_kernel_package_name_from_apt_cache_depends() -> None:
    out = "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n"
    assert kernel_package_name(out) == "linux-image-6.1.0-56-amd64"
    with pytest.raises(KernelError, match="apt-get update"):
        kernel_package_name("linux-image-amd64\n")


def test_extract_vmlinux_finds_the_elf_after_false_magics() -> None:
    elf = b"\x7fELF" + os.urandom(4096)
    payload = lzma.compress(elf, format=lzma.FORMAT_XZ)
    # A bzImage: setup code with a stray xz magic, then the real payload, then trailing data.
    bzimage = b"MZ" + b"\x00" * 100 + b"\xfd7zXZ\x00junk" + b"\x00" * 50 + payload + b"\x00" * 64
    assert extract_vmlinux(bzimage) == elf
    with pytest.raises(KernelError):
        extract_vmlinux(b"no kernel here")


def test_input_key_changes_with_any_input() -> None:
    assert input_key("a", "b") == input_key("a", "b")
    assert input_key("a", "b") != input_key("ab", "")
    assert input_key("a", "b") != input_key("a", "c")


def test_guest_venv_copies_dependencies_but_not_packaging_or_the_editable_project() -> None:
    names = ["sqlalchemy", "pip", "pip-24.0.dist-info", "setuptools", "__editable__.storage-0.1.0.pth",
             "storage-0.1.0.dist-info", "_distutils_hack", "os_brick", "__pycache__"]
    assert copied_entries(names) == ["os_brick", "sqlalchemy"]


def test_image_size_has_headroom_and_is_aligned() -> None:
    size = image_size_bytes(500 * 2**20)
    assert size >= 500 * 2**20 * 1.3 and size % (64 * 2**20) == 0


def test_entry_points_txt_carries_the_drivers_and_scripts() -> None:
    text = entry_points_txt({"project": {"scripts": {"storagectl": "storage.cli.main:main"},
                                         "entry-points": {"storage.volume_backends": {"lvm": "backends.volume.lvm.driver:LvmVolumeBackend"}}}})
    assert "[storage.volume_backends]\nlvm = backends.volume.lvm.driver:LvmVolumeBackend\n" in text
    assert "[console_scripts]\nstoragectl = storage.cli.main:main\n" in text


def test_qemu_command_is_tcg_q35_without_network(tmp_path: Path) -> None:
    images = GuestImages(tmp_path / "vmlinux", tmp_path / "initrd", tmp_path / "root.img", "6.1.0-1-amd64")
    cmd = qemu_command(images, tmp_path / "r", tmp_path / "c.log", [tmp_path / "d0"], smp=1, memory_mib=1024)
    joined = " ".join(cmd)
    assert "-accel tcg" in joined and "-M q35" in joined and "-nodefaults" in joined
    assert "-netdev" not in joined and "-nic" not in joined and "kvm" not in joined
    assert "snapshot=on" in joined  # the cached rootfs image is never written
    assert "readonly=on" in joined  # the project tree is shared read-only
    assert disk_names(2) == ["/dev/vdb", "/dev/vdc"]


def test_parse_junit_counts_per_module() -> None:
    xml = """<testsuites><testsuite>
      <testcase classname="tests.guest.test_a" name="t1"/>
      <testcase classname="tests.guest.test_a.TestThin" name="t2"><failure message="boom">trace</failure></testcase>
      <testcase classname="tests.guest.test_b" name="t3"><skipped message="no disk"/></testcase>
    </testsuite></testsuites>"""
    outcomes, failures = parse_junit(xml)
    assert outcomes["tests.guest.test_a"] == {"passed": 1, "failed": 1, "error": 0, "skipped": 0}
    assert outcomes["tests.guest.test_b"]["skipped"] == 1
    assert "boom" in failures["tests.guest.test_a"][0]


def test_suite_script_runs_each_file_in_its_own_pytest() -> None:
    script = suite_script(["tests.guest.test_a", "tests.guest.test_b"])
    assert script.count("python -m pytest") == 2
    assert "--junitxml=/results/junit/test_b.xml tests/guest/test_b.py" in script
    assert script.rstrip().endswith("exit $rc")
